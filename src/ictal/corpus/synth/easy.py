"""Easy signals: 1/f background, posterior alpha, blinks, mains and one seizure template.

The original generator, kept byte-identical per seed (``--difficulty easy``, the default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft

from ictal.corpus.synth.plans import EventPlan, FilePlan

ALPHA_WEIGHTS = {"O1": 1.0, "O2": 1.0, "P3": 0.6, "P4": 0.6, "PZ": 0.6, "T5": 0.5, "T6": 0.5}
BLINK_WEIGHTS = {"FP1": 1.0, "FP2": 1.0, "F7": 0.4, "F8": 0.4, "ROC": 1.2, "LOC": 1.2}

# --------------------------------------------------------------------------- signals


def pink(rng: np.random.Generator, n_ch: int, n: int, fs: int) -> np.ndarray:
    """Unit-RMS 1/f^a noise per channel, shaped in the frequency domain (one batched FFT)."""
    nb = n // 2 + 1
    spec = rng.standard_normal((n_ch, nb, 2), dtype=np.float32).view(np.complex64)[..., 0]
    freqs = np.fft.rfftfreq(n, 1.0 / fs).astype(np.float32)
    shape = np.maximum(freqs, 0.5) ** -0.8 * (freqs / np.sqrt(freqs**2 + 0.25))
    spec *= shape
    x = scipy.fft.irfft(spec, n=n, axis=-1)
    x /= x.std(axis=-1, keepdims=True) + 1e-12
    return x


def _seizure_wave(rng: np.random.Generator, ev: EventPlan, fs: int) -> np.ndarray:
    """Spike-and-wave discharge whose frequency falls over the event (absence: steady 3 Hz)."""
    n = round((ev.stop - ev.start) * fs)
    u = np.arange(n) / max(n - 1, 1)
    if ev.label == "absz":
        freq = np.full(n, rng.uniform(2.8, 3.5))
    else:
        f0, f1 = rng.uniform(5.5, 7.5), rng.uniform(2.5, 3.5)
        freq = f0 + (f1 - f0) * u
    phase = 2 * np.pi * np.cumsum(freq) / fs
    wrapped = np.mod(phase, 2 * np.pi) - np.pi
    wave = (
        0.6 * np.sin(phase) + 0.2 * np.sin(2 * phase + 0.4) + 1.2 * np.exp(-((wrapped / 0.35) ** 2))
    )
    wave -= wave.mean()
    envelope = np.sin(np.pi * u) ** 0.4
    return wave * envelope


def add_bumps(x: np.ndarray, times: np.ndarray, kernel: np.ndarray, amps: np.ndarray) -> None:
    for t, a in zip(times, amps, strict=True):
        seg = x[t : t + len(kernel)]
        seg += a * kernel[: len(seg)]


def eeg_signals(
    plan: FilePlan, names: Sequence[str], seed: int, line_freq: int = 60
) -> dict[str, np.ndarray]:
    """µV traces for the EEG-like names: background, alpha, blinks, mains, seizures."""
    rng = np.random.default_rng([seed, plan.index, 7])
    fs, n = plan.fs, plan.duration * plan.fs
    t = np.arange(n, dtype=np.float32) / fs
    noise = pink(rng, len(names) + 1, n, fs)
    common = noise[-1] * np.float32(0.35)
    sigmas = rng.uniform(10, 20, len(names)).astype(np.float32)
    x = noise[:-1] * sigmas[:, None] + common * sigmas[:, None]
    index = {name: i for i, name in enumerate(names)}
    # alpha: waxing and waning 8-12 Hz over posterior channels
    f_alpha = rng.uniform(8.5, 11.5)
    env = np.interp(
        t, np.arange(0, plan.duration + 3, 2.0), rng.uniform(0, 1, plan.duration // 2 + 2)
    )
    alpha = (rng.uniform(12, 25) * env * np.sin(2 * np.pi * f_alpha * t)).astype(np.float32)
    for name, w in ALPHA_WEIGHTS.items():
        if name in index:
            x[index[name]] += w * alpha
    # eye blinks on frontal and eye channels
    kernel = np.hanning(int(0.35 * fs)).astype(np.float32)
    times = np.sort(rng.integers(0, max(1, n - 1), int(0.25 * plan.duration) + 1))
    amps = rng.uniform(80, 200, len(times)).astype(np.float32)
    for name, w in BLINK_WEIGHTS.items():
        if name in index:
            add_bumps(x[index[name]], times, kernel, w * amps)
    # mains (50 or 60 Hz), per-channel amplitude and phase
    a = rng.uniform(0.5, 4.0, len(names)) * rng.uniform(0.3, 1.0)
    ph = rng.uniform(0, 2 * np.pi, len(names))
    sin, cos = np.sin(2 * np.pi * line_freq * t), np.cos(2 * np.pi * line_freq * t)
    x += np.outer(a * np.cos(ph), sin).astype(np.float32) + np.outer(a * np.sin(ph), cos).astype(
        np.float32
    )
    # seizures: rhythmic discharge, per-electrode onset (spread) and 2 s ramp
    for ev in plan.events:
        wave = _seizure_wave(rng, ev, fs) * rng.uniform(90, 150)
        i0 = round(ev.start * fs)
        for name, onset in ev.onsets.items():
            if name not in index:
                continue
            lag = round(ev.lags.get(name, 0.0) * fs)
            seg = wave[: max(0, min(len(wave) - lag, n - i0 - lag))]
            ramp = np.clip((np.arange(len(seg)) / fs - (onset - ev.start)) / 2.0, 0, 1)
            j0 = i0 + lag
            x[index[name], j0 : j0 + len(seg)] += (ev.weights[name] * ramp * seg).astype(np.float32)
    return {name: x[i] for i, name in enumerate(names)}
