"""NEDC v6.0.0's scorers, rule by rule (docs/evaluation.md, "NEDC v6.0.0 rules").

Every expected row below was worked by hand and then checked against the official
``nedc_eeg_eval`` v6.0.0 run on the same two files: the counts are NEDC's, not ours.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ictal.events.counts import EventCounts, pool
from ictal.events.nedc import (
    Timeline,
    TimelineError,
    build_timeline,
    dpalign,
    epoch,
    epoch_times,
    ovlp,
    taes,
    timeline_of_events,
)
from ictal.events.scorers import TIMELINE_SCORERS, score_ovlp, score_taes

N = "ovlp", "taes", "epoch", "dpalign"
SCORE = {"ovlp": ovlp, "taes": taes, "epoch": epoch, "dpalign": dpalign}

# name: (reference seizures, hypothesis seizures, {scorer: (targets, hits, misses, FAs)}),
# all in a 100 s file.
CASES = {
    # touching is not overlap for OVLP; TAES has no strictly overlapping hypothesis either;
    # DPALIGN ignores time: bckg-seiz-bckg against bckg-seiz-bckg is a hit
    "touching": ([(10, 20)], [(20, 30)], {
        "ovlp": (1, 0, 1, 1), "taes": (1, 0, 1, 1), "epoch": (40, 0, 40, 40),
        "dpalign": (1, 1, 0, 0)}),
    # NEDC's TAES quirk: once (12,15) opens the reference, the touching (20,25) shares the
    # second 20 with it and is charged 5/10 as a fractional false alarm, no hit
    "taes_touching_quirk": ([(10, 20)], [(12, 15), (20, 25)], {
        "ovlp": (1, 1, 0, 1), "taes": (1, 0.3, 0.7, 0.5), "epoch": (40, 12, 28, 20),
        "dpalign": (1, 1, 0, 1)}),
    # ... and a hypothesis in the same whole second but after the reference earns a negative
    # hit, (10.5 - 10.7) / 0.3, with its false alarm capped at 1
    "same_second": ([(10.2, 10.5)], [(10.3, 10.4), (10.7, 11.3)], {
        "ovlp": (1, 1, 0, 1), "taes": (1, -1 / 3, 4 / 3, 1), "epoch": (1, 1, 0, 2),
        "dpalign": (1, 1, 0, 1)}),
    # one hypothesis over two references: OVLP two hits; TAES one hit, the second reference a
    # full miss, false alarm (5 + 25) / 10 capped at 1
    "one_hyp_two_refs": ([(10, 20), (30, 40)], [(5, 45)], {
        "ovlp": (2, 2, 0, 0), "taes": (2, 1, 1, 1), "epoch": (80, 80, 0, 80),
        "dpalign": (2, 1, 1, 0)}),
    "hyp_bridges_refs": ([(10, 20), (30, 40)], [(15, 35)], {
        "ovlp": (2, 2, 0, 0), "taes": (2, 0.5, 1.5, 1), "epoch": (80, 40, 40, 40),
        "dpalign": (2, 1, 1, 0)}),
    "nested_long_hyp": ([(10, 20), (30, 40), (50, 60)], [(5, 65)], {
        "ovlp": (3, 3, 0, 0), "taes": (3, 1, 2, 1), "epoch": (120, 120, 0, 120),
        "dpalign": (3, 1, 2, 0)}),
    # several hypotheses inside one reference add their partial hits: (3 + 5 + 2) / 30
    "three_hyps_one_ref": ([(10, 40)], [(12, 15), (20, 25), (30, 32)], {
        "ovlp": (1, 1, 0, 0), "taes": (1, 1 / 3, 2 / 3, 0), "epoch": (120, 40, 80, 0),
        "dpalign": (1, 1, 0, 2)}),
    "partial_overlaps": ([(10, 20)], [(5, 12), (18, 30)], {
        "ovlp": (1, 1, 0, 0), "taes": (1, 0.4, 0.6, 1.5), "epoch": (40, 16, 24, 60),
        "dpalign": (1, 1, 0, 1)}),
    # events at 0 and ending exactly at the end of the file
    "at_zero_and_end": ([(0, 5), (95, 100)], [(0, 1), (99, 100)], {
        "ovlp": (2, 2, 0, 0), "taes": (2, 0.4, 1.6, 0), "epoch": (40, 8, 32, 0),
        "dpalign": (2, 2, 0, 0)}),
    "both_empty": ([], [], {
        "ovlp": (0, 0, 0, 0), "taes": (0, 0, 0, 0), "epoch": (0, 0, 0, 0),
        "dpalign": (0, 0, 0, 0)}),
    "hyp_empty": ([(10, 20)], [], {
        "ovlp": (1, 0, 1, 0), "taes": (1, 0, 1, 0), "epoch": (40, 0, 40, 0),
        "dpalign": (1, 0, 1, 0)}),
    "ref_empty": ([], [(10, 20), (50, 60)], {
        "ovlp": (0, 0, 0, 2), "taes": (0, 0, 0, 2), "epoch": (0, 0, 0, 80),
        "dpalign": (0, 0, 0, 2)}),
    # touching reference rows join into one event (one target)
    "adjacent_joined": ([(10, 20), (20, 30)], [(25, 26)], {
        "ovlp": (1, 1, 0, 0), "taes": (1, 0.05, 0.95, 0), "epoch": (80, 4, 76, 0),
        "dpalign": (1, 1, 0, 0)}),
    # an epoch centre on a boundary belongs to the earlier segment (both ends inclusive)
    "epoch_boundary": ([(10, 10.125)], [(10.125, 11)], {
        "ovlp": (1, 0, 1, 1), "taes": (1, 0, 1, 1), "epoch": (1, 0, 1, 3),
        "dpalign": (1, 1, 0, 0)}),
    "dp_shifted": ([(10, 20), (50, 60)], [(70, 80)], {
        "ovlp": (2, 0, 2, 1), "taes": (2, 0, 2, 1), "epoch": (80, 0, 80, 40),
        "dpalign": (2, 1, 1, 0)}),
}  # fmt: skip


def _tl(events: list[tuple[float, float]], duration: float = 100.0):
    return build_timeline([(float(a), float(b), True) for a, b in events], duration)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_worked_pairs_match_nedc(name: str) -> None:
    ref, hyp, expected = CASES[name]
    for scorer in N:
        c = SCORE[scorer](_tl(ref), _tl(hyp))
        got = (c.n_ref, c.hits, c.misses, c.false_alarms)
        assert got == pytest.approx(expected[scorer], abs=1e-9), f"{name} {scorer}: {got}"
        assert c.duration_s == 100.0


def test_timeline_fills_gaps_and_joins_like_nedc() -> None:
    tl = build_timeline([(10.0, 20.0, True), (20.0, 30.0, True), (50.0, 60.0, True)], 100.0)
    assert tl.segments == ((0.0, 10.0, False), (10.0, 30.0, True), (30.0, 50.0, False),
                           (50.0, 60.0, True), (60.0, 100.0, False))  # fmt: skip
    # explicit background rows change nothing
    rows = [(0.0, 10.0, False), (10.0, 30.0, True), (30.0, 50.0, False), (50.0, 60.0, True)]
    assert build_timeline(rows, 100.0) == tl
    # a gap below 4 decimals is no gap: the events join
    assert build_timeline([(1.0, 2.00001, True), (2.00004, 3.0, True)], 9.0).seizures == [
        (1.0, 3.0)
    ]
    # an event past the end keeps its length; the recording still ends at the duration
    past = build_timeline([(90.0, 120.0, True)], 100.0)
    assert past.seizures == [(90.0, 120.0)] and past.duration_s == 100.0
    assert build_timeline([], 50.0).segments == ((0.0, 50.0, False),)
    with pytest.raises(TimelineError):
        build_timeline([(5.0, 5.0, True)], 10.0)
    with pytest.raises(TimelineError):
        build_timeline([], 0.0)


def test_durations_must_agree_at_four_decimals() -> None:
    ref = _tl([(10, 20)], 600.0)
    assert ovlp(ref, _tl([(10, 20)], 600.00004)).hits == 1
    for scorer in N:
        with pytest.raises(TimelineError, match="durations differ"):
            SCORE[scorer](ref, _tl([(10, 20)], 600.0001))


def test_overlapping_events_are_scored_as_nedc_does() -> None:
    # NEDC does not unite overlapping rows: (10,20) and (15,25) stay two targets
    ref = _tl([(10, 20), (15, 25)])
    c = ovlp(ref, _tl([(12, 13)]))
    assert (c.n_ref, c.hits, c.misses) == (2, 1, 1)


def test_epoch_times_follow_nedc_arithmetic() -> None:
    t = epoch_times(1.0)
    assert list(t) == [0.125, 0.375, 0.625, 0.875]
    assert len(epoch_times(100.0)) == 400 and len(epoch_times(0.1)) == 0
    assert len(epoch_times(10.125)) == 41  # a centre exactly at the end counts
    c = epoch(_tl([(0, 1)], 10.0), _tl([(0, 1)], 10.0), epoch_s=0.5)
    assert (c.n_ref, c.hits) == (2, 2) and c.fa_seconds == 0.5


def test_epoch_fa_rate_weighs_epochs_by_their_length() -> None:
    c = epoch(_tl([], 3600.0), _tl([(0, 10)], 3600.0))
    assert c.false_alarms == 40
    assert c.fa_per_24h == pytest.approx(40 * 0.25 / 3600.0 * 86400.0)
    assert pool([c, c]).fa_per_24h == pytest.approx(c.fa_per_24h)


def _random_file(rng: np.random.Generator, duration: float) -> list[tuple[float, float]]:
    """Up to 8 disjoint events on a 0.25 s grid, some touching, some in one second."""
    edges = np.sort(rng.choice(np.arange(0, duration * 4 + 1), size=2 * rng.integers(0, 9),
                               replace=False)) / 4.0  # fmt: skip
    return [(float(edges[k]), float(edges[k + 1])) for k in range(0, len(edges), 2)]


def test_pooled_counts_equal_the_sum_of_per_file_counts() -> None:
    rng = np.random.default_rng(7)
    files = []
    for _ in range(40):
        duration = float(rng.integers(20, 400))
        files.append((_tl(_random_file(rng, duration), duration),
                      _tl(_random_file(rng, duration), duration)))  # fmt: skip
    for name, fn in TIMELINE_SCORERS.items():
        per_file = [fn(r, h) for r, h in files]
        total = pool(per_file)
        for field in ("hits", "misses", "false_alarms", "n_ref", "duration_s"):
            assert getattr(total, field) == pytest.approx(
                sum(getattr(c, field) for c in per_file)
            ), f"{name} {field}"
        assert total.duration_s == pytest.approx(sum(r.duration_s for r, _ in files))
        if total.duration_s and name != "szcore":
            expected = total.false_alarms * total.fa_seconds / total.duration_s * 86400
            assert total.fa_per_24h == pytest.approx(expected)


def test_event_lists_score_like_their_csv_bi_export() -> None:
    # evaluate scores event lists: times at 4 decimals, clipped, overlaps united, as exported
    tl = timeline_of_events([(10.00004, 20.0), (15.0, 25.0), (95.0, 120.0)], 100.0)
    assert tl.seizures == [(10.0, 25.0), (95.0, 100.0)]
    assert score_ovlp([(10, 20)], [(20, 30)], 100.0).false_alarms == 1
    assert score_taes([(10, 20)], [(12, 15), (20, 25)], 100.0).false_alarms == pytest.approx(0.5)
    assert math.isnan(score_ovlp([], [], 100.0).sensitivity)


def test_pairs_nedc_crashes_on_after_counting_get_nedcs_counts() -> None:
    # NEDC v6.0.0's TAES also scores background, where same-second credit can be negative; its
    # MCC then takes the square root of a negative number and the tool dies after counting.
    # Identical files with one sub-second seizure do it. Ictal reports the seizure counts NEDC
    # had computed (targets 1, hits 1, misses 0, FAs 0).
    ref = build_timeline([(0.1, 0.4, True)], 2.0)
    c = taes(ref, ref)
    assert (c.n_ref, c.hits, c.misses, c.false_alarms) == (1, 1.0, 0.0, 0.0)
    # ref (1.8, 1.9), hyps (1.0, 1.2) and (1.4, 2.0): NEDC's counts before its crash
    c = taes(build_timeline([(1.8, 1.9, True)], 2.0),
             build_timeline([(1.0, 1.2, True), (1.4, 2.0, True)], 2.0))  # fmt: skip
    assert (c.hits, c.misses, c.false_alarms) == pytest.approx((-5.0, 6.0, 2.0))


# ------------------------------------------------------------- DPALIGN against NEDC's table

_SUB, _INS, _DEL = 0, 1, 2


def _dpalign_table(ref: Timeline, hyp: Timeline) -> tuple[int, float, float, float]:
    """NEDC v6.0.0's DPALIGN as Ictal computed it before (a full cost and step table, unit
    penalties): the reference the linear-memory traceback must equal, count for count."""
    a = [None, *(s[2] for s in ref.segments), None]
    b = [None, *(s[2] for s in hyp.segments), None]
    m, n = len(a), len(b)
    cost = [[0.0] * n for _ in range(m)]
    step = [[_SUB] * n for _ in range(m)]
    for j in range(1, n):
        cost[0][j], step[0][j] = cost[0][j - 1] + 1.0, _INS
    for i in range(1, m):
        cost[i][0], step[i][0] = cost[i - 1][0] + 1.0, _DEL
    for i in range(1, m):
        above, row, kind = cost[i - 1], cost[i], step[i]
        for j in range(1, n):
            best = above[j - 1] + (0.0 if a[i] == b[j] else 1.0)
            how = _SUB
            if row[j - 1] + 1.0 < best:
                best, how = row[j - 1] + 1.0, _INS
            if above[j] + 1.0 < best:
                best, how = above[j] + 1.0, _DEL
            row[j], kind[j] = best, how
    pairs: list[tuple[bool | None, bool | None]] = []
    i, j = m - 1, n - 1
    while i >= 0 and j >= 0:
        how = step[i][j]
        if how == _DEL:
            pairs.append((a[i], None))
            i -= 1
        elif how == _INS:
            pairs.append((None, b[j]))
            j -= 1
        else:
            pairs.append((a[i], b[j]))
            i, j = i - 1, j - 1
    inner = pairs[::-1][1:-1]
    n_ref = sum(1 for x, _ in inner if x is True)
    hits = sum(1 for x, y in inner if x is True and y is True)
    false_alarms = sum(1 for x, y in inner if x is None and y is True)
    return n_ref, float(hits), float(n_ref - hits), float(false_alarms)


def _counts(c: EventCounts) -> tuple[int, float, float, float]:
    return c.n_ref, c.hits, c.misses, c.false_alarms


def _alternating_file(first: bool, segments: int, duration: float) -> Timeline:
    """A timeline of ``segments`` alternating segments starting with ``first``."""
    cuts = np.linspace(0.0, duration, segments + 1)
    rows = [(float(cuts[k]), float(cuts[k + 1]), first ^ (k % 2 == 1)) for k in range(segments)]
    tl = build_timeline(rows, duration)
    assert len(tl.segments) == segments and tl.segments[0][2] is first
    return tl


def test_dpalign_equals_nedcs_table_for_every_pair_of_shapes_up_to_40_segments() -> None:
    """Every (first label, length) of both files up to 40 segments: all the ties of the
    table (alternating sequences tie at nearly every cell) and every edge (one segment, an
    all-seizure file, an empty one, lengths far apart)."""
    files = [_alternating_file(first, k, 100.0) for first in (False, True) for k in range(1, 41)]
    for ref in files:
        for hyp in files:
            assert _counts(dpalign(ref, hyp)) == _dpalign_table(ref, hyp), (ref, hyp)


def test_dpalign_equals_nedcs_table_on_generated_files() -> None:
    """Thousands of random files through NEDC's reading (overlapping rows, rows past the end,
    touching and sub-second events, background rows) and a few long ones."""
    rng = np.random.default_rng(2024)
    for trial in range(3000):
        duration = float(rng.integers(1, 200)) + float(rng.choice([0.0, 0.5, 0.12345]))
        pair = []
        for _ in range(2):
            rows = []
            for _ in range(int(rng.integers(0, 12))):
                start = float(np.round(rng.uniform(-2, duration + 2), int(rng.integers(0, 5))))
                length = float(rng.choice([0.00001, 0.25, 1.0, rng.uniform(0.01, 30)]))
                rows.append((start, start + length, bool(rng.random() < 0.8)))
            pair.append(build_timeline(rows, duration))
        ref, hyp = pair
        assert _counts(dpalign(ref, hyp)) == _dpalign_table(ref, hyp), trial
    for _ in range(6):
        ref = _alternating_file(bool(rng.integers(2)), int(rng.integers(100, 400)), 1e4)
        hyp = _alternating_file(bool(rng.integers(2)), int(rng.integers(1, 400)), 1e4)
        assert _counts(dpalign(ref, hyp)) == _dpalign_table(ref, hyp)


def test_dpalign_of_40000_events_is_counted_in_linear_time() -> None:
    """A file of 40,000 events (80,001 segments; NEDC's table would hold 6.4e9 cells)."""
    events = [(10.0 * k + 1, 10.0 * k + 2) for k in range(40_000)]
    ref = _tl(events, 400_010.0)
    shifted = _tl([(a + 0.5, b + 0.5) for a, b in events[1:]], 400_010.0)
    c = dpalign(ref, shifted)
    assert (c.n_ref, c.hits, c.misses, c.false_alarms) == (40_000, 39_999, 1, 0)
