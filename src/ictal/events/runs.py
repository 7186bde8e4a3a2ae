"""Runs: a boolean mask held as its sorted, disjoint, non-touching ``[lo, hi)`` index ranges.

SzCORE's masks (a sample per second of every recording) and NEDC EPOCH's epochs are scored by
counting samples where two masks agree; on runs that is a walk over a few events per file
instead of array operations over every sample, with the same integer counts.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only for a mask handed in: ``ictal score`` never imports it
    import numpy as np

Run = tuple[int, int]


def union(ranges: Iterable[Run], n: int) -> list[Run]:
    """The runs ``mask[lo:hi] = True`` sets for each range in a mask of ``n`` (Python slice
    bounds: ``hi`` past ``n`` cuts at ``n``, ``lo >= hi`` sets nothing); bounds must be >= 0."""
    out: list[Run] = []
    for lo, hi in sorted(ranges):
        hi = min(hi, n)
        if hi <= lo:
            continue
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def of_mask(mask: np.ndarray) -> list[Run]:
    """The runs of a 1-D boolean mask."""
    import numpy as np

    edges = np.flatnonzero(np.diff(mask.astype(np.int8), prepend=0, append=0))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def total(runs: list[Run]) -> int:
    """How many indexes the runs hold."""
    return sum(hi - lo for lo, hi in runs)


def overlap(a: list[Run], b: list[Run]) -> int:
    """How many indexes two run lists share (a merge walk, linear in both)."""
    i = j = shared = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if hi > lo:
            shared += hi - lo
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return shared


def clipped(lo: int, hi: int, n: int) -> Run:
    """``mask[lo:hi]``'s range in a mask of ``n`` for bounds >= 0 (empty: ``lo == hi``)."""
    hi = min(hi, n)
    lo = min(lo, hi)
    return lo, hi


class Lookup:
    """Runs indexed for range queries: samples of them inside ``[lo, hi)``, by bisection."""

    def __init__(self, runs: list[Run]) -> None:
        self.runs = runs
        self.stops = [hi for _, hi in runs]
        self.starts = [lo for lo, _ in runs]

    def count(self, lo: int, hi: int) -> int:
        """Indexes of the runs in ``[lo, hi)`` (none when ``lo >= hi``)."""
        if lo >= hi:
            return 0
        shared = 0
        for k in range(bisect_right(self.stops, lo), bisect_left(self.starts, hi)):
            a, b = self.runs[k]
            shared += min(b, hi) - max(a, lo)
        return shared

    def any(self, lo: int, hi: int) -> bool:
        """Whether some run holds an index in ``[lo, hi)``."""
        return lo < hi and bisect_right(self.stops, lo) < bisect_left(self.starts, hi)
