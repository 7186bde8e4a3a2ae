"""Window index build time: vectorised interval arithmetic vs per-recording sample masks.

Run: PYTHONPATH=src python bench/windows.py [n_recordings]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ictal.data.windows import build_window_index, label_mask

FS, WINDOW_S, STRIDE_S = 256, 60, 10


def synthetic_corpus(n_recordings: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Recordings of 2-40 min, a third with one or two seizures of 10-120 s."""
    rng = np.random.default_rng(0)
    n = rng.integers(2 * 60 * FS, 40 * 60 * FS, size=n_recordings)
    intervals = []
    for length in n:
        k = rng.choice([0, 0, 1, 2])
        starts = np.sort(rng.integers(0, length - 120 * FS, size=k))
        stops = starts + rng.integers(10 * FS, 120 * FS, size=k)
        intervals.append(np.stack([starts, stops], axis=1).astype(np.int64))
    return n, intervals


def mask_baseline(n: np.ndarray, intervals: list[np.ndarray], window: int, stride: int) -> int:
    """The obvious way: rasterise each recording, cumulative sums, one slice per recording."""
    total = 0
    for length, iv in zip(n, intervals, strict=True):
        c = np.concatenate([[0], np.cumsum(label_mask(iv, 0, int(length)), dtype=np.int64)])
        s = np.arange(0, length - window + 1, stride)
        total += len((c[s + window] - c[s]) / window)
    return total


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    n_recordings = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    n, intervals = synthetic_corpus(n_recordings)
    window, stride = WINDOW_S * FS, STRIDE_S * FS
    index = build_window_index(n, intervals, window, stride)
    assert mask_baseline(n, intervals, window, stride) == len(index)
    t_base = timed(lambda: mask_baseline(n, intervals, window, stride), repeat=1)
    t_index = timed(lambda: build_window_index(n, intervals, window, stride))
    hours = n.sum() / FS / 3600
    print(f"{n_recordings} recordings, {hours:.0f} h, {len(index):,} windows, {index.counts()}")
    print(f"{'method':<34}{'seconds':>10}{'ratio':>10}")
    print(f"{'per-recording masks (baseline)':<34}{t_base:>10.3f}{1.0:>10.2f}")
    print(f"{'build_window_index':<34}{t_index:>10.3f}{t_base / t_index:>10.1f}")


if __name__ == "__main__":
    main()
