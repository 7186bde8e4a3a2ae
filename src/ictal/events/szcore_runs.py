"""SzCORE's evaluator on runs: ``timescoring`` 0.0.7's ``EventScoring`` and ``SampleScoring``
step for step (the same float arithmetic on event times, the same rounding onto its 10 Hz
grid, the same merge and split loops), with each mask held as its runs, so a recording costs
its events and not its samples. The counts are timescoring's, integer for integer
(tests/test_szcore_runs.py compares them on thousands of pairs)."""

from __future__ import annotations

from typing import Protocol

from ictal.events.counts import EventCounts
from ictal.events.runs import Lookup, Run, clipped, overlap, total, union

EVENT_FS = 10  # EventScoring works on a 10 Hz grid whatever the masks' rate
_MARGIN = 1e-6  # EventScoring's: a hit needs an overlap above min_overlap + 1e-6

Seconds = list[tuple[float, float]]


class Params(Protocol):
    """The parameters EventScoring takes (``SzcoreParams`` holds them)."""

    fs: int
    tolerance_start_s: float
    tolerance_end_s: float
    min_overlap: float
    max_event_s: float
    merge_gap_s: float


def _seconds(runs: list[Run], fs: int) -> Seconds:
    """``Annotation(mask, fs).events``: each run as (start, stop) in seconds."""
    return [(lo / fs, hi / fs) for lo, hi in runs]


def _grid(events: Seconds, fs: int, n: int) -> list[Run]:
    """``Annotation(events, fs, n).mask`` as runs: each event ``round(t * fs)`` to
    ``round(t * fs)``."""
    return union(((round(a * fs), round(b * fs)) for a, b in events), n)


def _merged(events: Seconds, gap: float) -> Seconds:
    """``EventScoring._mergeNeighbouringEvents``: an event starting less than ``gap`` after
    the previous one stops joins it (the joined event stops where the later one does)."""
    out = list(events)
    i = 1
    while i < len(out):
        event = out[i]
        if event[0] - out[i - 1][1] < gap:
            out[i - 1] = (out[i - 1][0], event[1])
            del out[i]
            i -= 1
        i += 1
    return out


def _split(events: Seconds, longest: float) -> Seconds:
    """``EventScoring._splitLongEvents``: events longer than ``longest`` cut into pieces of
    ``longest`` (the remainder is visited again, as timescoring's loop does)."""
    out = list(events)
    for i, event in enumerate(out):
        if event[1] - event[0] > longest:
            out[i] = (event[0], event[0] + longest)
            out.insert(i + 1, (event[0] + longest, event[1]))
    return out


def _covers(found: int, width: float, min_overlap: float) -> bool:
    """``(found / 10) / width > min_overlap + 1e-6`` as numpy evaluates it (a zero width
    gives inf or nan, not an error)."""
    if width == 0:
        return found > 0
    return (found / EVENT_FS) / width > min_overlap + _MARGIN


def event_counts(ref: list[Run], hyp: list[Run], n: int, p: Params) -> EventCounts:
    """``EventScoring(Annotation(ref mask, fs), Annotation(hyp mask, fs), p)``'s counts."""
    n10 = round(n / p.fs * EVENT_FS)
    events = []
    for runs in (ref, hyp):
        merged = _merged(_seconds(runs, p.fs), p.merge_gap_s)
        events.append(_split(merged, p.max_event_s))
    ref_events, hyp_events = events
    hyp_mask = Lookup(_grid(hyp_events, EVENT_FS, n10))
    duration = n10 / EVENT_FS
    hits: list[Run] = []
    before, after, min_overlap = p.tolerance_start_s, p.tolerance_end_s, p.min_overlap
    for start, stop in ref_events:
        a = start - before
        a = a if a > 0 else 0
        b = stop + after
        b = b if b < duration else duration
        lo, hi = clipped(round(a * EVENT_FS), round(b * EVENT_FS), n10)
        if _covers(hyp_mask.count(lo, hi), b - a, min_overlap):
            hits.append((lo, hi))
    tp_mask = Lookup(union(hits, n10))
    fp = 0
    for start, stop in hyp_events:
        lo, hi = clipped(round(start * EVENT_FS), round(stop * EVENT_FS), n10)
        fp += not tp_mask.any(lo, hi)
    tp, ref_true = len(hits), len(ref_events)
    return EventCounts(float(tp), float(ref_true - tp), float(fp), ref_true, n10 / EVENT_FS)


def sample_counts(ref: list[Run], hyp: list[Run], n: int, fs: int) -> EventCounts:
    """``SampleScoring(Annotation(ref mask, fs), Annotation(hyp mask, fs), fs)``'s counts.

    SampleScoring rebuilds each mask from its events at ``round(k / fs * fs)``, which is ``k``
    for every sample index below 2**51 (the quotient's rounding error times ``fs`` stays under
    half a sample), so the masks' own runs are what it compares."""
    tp, ref_true = overlap(ref, hyp), total(ref)
    fp = total(hyp) - tp
    return EventCounts(float(tp), float(ref_true - tp), float(fp), ref_true, n / fs)
