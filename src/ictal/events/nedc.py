"""NEDC v6.0.0's four scorers (OVLP, TAES, EPOCH, DPALIGN) for the seizure class, rule for rule.

Parity with Temple's ``nedc_eeg_eval`` v6.0.0 is the contract, quirks included; every rule
below is written out in docs/evaluation.md ("NEDC v6.0.0 rules") with the test that pins it.
A file is first turned into a ``Timeline`` the way NEDC prepares it: events sorted, gaps
filled with background (times compared at 4 decimals), neighbours of one label joined.
"""

from __future__ import annotations

import functools
import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ictal.events.counts import EventCounts
from ictal.events.intervals import Event, merge_close
from ictal.events.runs import Run, of_mask, overlap, total, union

if TYPE_CHECKING:  # numpy is imported where arrays are built: the scorers walk runs
    import numpy as np

Segment = tuple[float, float, bool]  # (start, stop, is_seizure)
DIGITS = 4  # NEDC's MIN_PRECISION: gap filling and the duration check compare at 4 decimals
EPOCH_S = 0.25  # NEDC EPOCH's default epoch (parameter file v00)


_START_STOP = operator.itemgetter(0, 1)  # rows sort by (start, stop), labels keep their order


class TimelineError(ValueError):
    """A file or pair NEDC cannot score: no duration, an empty event, durations that differ."""


@dataclass(frozen=True)
class Timeline:
    """One file as NEDC scores it: labelled segments tiling ``0..duration_s`` in order,
    neighbours of different labels (``build_timeline`` joins the others)."""

    segments: tuple[Segment, ...]

    @property
    def duration_s(self) -> float:
        """The recording time NEDC adds up for FA/24h: where the last segment stops."""
        return self.segments[-1][1]

    @functools.cached_property
    def seizures(self) -> list[Event]:
        """The seizure segments (each already joined with touching ones); computed once, as
        every scorer asks (callers must not change the list)."""
        return [(a, b) for a, b, seiz in self.segments if seiz]

    @functools.cached_property
    def index(self) -> _Index:
        """The seizures indexed for range lookups (OVLP and TAES share it)."""
        return _Index(self.seizures)


def build_timeline(rows: Sequence[Segment], duration_s: float) -> Timeline:
    """A timeline from labelled rows (any order) and the file's duration, as NEDC fills it.

    Rows are sorted by (start, stop). Walking them, a background segment is put wherever the
    next row does not start (at 4 decimals) where the previous one stopped, and one from the
    last stop to the duration; then consecutive segments of one label are joined (first
    start, last stop). Overlapping rows or rows past the end make backward background
    segments that cover no time, exactly as in NEDC. Rows must have start < stop.
    """
    return fill_timeline(rows, duration_s)[0]


def fill_timeline(rows: Sequence[Segment], duration_s: float) -> tuple[Timeline, bool, bool]:
    """``build_timeline``'s timeline, and what the walk saw that NEDC scores without a word:
    a row starting (at 4 decimals) before the previous one stops, a row outside 0..duration."""
    if not (math.isfinite(duration_s) and round(duration_s, DIGITS) > 0):
        raise TimelineError(f"duration {duration_s} is not a positive number of seconds")
    end = round(duration_s, DIGITS)
    cursor = 0.0
    overlapping = outside = False
    # Filled and joined in one pass: a segment of the label of the one before extends it.
    joined: list[Segment] = []
    put, low, high = joined.append, -math.inf, math.inf
    last = math.nan
    label: bool | None = None  # the last segment's
    for start, stop, seiz in sorted(rows, key=_START_STOP):
        if not low < start < stop < high:  # both finite, and in order
            raise TimelineError(f"event [{start}, {stop}] does not have start < stop")
        first = cursor if start == last else round(start, DIGITS)  # a row tiling the last
        if first != cursor:
            overlapping = overlapping or (first < cursor and bool(joined))
            if label is not None and not label:
                joined[-1] = (joined[-1][0], first, False)
            else:
                put((cursor, first, False))
                label = False
        if label is not None and label == seiz:
            joined[-1] = (joined[-1][0], stop, seiz)
        else:
            put((start, stop, seiz))
            label = seiz
        cursor, last = round(stop, DIGITS), stop
        outside = outside or cursor > end or start < 0
    if cursor != end:
        if label is not None and not label:
            joined[-1] = (joined[-1][0], end, False)
        else:
            put((cursor, end, False))
    return Timeline(tuple(joined)), overlapping, outside


