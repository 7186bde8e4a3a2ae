"""Polyphase resampling to the cache rate (scipy `resample_poly`, anti-aliased, float32)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly


def resample_ratio(source: float, target: float) -> tuple[int, int]:
    """(up, down) with up/down = target/source, e.g. 250 -> 256 Hz is (128, 125)."""
    if source <= 0 or target <= 0:
        raise ValueError(f"sample rates must be positive, got {source} -> {target}")
    ratio = Fraction(target / source).limit_denominator()
    return ratio.numerator, ratio.denominator


def resampled_length(n: int, source: float, target: float) -> int:
    """Output length: round(n * target / source), halves rounded up (exact integer math)."""
    up, down = resample_ratio(source, target)
    return (2 * n * up + down) // (2 * down)


def resample(x: np.ndarray, source: float, target: float, axis: int = -1) -> np.ndarray:
    """Resample float32 data along `axis` from `source` to `target` Hz.

    Identity (no copy) when the rates are equal. Otherwise exactly `resampled_length` samples
    along `axis`: resample_poly yields ceil(n * up / down), trimmed by at most one sample.
    The result is C-contiguous (scipy returns a padded view), which the filters run faster on.
    """
    x = np.asarray(x, dtype=np.float32)
    if source == target:
        return x
    up, down = resample_ratio(source, target)
    y = resample_poly(x, up, down, axis=axis)
    n_out = resampled_length(x.shape[axis], source, target)
    if y.shape[axis] != n_out:
        index = [slice(None)] * y.ndim
        index[axis] = slice(0, n_out)
        y = y[tuple(index)]
    return np.ascontiguousarray(y, dtype=np.float32)
