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
    end = 0  # where the last run stops
    for lo, hi in sorted(ranges):
        if hi > n:
            hi = n
        if hi <= lo:
            continue
        if out and lo <= end:
            if hi > end:
                out[-1] = (out[-1][0], hi)
                end = hi
        else:
            out.append((lo, hi))
            end = hi
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
    if not a or not b:
        return 0
    i = j = shared = 0
    na, nb = len(a), len(b)
    a_lo, a_hi = a[0]
    b_lo, b_hi = b[0]
    while True:
        lo = a_lo if a_lo > b_lo else b_lo
        hi = a_hi if a_hi < b_hi else b_hi
        if hi > lo:
            shared += hi - lo
        if a_hi <= b_hi:
            i += 1
            if i == na:
                return shared
            a_lo, a_hi = a[i]
        else:
            j += 1
            if j == nb:
                return shared
            b_lo, b_hi = b[j]


def clipped(lo: int, hi: int, n: int) -> Run:
    """``mask[lo:hi]``'s range in a mask of ``n`` for bounds >= 0 (empty: ``lo == hi``)."""
    if hi > n:
        hi = n
    return (lo if lo < hi else hi), hi


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
            shared += (b if b < hi else hi) - (a if a > lo else lo)
        return shared

    def any(self, lo: int, hi: int) -> bool:
        """Whether some run holds an index in ``[lo, hi)``."""
        return lo < hi and bisect_right(self.stops, lo) < bisect_left(self.starts, hi)
