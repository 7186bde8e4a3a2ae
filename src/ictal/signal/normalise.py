"""Per-channel, per-recording normalisation with recorded statistics, and counted clipping.

Robust (median, IQR / 1.349) is the default because seizures and artifacts are exactly the
outliers that would inflate a mean / std. Statistics are returned so the cache stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ictal.signal.quantiles import row_quantiles

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
