"""Per-channel, per-recording normalisation with recorded statistics, and counted clipping.

Robust (median, IQR / 1.349) is the default because seizures and artifacts are exactly the
outliers that would inflate a mean / std. Statistics are returned so the cache stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

NormalisationKind = Literal["robust", "zscore", "none"]

# IQR of a standard normal distribution: IQR / 1.349 estimates sigma for Gaussian data.
IQR_TO_SIGMA = 1.349
# Scale (µV) below which a channel counts as flat: under the quantisation step of any EDF
# EEG, so dividing by it would only blow up rounding noise left by filtering a constant.
FLAT_SCALE = 1e-2


@dataclass(frozen=True)
class NormStats:
    """Per-channel center and scale (y = (x - center) / scale) and flat-channel indices."""

    method: str
    center: list[float]
    scale: list[float]
    flat_channels: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[float]]:
        """The JSON-ready statistics stored with the recording in the cache."""
        return {"center": self.center, "scale": self.scale}


def _order_stats(y: np.ndarray, ranks: list[int]) -> dict[int, np.ndarray]:
    """The value of each (ascending, distinct) rank in every row of ``y``, by selection: one
    row partition per rank, each on the part the previous ones left (about two passes
    over the data for the three quartiles, against a full sort); ``y`` is reordered."""
    found: dict[int, np.ndarray] = {}
    segments = [(0, y.shape[1], ranks)]
    while segments:
        lo, hi, rs = segments.pop()
        part = y[:, lo:hi]
        if rs == [lo]:  # the segment's smallest: a scan, no partition
            found[lo] = part.min(axis=1)
        elif rs == [hi - 1]:  # its largest
            found[hi - 1] = part.max(axis=1)
        else:
            k = rs[len(rs) // 2]
            part.partition(k - lo, axis=1)
            found[k] = y[:, k].copy()
            segments.append((lo, k, [r for r in rs if r < k]))
            segments.append((k + 1, hi, [r for r in rs if r > k]))
        segments = [seg for seg in segments if seg[2]]
    return found


def row_quantiles(x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles of each row, as np.percentile's default (linear) method; (len(qs), n_rows).

    Exact order statistics by selection (``np.partition``), not a sort: the same values as
    sorting (ties and signed zeros interpolate alike), in about half the time.
    """
    n = x.shape[1]
    spans = []
    for q in qs:
        pos = q * (n - 1)
        i = min(int(np.floor(pos)), n - 1)
        spans.append((i, min(i + 1, n - 1), pos - i))
    ranks = sorted({r for i, j, _ in spans for r in (i, j)})
    stats = _order_stats(np.array(x, copy=True), ranks)
    out = np.empty((len(qs), x.shape[0]), dtype=np.float64)
    for j, (i, i1, frac) in enumerate(spans):
        lo = stats[i].astype(np.float64)
        hi = stats[i1].astype(np.float64)
        out[j] = lo + (hi - lo) * frac
    return out


def channel_stats(x: np.ndarray, method: NormalisationKind) -> NormStats:
    """Center and scale per channel of channel-major (n_channels, n_samples) float32 data.

    A scale below FLAT_SCALE (a flat or constant channel) is replaced by 1 and counted.
    """
    if method == "robust":
        q25, center, q75 = row_quantiles(x, (0.25, 0.5, 0.75))
        scale = (q75 - q25) / IQR_TO_SIGMA
    elif method == "zscore":
        center = x.mean(axis=1, dtype=np.float64)
        scale = x.std(axis=1, dtype=np.float64)
    elif method == "none":
        center = np.zeros(x.shape[0])
        scale = np.ones(x.shape[0])
    else:
        raise ValueError(f"unknown normalisation {method!r}; expected robust, zscore or none")
    center = np.asarray(center, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    flat = np.flatnonzero(~(scale >= FLAT_SCALE))  # NaN scale counts as flat too
    scale[flat] = 1.0
    return NormStats(
        method=method,
        center=[float(c) for c in center],
        scale=[float(s) for s in scale],
        flat_channels=[int(i) for i in flat],
    )


def normalise(
    x: np.ndarray, method: NormalisationKind = "robust", inplace: bool = False
) -> tuple[np.ndarray, NormStats]:
    """Normalise each channel (row) of float32 `x` by its own statistics; returns (y, stats).

    With `inplace` the caller's array is overwritten (the pipeline owns its intermediates).
    """
    x = np.asarray(x, dtype=np.float32)
    stats = channel_stats(x, method)
    if method == "none":
        return x, stats
    y = x if inplace else x.copy()
    y -= np.asarray(stats.center, dtype=np.float32)[:, None]
    y /= np.asarray(stats.scale, dtype=np.float32)[:, None]
    return y, stats


def clip(x: np.ndarray, limit: float) -> int:
    """Clip `x` in place to [-limit, limit]; returns how many values were changed."""
    if not limit > 0:
        raise ValueError(f"clip limit must be positive, got {limit}")
    count = int(np.count_nonzero(x > limit)) + int(np.count_nonzero(x < -limit))
    if count:
        np.clip(x, -limit, limit, out=x)
    return count
