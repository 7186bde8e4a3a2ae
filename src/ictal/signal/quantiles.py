"""Exact quantiles of each row (numpy's default linear interpolation) without a full sort:
the order statistics they need, found by selection.

A long row first takes a bracket per quantile from a sorted subsample, counts what lies
below it and selects within it (one pass over the row per quantile, then a partition of a
small part); a bracket that misses its rank (a subsample that misleads, non-finite values)
falls back, for that row, to partitioning the whole row. Either way the values are the
row's own order statistics, so the result equals sorting's, bit for bit.
"""

from __future__ import annotations

import numpy as np

SAMPLE = 8192  # subsample per row that places the brackets
BRACKETED = 4 * SAMPLE  # rows at least this long are bracketed; shorter ones partitioned


def row_quantiles(x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles of each row, as np.percentile's default (linear) method; (len(qs), n_rows).
    ``x`` is left as it is."""
    n = x.shape[1]
    spans = []
    for q in qs:
        pos = q * (n - 1)
        i = min(int(np.floor(pos)), n - 1)
        spans.append((i, min(i + 1, n - 1), pos - i))
    ranks = sorted({r for i, j, _ in spans for r in (i, j)})
    out = np.empty((len(qs), x.shape[0]), dtype=np.float64)
    for r in range(x.shape[0]):
        row = x[r]
        found = _bracketed(row, ranks) if n >= BRACKETED else None
        if found is None:
            stats = _order_stats(np.array(row[None, :], copy=True), ranks)
            found = {k: float(v[0]) for k, v in stats.items()}
        for j, (i, i1, frac) in enumerate(spans):
            lo, hi = found[i], found[i1]
            out[j, r] = lo + (hi - lo) * frac
    return out


def _bracketed(row: np.ndarray, ranks: list[int]) -> dict[int, float] | None:
    """The row's values at ``ranks`` (ascending, in runs of at most two adjacent ranks) from
    a bracket each, or None when one misses (the caller then partitions the whole row)."""
    if not np.isfinite(row.sum(dtype=np.float64)):
        return None
    n = row.shape[0]
    sample = np.sort(row[:: n // SAMPLE])
    m = sample.shape[0]
    margin = 2 * int(np.sqrt(m)) + 2
    found: dict[int, float] = {}
    for first in ranks:
        if first in found:
            continue
        second = first + 1 if first + 1 in ranks else first
        at = round(first / (n - 1) * (m - 1))
        lo, hi = sample[max(at - margin, 0)], sample[min(at + margin, m - 1)]
        below = int(np.count_nonzero(row < lo))
        inside = row[(row >= lo) & (row <= hi)]
        a, b = first - below, second - below
        if a < 0 or b >= inside.shape[0]:
            return None
        inside.partition(a)
        found[first] = float(inside[a])
        found[second] = float(inside[a + 1 :].min()) if b > a else found[first]
    return found


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
