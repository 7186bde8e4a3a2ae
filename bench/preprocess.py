"""Preprocessing throughput: `ictal.signal.preprocess` against a typical slow pipeline.

The baseline is how failing pipelines do it: float64 throughout, FFT resampling of the
whole record (scipy.signal.resample), causal transfer-function band-pass and notch
(lfilter) in separate passes, then reference and z-score. Run: `python bench/preprocess.py`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy import signal as sps

from ictal.config import SignalConfig
from ictal.signal.pipeline import preprocess

RATES = (512, 400, 250)


def synthetic_eeg(fs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """(19, n) float32 µV: brown + white noise, a 10 Hz rhythm, 60 Hz mains and DC offsets."""
    rng = np.random.default_rng(seed)
    n = round(fs * seconds)
    t = np.arange(n, dtype=np.float32) / np.float32(fs)
    x = rng.standard_normal((19, n), dtype=np.float32) * np.float32(15.0)
    x += np.cumsum(rng.standard_normal((19, n), dtype=np.float32), axis=1) * np.float32(0.05)
    x += np.float32(20.0) * np.sin(np.float32(2 * np.pi * 10.0) * t)
    x += np.float32(30.0) * np.sin(np.float32(2 * np.pi * 60.0) * t)
    x += rng.uniform(-300, 300, (19, 1)).astype(np.float32)
    return x


def baseline(x: np.ndarray, fs_in: float, sig: SignalConfig) -> np.ndarray:
    """The slow way: float64, FFT resample, causal lfilter band-pass then notch, z-score."""
    x64 = x.astype(np.float64)
    n_out = round(x.shape[1] * sig.fs / fs_in)
    y = sps.resample(x64, n_out, axis=1)
    high = min(sig.bandpass[1], 0.45 * sig.fs)
    b, a = sps.butter(sig.filter_order, [sig.bandpass[0], high], btype="bandpass", fs=sig.fs)
    y = sps.lfilter(b, a, y, axis=1)
    bn, an = sps.iirnotch(sig.notch, sig.notch_q, fs=sig.fs)
    y = sps.lfilter(bn, an, y, axis=1)
    y = y - y.mean(axis=0, keepdims=True)
    y = (y - y.mean(axis=1, keepdims=True)) / y.std(axis=1, keepdims=True)
    return np.ascontiguousarray(y.T, dtype=np.float32)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` calls (least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Time both pipelines on `--hours` of synthetic data per source rate; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs of each")
    args = parser.parse_args()
    sig = SignalConfig()
    seconds = args.hours * 3600.0
    print(f"{args.hours:g} h of 19-channel EEG per rate -> {sig.fs:g} Hz, montage {sig.montage}")
    print(f"{'fs_in':>6} {'baseline EEG-h/s':>17} {'ictal EEG-h/s':>14} {'speedup':>8}")
    for fs_in in RATES:
        x = synthetic_eeg(fs_in, seconds)
        t_base = best_time(lambda x=x, fs_in=fs_in: baseline(x, fs_in, sig), args.repeats)
        t_ictal = best_time(lambda x=x, fs_in=fs_in: preprocess(x, fs_in, sig), args.repeats)
        print(
            f"{fs_in:>6} {args.hours / t_base:>17.2f} {args.hours / t_ictal:>14.2f} "
            f"{t_base / t_ictal:>7.1f}x"
        )


if __name__ == "__main__":
    main()