def timeline_of_events(events: Sequence[Event], duration_s: float) -> Timeline:
    """The timeline of seizure events as a ``.csv_bi`` export writes them: times at 4
    decimals, clipped to the recording, overlapping events united."""
    end = round(duration_s, DIGITS)
    rounded = sorted(
        (max(round(float(a), DIGITS), 0.0), min(round(float(b), DIGITS), end)) for a, b in events
    )
    united = merge_close([(a, b) for a, b in rounded if b > a], 0.0)
    return build_timeline([(a, b, True) for a, b in united], duration_s)


def _check_pair(ref: Timeline, hyp: Timeline) -> None:
    """NEDC scores a pair only when both end at the same time (4 decimals)."""
    if round(ref.duration_s, DIGITS) != round(hyp.duration_s, DIGITS):
        raise TimelineError(
            f"durations differ: reference {ref.duration_s:.4f} s, hypothesis {hyp.duration_s:.4f} s"
        )


class _Index:
    """Seizure events with their starts and stops kept sorted for range lookups, when they
    are monotone (every accepted timeline); otherwise every lookup scans all events."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.starts = [a for a, _ in events]
        self.stops = [b for _, b in events]
        self.sec_starts = [int(a) for a in self.starts]
        self.sec_stops = [int(b) for b in self.stops]
        self.monotone = all(map(operator.le, self.stops, self.stops[1:]))

    def overlapping(self, start: float, stop: float) -> range:
        """Indexes that may overlap (start, stop) strictly; callers test each one."""
        if not self.monotone:
            return range(len(self.events))
        return range(bisect_right(self.stops, start), bisect_left(self.starts, stop))

    def overlaps(self, start: float, stop: float) -> bool:
        """Whether some event overlaps (start, stop) strictly: when monotone, every index of
        ``overlapping`` does (its stop is after ``start``, its start before ``stop``)."""
        if self.monotone:
            return bisect_right(self.stops, start) < bisect_left(self.starts, stop)
        return any(_strict((start, stop), event) for event in self.events)

    def same_second(self, start: float, stop: float) -> range:
        """Indexes that may share a whole second with (start, stop); callers test each."""
        if not self.monotone:
            return range(len(self.events))
        return range(
            bisect_left(self.sec_stops, int(start)), bisect_right(self.sec_starts, int(stop))
        )


def _strict(a: Event, b: Event) -> bool:
    """NEDC's overlap: ``b.stop > a.start and b.start < a.stop`` (touching is not overlap)."""
    return b[1] > a[0] and b[0] < a[1]


def _same_second(a: Event, b: Event) -> bool:
    """NEDC TAES's ``anyovlp``: the whole seconds each event touches (``int`` of its start to
    ``int`` of its stop, inclusive) have one in common. Touching events pass, and so do events
    up to a second apart within one second."""
    return int(b[0]) <= int(a[1]) and int(a[0]) <= int(b[1])


def ovlp(ref: Timeline, hyp: Timeline) -> EventCounts:
    """NEDC any-overlap: a reference seizure strictly overlapped by a hypothesis seizure is a
    hit, else a miss; a hypothesis seizure overlapping no reference seizure is a false alarm."""
    _check_pair(ref, hyp)
    r, h = ref.seizures, hyp.seizures
    hi, ri = hyp.index, ref.index
    hits = sum(hi.overlaps(a, b) for a, b in r)
    false_alarms = sum(not ri.overlaps(a, b) for a, b in h)
    return EventCounts(float(hits), float(len(r) - hits), float(false_alarms), len(r),
                       ref.duration_s)  # fmt: skip


