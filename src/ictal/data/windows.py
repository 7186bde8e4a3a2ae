"""Virtual window index: (recording, start) pairs with seizure fractions, from lengths alone.

Windows are never stored (docs/design.md, "The cache"): they are computed at open from recording
lengths and seizure intervals, so window length, stride and class counts need no data reads.
With an edge ``pad`` windows also start up to ``pad`` samples before a recording and end up to
``pad`` after it; those samples are the recording mirrored (``ictal.stitch.reflect``), as at
inference, so the model learns the first and last seconds with context on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ictal.stitch import reflect

BACKGROUND, PARTIAL, FULL = 0, 1, 2
CLASS_NAMES = ("background", "partial", "full")


@dataclass(frozen=True)
class WindowIndex:
    """All training windows of a corpus: one row per window, grouped by recording."""

    rec: np.ndarray  # int32, recording number (position in the recordings table)
    start: np.ndarray  # int64, first sample of the window (negative: mirrored before the start)
    seizure_fraction: np.ndarray  # float32, fraction of the window's samples in seizure
    cls: np.ndarray  # uint8: BACKGROUND, PARTIAL or FULL
    window: int
    stride: int
    n_short: int  # recordings shorter than one window (no windows, counted)
    pad: int = 0  # samples a window may hang over each end of its recording (mirrored)

    def __len__(self) -> int:
        return int(self.rec.shape[0])

    def counts(self) -> dict[str, int]:
        """Number of windows per class, keyed by CLASS_NAMES."""
        n = np.bincount(self.cls, minlength=len(CLASS_NAMES))
        return {name: int(n[k]) for k, name in enumerate(CLASS_NAMES)}


def _global_intervals(
    n_samples: np.ndarray, intervals: Sequence[np.ndarray], offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate, shift to one corpus-wide timeline, sort and merge overlapping intervals."""
    parts: list[np.ndarray] = []
    for r, iv in enumerate(intervals):
        a = np.asarray(iv, dtype=np.int64)
        if a.size == 0:
            continue
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"recording {r}: intervals must have shape (k, 2), got {a.shape}")
        if (a[:, 0] > a[:, 1]).any() or (a[:, 0] < 0).any() or (a[:, 1] > n_samples[r]).any():
            raise ValueError(
                f"recording {r}: seizure intervals must satisfy 0 <= start <= stop <= "
                f"n_samples={int(n_samples[r])}, got {a.tolist()}"
            )
        parts.append(a + offsets[r])
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    g = np.concatenate(parts)
    g = g[g[:, 0] < g[:, 1]]
    g = g[np.argsort(g[:, 0], kind="stable")]
    if len(g) == 0:
        return g[:, 0], g[:, 1]
    # A new merged interval starts where the start lies beyond every earlier stop.
    prev_stop = np.maximum.accumulate(g[:, 1])
    new = np.ones(len(g), dtype=bool)
    new[1:] = g[1:, 0] > prev_stop[:-1]
    first = np.flatnonzero(new)
    return g[first, 0], np.maximum.reduceat(g[:, 1], first)


