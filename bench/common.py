"""Helpers shared by the benchmarks: machine line, best-of timing, corpus, the slow baseline.

The baseline is how the failing pipelines of docs/design.md built their caches: MNE reads the
whole EDF, FFT resampling of the whole record, causal float64 band-pass then notch in
separate `lfilter` passes, 60 s windows at 10 s stride written per recording into one
compressed `.npz` (every sample stored six times).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

MNE_MISSING = (
    "this benchmark's baseline reads EDF with MNE, which is not installed; "
    "install the bench extra: pip install -e .[bench]"
)


def require_mne() -> Any:
    """Import MNE or exit with the command that installs it (it is only a bench extra)."""
    try:
        import mne
    except ImportError:
        sys.exit(MNE_MISSING)
    mne.set_log_level("ERROR")
    return mne


def load_average() -> str:
    """The 1, 5 and 15 minute load averages as text."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line() -> str:
    """Date, CPUs, load average and Python: printed with every table (numbers are noisy)."""
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        f"{now}, {os.cpu_count()} CPUs, load average {load_average()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )


def best_of(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Best wall time of `repeats` calls (the least disturbed by other processes), last result."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result  # type: ignore[return-value]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], first: int = 34) -> str:
    """A plain fixed-width table: the first column left-aligned, the others right-aligned."""
    texts = [[c if isinstance(c, str) else _num(c) for c in row] for row in rows]
    width = [first] + [
        max(12, len(h) + 2, *(len(r[i]) + 2 for r in texts)) for i, h in enumerate(headers) if i
    ]
    lines = ["".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(
        zip(headers, width, strict=True)))]  # fmt: skip
    for cells in texts:
        lines.append(
            "".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, width, strict=True))
            )
        )
    return "\n".join(lines)


def _num(x: float) -> str:
    """Three significant decimals for small numbers, thousands separators for big ones."""
    return f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"


def tree_bytes(path: str | Path) -> int:
    """Bytes of all regular files under `path` (what `du --apparent-size` would count)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(dirpath, name))
    return total


def warm_files(paths: Sequence[Path]) -> int:
    """Read every file once so all contenders start from a warm page cache; returns bytes."""
    n = 0
    for p in paths:
        n += len(p.read_bytes())
    return n


def ensure_corpus(path: str | None, tmp: Path, patients: int, hours: float, seed: int) -> Path:
    """The corpus to benchmark: `path` if given, else a synthetic one generated under `tmp`."""
    if path is not None:
        return Path(path)
    from ictal.corpus.synth import synthesize

    out = tmp / "corpus"
    t = time.perf_counter()
    synthesize(out, patients=patients, hours=hours, seed=seed)
    print(f"synthetic corpus: {patients} patients, {hours:g} h, seed {seed} -> {out} "
          f"({time.perf_counter() - t:.1f} s)")  # fmt: skip
    return out


def edf_files(corpus: Path) -> list[Path]:
    """Every EDF of the corpus, sorted."""
    return sorted((corpus / "edf").rglob("*.edf"))


# --- the baseline ------------------------------------------------------------------------


def baseline_filter(x: np.ndarray, fs_in: float, fs: float = 256.0) -> np.ndarray:
    """(19, n) µV float64 -> (19, n_out) float64: FFT resample, causal band-pass, notch,
    average reference, per-channel z-score (as in bench/preprocess.py's baseline)."""
    from scipy import signal as sps

    n_out = round(x.shape[1] * fs / fs_in)
    y = sps.resample(x, n_out, axis=1)
    b, a = sps.butter(4, [0.5, min(120.0, 0.45 * fs)], btype="bandpass", fs=fs)
    y = sps.lfilter(b, a, y, axis=1)
    bn, an = sps.iirnotch(60.0, 30.0, fs=fs)
    y = sps.lfilter(bn, an, y, axis=1)
    y = y - y.mean(axis=0, keepdims=True)
    return (y - y.mean(axis=1, keepdims=True)) / (y.std(axis=1, keepdims=True) + 1e-12)


def overlapping_windows(
    y: np.ndarray, seizure: np.ndarray, window: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Channel-major (c, n) signal -> windows (k, c, window) float32 (copied: stored 6x)
    and the per-window seizure fraction (k,) float32 from a per-sample mask."""
    n = y.shape[1]
    starts = np.arange(0, max(n - window, -1) + 1, stride)
    wins = np.empty((len(starts), y.shape[0], window), dtype=np.float32)
    for k, s in enumerate(starts):
        wins[k] = y[:, s : s + window]
    c = np.concatenate([[0.0], np.cumsum(seizure, dtype=np.float64)])
    frac = ((c[starts + window] - c[starts]) / window).astype(np.float32)
    return wins, frac


def seizure_mask(csv_bi: Path, n: int, fs: float) -> np.ndarray:
    """Per-sample seizure mask of a recording from its `.csv_bi` (ictal's parser)."""
    from ictal.corpus.annotations import read_annotation, seizure_events

    events, _ = seizure_events(read_annotation(str(csv_bi)))
    mask = np.zeros(n, dtype=np.float32)
    for ev in events:
        mask[max(0, round(ev.start * fs)) : min(n, round(ev.stop * fs))] = 1.0
    return mask


def baseline_build_one(
    mne: Any, edf: Path, out_dir: Path, fs: float = 256.0, window_s: float = 60, stride_s=10
) -> tuple[float, int]:
    """One recording the slow way; returns (EEG hours, bytes written)."""
    from ictal.corpus.channels import CANONICAL_19, normalise_label

    raw = mne.io.read_raw_edf(str(edf), preload=True, verbose="ERROR")
    names = [normalise_label(ch) for ch in raw.ch_names]
    picks = [names.index(ch) for ch in CANONICAL_19]
    x = raw.get_data(picks=picks) * 1e6  # volts -> µV, float64
    fs_in = float(raw.info["sfreq"])
    y = baseline_filter(x, fs_in, fs)
    mask = seizure_mask(edf.with_suffix(".csv_bi"), y.shape[1], fs)
    wins, frac = overlapping_windows(y, mask, round(window_s * fs), round(stride_s * fs))
    out = out_dir / f"{edf.stem}.npz"
    np.savez_compressed(out, windows=wins, labels=frac)
    return x.shape[1] / fs_in / 3600, out.stat().st_size


def baseline_build(mne: Any, corpus: Path, out_dir: Path) -> tuple[float, int]:
    """Every recording of the corpus the slow way, one process; (EEG hours, bytes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hours, size = 0.0, 0
    for edf in edf_files(corpus):
        h, b = baseline_build_one(mne, edf, out_dir)
        hours += h
        size += b
    return hours, size