def _taes_pair(ref: Event, hyp: Event) -> tuple[float, float]:
    """TAES credit of one pair (NEDC ``calc_hf``): hit and false alarm, as fractions of the
    reference length, by the four ways two events can lie; the false alarm is capped at 1.
    Pairs that only share a second can give a negative hit, as in NEDC."""
    r0, r1 = ref
    h0, h1 = hyp
    length = r1 - r0
    if h0 <= r0 and h1 <= r1:
        before = (r0 - h0) / length
        return (h1 - r0) / length, before if before < 1.0 else 1.0
    if h0 >= r0 and h1 >= r1:
        after = (h1 - r1) / length
        return (r1 - h0) / length, after if after < 1.0 else 1.0
    if h0 < r0 and h1 > r1:
        return 1.0, min(((h1 - r1) + (r0 - h0)) / length, 1.0)
    return (h1 - h0) / length, 0.0


def taes(ref: Timeline, hyp: Timeline) -> EventCounts:
    """NEDC time-aligned event scoring, sequencing and quirks as in v6.0.0.

    References are visited in time order. One that is still unused and strictly overlapped
    by some hypothesis takes, in order, every unused hypothesis sharing a whole second with
    it. A hypothesis reaching to or past the reference's stop scores the pair and turns every
    later reference sharing a second with it into one full miss (used or not); a shorter one
    scores the pair and adds the partial credit of every later hypothesis sharing a second
    with the reference (used or not). Unused references are a miss each, unused hypotheses a
    false alarm each.
    """
    _check_pair(ref, hyp)
    r, h = ref.seizures, hyp.seizures
    ri, hi = ref.index, hyp.index
    ref_free = [True] * len(r)
    hyp_free = [True] * len(h)
    hits = misses = false_alarms = 0.0
    for i, rev in enumerate(r):
        if not ref_free[i] or not any(_strict(rev, h[j]) for j in hi.overlapping(*rev)):
            continue
        for j in hi.same_second(*rev):
            if not hyp_free[j] or not _same_second(rev, h[j]):
                continue
            hit, fa = _taes_pair(rev, h[j])
            miss = 1.0 - hit
            ref_free[i] = hyp_free[j] = False
            if h[j][1] >= rev[1]:
                for k in ri.same_second(*h[j]):
                    if k > i and _same_second(r[k], h[j]):
                        ref_free[k] = False
                        miss += 1.0
            else:
                for k in hi.same_second(*rev):
                    if k > j and _same_second(rev, h[k]):
                        hyp_free[k] = False
                        more_hit, more_fa = _taes_pair(rev, h[k])
                        hit, miss, fa = hit + more_hit, miss - more_hit, fa + more_fa
            hits, misses, false_alarms = hits + hit, misses + miss, false_alarms + fa
    misses += sum(ref_free)
    false_alarms += sum(hyp_free)
    return EventCounts(hits, misses, false_alarms, len(r), ref.duration_s)


def _epoch_labels(tl: Timeline, times: np.ndarray) -> np.ndarray:
    """Seizure or not at each time: the first segment holding it (both ends inclusive), or
    the last segment when none does (NEDC's index -1)."""
    import numpy as np

    labels = np.full(times.shape, tl.segments[-1][2], dtype=bool)
    for start, stop, seiz in reversed(tl.segments):
        lo, hi = np.searchsorted(times, start, "left"), np.searchsorted(times, stop, "right")
        labels[lo:hi] = seiz
    return labels