def _seizure_samples_before(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of seizure samples before global time ``t`` (sorted, disjoint ``[a, b)``)."""
    if len(a) == 0:
        return np.zeros_like(t)
    length = b - a
    cum = np.concatenate([[0], np.cumsum(length)])  # cum[j]: seizure samples in intervals < j
    k = np.searchsorted(a, t, side="right")  # intervals starting at or before t
    j = np.maximum(k - 1, 0)
    return np.where(k > 0, cum[j] + np.clip(t - a[j], 0, length[j]), 0)


def build_window_index(
    n_samples: np.ndarray,
    intervals: Sequence[np.ndarray],
    window: int,
    stride: int,
    full_threshold: float = 1.0,
    pad: int = 0,
) -> WindowIndex:
    """Index every window of every recording and classify it by its seizure fraction.

    ``intervals[r]`` holds half-open ``[start, stop)`` sample pairs of recording ``r``
    (overlaps are merged). Windows start at ``-pad`` and run at most ``pad`` past a
    recording's end (mirrored samples count as what they mirror); recordings shorter than one
    window get none and are counted in ``n_short``. Vectorised over the whole corpus.
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got {window} and {stride}")
    if not 0 <= pad <= window // 2:
        raise ValueError(f"edge pad must be between 0 and half a window, got {pad}")
    if not 0.0 < full_threshold <= 1.0:
        raise ValueError(f"full_threshold must be in (0, 1], got {full_threshold}")
    n = np.asarray(n_samples, dtype=np.int64)
    if n.ndim != 1 or len(intervals) != len(n):
        raise ValueError(
            f"need one interval array per recording: {len(n)} lengths, {len(intervals)} sets"
        )
    offsets = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    a, b = _global_intervals(n, intervals, offsets)

    per_rec = np.where(n >= window, (n + 2 * pad - window) // stride + 1, 0)
    total = int(per_rec.sum())
    rec = np.repeat(np.arange(len(n), dtype=np.int32), per_rec)
    first_row = np.concatenate([[0], np.cumsum(per_rec)[:-1]])
    start = (np.arange(total, dtype=np.int64) - np.repeat(first_row, per_rec)) * stride - pad

    def seized_in(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Seizure samples in ``[lo, hi)`` of each window's recording (inside it)."""
        g = offsets[rec]
        return _seizure_samples_before(g + hi, a, b) - _seizure_samples_before(g + lo, a, b)

    # A window is its inside part plus mirrors of [1, 1 + before) and [n - 1 - after, n - 1):
    # pad <= window / 2 <= n / 2 keeps each mirror a single reflection inside the recording.
    n_rec = n[rec]
    before, after = np.maximum(-start, 0), np.maximum(start + window - n_rec, 0)
    seized = seized_in(np.maximum(start, 0), np.minimum(start + window, n_rec))
    seized += seized_in(np.ones_like(before), 1 + before)
    seized += seized_in(n_rec - 1 - after, n_rec - 1)
    cls = np.full(total, BACKGROUND, dtype=np.uint8)
    cls[seized > 0] = PARTIAL
    cls[seized >= full_threshold * window] = FULL
    return WindowIndex(
        rec=rec,
        start=start,
        seizure_fraction=(seized / window).astype(np.float32),
        cls=cls,
        window=int(window),
        stride=int(stride),
        n_short=int((n < window).sum()),
        pad=int(pad),
    )


def label_mask(
    intervals_of_rec: np.ndarray, start: int, length: int, n_samples: int | None = None
) -> np.ndarray:
    """Per-sample seizure labels (1.0 in seizure) of ``[start, start + length)``; samples
    outside a recording of ``n_samples`` take the label of the sample they mirror."""
    if n_samples is not None and (start < 0 or start + length > n_samples):
        inside = label_mask(intervals_of_rec, 0, n_samples)
        return inside[reflect(np.arange(start, start + length), n_samples)]
    mask = np.zeros(length, dtype=np.float32)
    for lo, hi in np.asarray(intervals_of_rec, dtype=np.int64).reshape(-1, 2):
        lo, hi = max(int(lo) - start, 0), min(int(hi) - start, length)
        if lo < hi:
            mask[lo:hi] = 1.0
    return mask


def window_samples(length_s: float, stride_s: float, fs: float) -> tuple[int, int]:
    """A window's length and stride in samples at rate ``fs`` (nearest sample): the one
    conversion from ``windows.length_s`` and ``windows.stride_s``."""
    return round(length_s * fs), round(stride_s * fs)


def train_pad(window: int, edges: str) -> int:
    """Samples a training window may hang over each end: half a window when ``windows.edges``
    is reflect (the recording's edges then fall anywhere in the first or last half of a
    window, and inference puts them mid-window), 0 for none."""
    return window // 2 if edges == "reflect" else 0


def index_recordings(
    recs: Sequence[dict],
    fs: float,
    length_s: float,
    stride_s: float,
    full_threshold: float = 1.0,
    edges: str = "none",
) -> WindowIndex:
    """Window index of cache-table rows (``n_samples``, ``seizures``) at the cache rate."""
    window, stride = window_samples(length_s, stride_s, fs)
    return build_window_index(
        np.array([r["n_samples"] for r in recs], dtype=np.int64),
        [np.asarray(r["seizures"], dtype=np.int64).reshape(-1, 2) for r in recs],
        window=window,
        stride=stride,
        full_threshold=full_threshold,
        pad=train_pad(window, edges),
    )
