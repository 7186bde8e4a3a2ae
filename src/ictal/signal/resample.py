"""The rate change's arithmetic: the exact up/down ratio and the output length rule."""

from __future__ import annotations

from fractions import Fraction


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