def _epoch_count(stop: float, epoch_s: float) -> int:
    """How many epoch centres ``epoch/2 + i * epoch`` lie at or before ``stop``, as NEDC."""
    half = epoch_s / 2.0
    n = int((stop - half) // epoch_s) + 1 if stop >= half else 0
    while half + n * epoch_s <= stop:
        n += 1
    while n and half + (n - 1) * epoch_s > stop:
        n -= 1
    return n


def _centres(n: int, epoch_s: float) -> np.ndarray:
    import numpy as np

    return epoch_s / 2.0 + np.arange(n, dtype=np.float64) * epoch_s


def epoch_times(stop: float, epoch_s: float = EPOCH_S) -> np.ndarray:
    """Epoch centres ``epoch/2 + i * epoch`` up to and including ``stop``, computed like NEDC."""
    return _centres(_epoch_count(stop, epoch_s), epoch_s)


def _epoch_bounds(tl: Timeline, n: int, epoch_s: float) -> list[tuple[int, int, bool]]:
    """Each segment's ``np.searchsorted`` of its start (left) and stop (right) among the first
    ``n`` centres, without the array: the centres at or before a time, less one when a centre
    lies exactly on a start (a start equal to the previous stop reuses its count)."""
    half = epoch_s / 2.0
    bounds = []
    last, last_upto = math.nan, 0
    for start, stop, seiz in tl.segments:
        if start != last:
            upto = _epoch_count(start, epoch_s)
            last_upto = upto if upto < n else n
        lo = last_upto - 1 if last_upto and half + (last_upto - 1) * epoch_s == start else last_upto
        last, upto = stop, _epoch_count(stop, epoch_s)
        last_upto = upto if upto < n else n
        bounds.append((lo, last_upto, seiz))
    return bounds


def _epoch_runs(tl: Timeline, n: int, epoch_s: float) -> list[Run]:
    """The seizure epochs of ``_epoch_labels`` as runs of epoch indexes. Segments in time
    order (every timeline of non-overlapping rows) own the centres no earlier one holds;
    others are painted on the array as NEDC's loop does."""
    default = tl.segments[-1][2]
    runs: list[Run] = []
    covered = first_lo = 0  # while in order, where the last segment stops and starts
    for lo, hi, seiz in _epoch_bounds(tl, n, epoch_s):
        if lo < first_lo or hi < covered:  # out of time order: painted as NEDC paints
            return of_mask(_epoch_labels(tl, _centres(n, epoch_s)))
        first_lo = lo
        if lo > covered:
            if default:  # held by no segment: the last segment's label
                runs.append((covered, lo))
            first = lo
        else:
            first = covered
        if seiz and hi > first:
            runs.append((first, hi))
        covered = hi
    if covered < n and default:
        runs.append((covered, n))
    return union(runs, n)


def epoch(ref: Timeline, hyp: Timeline, epoch_s: float = EPOCH_S) -> EventCounts:
    """NEDC epoch scoring: both files sampled at epoch centres up to the reference's end;
    hits, misses and false alarms are counts of epochs, FA/24h weighs each by ``epoch_s``."""
    _check_pair(ref, hyp)
    n = _epoch_count(ref.duration_s, epoch_s)
    r, h = _epoch_runs(ref, n, epoch_s), _epoch_runs(hyp, n, epoch_s)
    hits = overlap(r, h)
    n_ref = total(r)
    false_alarms = total(h) - hits
    return EventCounts(float(hits), float(n_ref - hits), float(false_alarms), n_ref,
                       ref.duration_s, fa_seconds=epoch_s)  # fmt: skip


_SUB, _INS, _DEL = 0, 1, 2


@dataclass(frozen=True)
class _Lattice:
    """NEDC DPALIGN's cost table for two timelines, cell by cell without storing it.

    NEDC aligns ``[None, labels..., None]`` of both files with unit penalties (deletion,
    insertion, substitution all 1.0 in its parameter file). A built timeline alternates its
    labels (neighbours of one label are joined), so a file is its first label and its length
    ``p``, and every cell has a closed form. For the first ``i`` and ``j`` labels: ``|i - j|``
    when they differ in length (the longer holds the shorter as a subsequence), else 0 when
    they start alike and ``min(i, 2)`` when not. The closing ``None`` matches only the other
    one: a cell of the last row costs ``1 + min(D(p, j), D(p, j - 1))``, of the last column
    likewise, the corner ``D(p, q)``. Costs are small integers, so NEDC's float comparisons
    are exact and a step read from these cells is the step its table holds.
    """

    first_a: bool
    p: int
    first_b: bool
    q: int

    def label_a(self, i: int) -> bool | None:
        return None if i in (0, self.p + 1) else self.first_a ^ (i % 2 == 0)

    def label_b(self, j: int) -> bool | None:
        return None if j in (0, self.q + 1) else self.first_b ^ (j % 2 == 0)

    def _inner(self, i: int, j: int) -> int:
        if i != j:
            return abs(i - j)
        return 0 if i == 0 or self.first_a == self.first_b else min(i, 2)

    def cost(self, i: int, j: int) -> int:
        p, q = self.p, self.q
        if i <= p and j <= q:
            return self._inner(i, j)
        if j <= q:  # the last row: the reference's closing None
            return p + 1 if j == 0 else 1 + min(self._inner(p, j), self._inner(p, j - 1))
        if i <= p:  # the last column: the hypothesis's closing None
            return q + 1 if i == 0 else 1 + min(self._inner(i, q), self._inner(i - 1, q))
        return self._inner(p, q)

    def step(self, i: int, j: int) -> int:
        """The choice NEDC's table holds at (i, j): a substitution unless an insertion is
        strictly cheaper, then a deletion if strictly cheaper than both."""
        if i == 0 or j == 0:
            return _SUB if i == j else (_INS if i == 0 else _DEL)
        sub = self.cost(i - 1, j - 1) + (self.label_a(i) != self.label_b(j))
        ins = self.cost(i, j - 1) + 1
        dele = self.cost(i - 1, j) + 1
        if dele < min(sub, ins):
            return _DEL
        return _INS if ins < sub else _SUB


def _alternating(tl: Timeline) -> tuple[bool, int]:
    """A timeline's first label and length; its labels must alternate (a built timeline)."""
    segments = tl.segments
    labels = [seg[2] for seg in segments]
    if any(map(operator.eq, labels, labels[1:])):
        raise TimelineError("DPALIGN needs a timeline whose neighbouring segments differ")
    return segments[0][2], len(segments)


@functools.lru_cache(maxsize=4096)
def _aligned(first_a: bool, p: int, first_b: bool, q: int) -> tuple[int, int]:
    """Hits and false alarms of the traceback through ``_Lattice(first_a, p, first_b, q)``:
    the four numbers fix the whole table, so pairs of the same shape share one walk."""
    grid = _Lattice(first_a, p, first_b, q)
    i, j = grid.p + 1, grid.q + 1
    hits = false_alarms = 0
    while i >= 0 and j >= 0:  # the pairs at both ends hold the None sentinels: never counted
        how = grid.step(i, j)
        if how == _DEL:
            i -= 1
        elif how == _INS:
            false_alarms += grid.label_b(j) is True
            j -= 1
        else:
            hits += grid.label_a(i) is True and grid.label_b(j) is True
            i, j = i - 1, j - 1
    return hits, false_alarms


def dpalign(ref: Timeline, hyp: Timeline) -> EventCounts:
    """NEDC DP alignment of the two label sequences (segments, background included).

    Unit penalties; ties prefer a substitution, then an insertion. A reference seizure
    aligned with a hypothesis seizure is a hit, with background or nothing a miss; a
    hypothesis seizure aligned with nothing is a false alarm (one aligned with reference
    background is not). The traceback walks NEDC's table from its corner reading each cell
    from ``_Lattice``: time linear in the number of segments, memory constant beside the
    timelines (NEDC's table is quadratic: 3 GB for a file of 4,000 events). A table depends
    only on each timeline's first label and length, so its walk is memoised by them.
    """
    _check_pair(ref, hyp)
    hits, false_alarms = _aligned(*_alternating(ref), *_alternating(hyp))
    n_ref = len(ref.seizures)
    return EventCounts(float(hits), float(n_ref - hits), float(false_alarms), n_ref,
                       ref.duration_s)  # fmt: skip
