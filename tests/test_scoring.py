"""Scorers match their definitions (docs/evaluation.md, "Scorers") on hand-built cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from timescoring.annotations import Annotation
from timescoring.scoring import EventScoring, SampleScoring

from ictal.auroc import HistogramAuroc
from ictal.events.counts import EventCounts, pool
from ictal.events.masks import events_mask
from ictal.events.scorers import SCORERS, as_tsv, get_scorer, score_ovlp, score_taes
from ictal.events.szcore import (
    SzcoreParams,
    score_masks,
    score_szcore,
    score_szcore_sample_events,
    szcore_doc,
    szcore_f1,
)

HOUR = 3600.0


def _assert_counts(c: EventCounts, hits: float, misses: float, fa: float, n_ref: int) -> None:
    assert c.hits == pytest.approx(hits)
    assert c.misses == pytest.approx(misses)
    assert c.false_alarms == pytest.approx(fa)
    assert c.n_ref == n_ref


# --- EventCounts ---------------------------------------------------------------------------


def test_event_counts_properties_and_pooling() -> None:
    a = EventCounts(hits=1, misses=0, false_alarms=1, n_ref=1, duration_s=HOUR)
    b = EventCounts(hits=1, misses=2, false_alarms=1, n_ref=3, duration_s=3 * HOUR)
    # file a: 1 FA in 1 h = 24/24h; file b: 1 FA in 3 h = 8/24h
    assert a.fa_per_24h == pytest.approx(24.0)
    assert b.fa_per_24h == pytest.approx(8.0)
    total = pool([a, b])
    assert total == a + b
    # pooled: 2 FA over 4 h = 12/24h (not the mean 16); sensitivity 2/4 (not the mean 2/3)
    assert total.fa_per_24h == pytest.approx(12.0)
    assert total.sensitivity == pytest.approx(0.5)
    assert total.precision == pytest.approx(2 / 4)
    empty = pool([])
    assert math.isnan(empty.sensitivity) and math.isnan(empty.fa_per_24h)
    assert math.isnan(empty.precision)


def test_pooling_in_place_is_the_sum_by_plus_and_refuses_mixed_weights() -> None:
    """``pool`` (a Tally, what ``ictal score`` pools with) gives what adding the counts one by
    one gives, to the last bit (the same additions in the same order); counts of different
    false-alarm weights (EPOCH's epochs beside events) never pool, a zero-length one aside."""
    import random

    rng = random.Random(5)
    for _ in range(200):
        weight = rng.choice([1.0, 0.25])
        counts = [EventCounts(hits=rng.random() * 5, misses=rng.random() * 3,
                              false_alarms=rng.random() * 7, n_ref=rng.randrange(9),
                              duration_s=rng.random() * HOUR, fa_seconds=weight)
                  for _ in range(rng.randrange(1, 40))]  # fmt: skip
        chained = counts[0]
        for c in counts[1:]:
            chained = chained + c
        assert pool(counts) == pool([EventCounts(0.0, 0.0, 0.0, 0, 0.0), *counts]) == chained
    events = EventCounts(hits=1, misses=0, false_alarms=1, n_ref=1, duration_s=HOUR)
    epochs = EventCounts(hits=4, misses=0, false_alarms=2, n_ref=4, duration_s=HOUR,
                         fa_seconds=0.25)  # fmt: skip
    for mixed in ([events, epochs], [epochs, events]):
        with pytest.raises(ValueError, match="different scorers"):
            pool(mixed)
        with pytest.raises(ValueError, match="different scorers"):
            mixed[0] + mixed[1]
    nothing = EventCounts(hits=0, misses=0, false_alarms=0, n_ref=0, duration_s=0.0)
    assert pool([nothing, epochs]).fa_seconds == 0.25 == (nothing + epochs).fa_seconds


def test_f1_is_defined_once_with_its_undefined_case_explicit() -> None:
    def counts(h: float, m: float, fa: float) -> EventCounts:
        return EventCounts(hits=h, misses=m, false_alarms=fa, n_ref=int(h + m), duration_s=HOUR)

    # pooled scores: an undefined precision or sensitivity leaves F1 undefined
    assert counts(3, 1, 2).f1 == counts(3, 1, 2).f1_score() == pytest.approx(6 / 9)
    assert counts(0, 2, 1).f1 == 0.0
    for h, m, fa in ((0, 0, 0), (0, 2, 0), (0, 0, 2)):
        assert math.isnan(counts(h, m, fa).f1)
    # per recording: nothing to find and nothing found is perfect, only misses or only false
    # alarms score 0, and a defined F1 is the same number
    assert counts(0, 0, 0).f1_score(undefined=1.0) == 1.0
    assert counts(0, 2, 0).f1_score(undefined=1.0) == 0.0
    assert counts(0, 0, 2).f1_score(undefined=1.0) == 0.0
    assert counts(3, 1, 2).f1_score(undefined=1.0) == counts(3, 1, 2).f1
    assert counts(2, 0, 0).f1_score(undefined=1.0) == 1.0


def test_events_mask_rounds_to_samples_and_clips() -> None:
    mask = events_mask([(0.5, 1.0), (-1.0, 0.2), (2.1, 9.0)], fs=4.0, n=10)
    assert mask.dtype == bool and mask.shape == (10,)
    assert np.flatnonzero(mask).tolist() == [0, 2, 3, 8, 9]
    assert not events_mask([], fs=4.0, n=3).any()


# --- OVLP ----------------------------------------------------------------------------------


def test_ovlp_hits_misses_false_alarms() -> None:
    ref = [(10.0, 20.0), (50.0, 60.0), (100.0, 110.0)]
    hyp = [(15.0, 25.0), (30.0, 35.0), (58.0, 70.0)]
    c = score_ovlp(ref, hyp, HOUR)
    # ref 1 hit by (15,25), ref 2 hit by (58,70), ref 3 untouched -> 2 hits, 1 miss;
    # (30,35) overlaps nothing -> 1 FA; 1 FA per hour = 24 per 24 h
    _assert_counts(c, hits=2, misses=1, fa=1, n_ref=3)
    assert c.sensitivity == pytest.approx(2 / 3)
    assert c.fa_per_24h == pytest.approx(24.0)


def test_ovlp_one_long_hyp_hits_two_refs() -> None:
    c = score_ovlp([(10.0, 20.0), (30.0, 40.0)], [(5.0, 45.0)], HOUR)
    _assert_counts(c, hits=2, misses=0, fa=0, n_ref=2)


def test_ovlp_touching_is_not_overlap() -> None:
    # hyp.start == ref.stop: "hyp.start < ref.stop" fails -> miss and false alarm
    c = score_ovlp([(10.0, 20.0)], [(20.0, 30.0)], HOUR)
    _assert_counts(c, hits=0, misses=1, fa=1, n_ref=1)


def test_ovlp_events_at_file_start_and_end() -> None:
    ref = [(0.0, 5.0), (95.0, 100.0)]
    c = score_ovlp(ref, [(0.0, 1.0), (99.0, 100.0)], 100.0)
    _assert_counts(c, hits=2, misses=0, fa=0, n_ref=2)
    # a hyp at the very start that ends where the ref begins touches only -> FA
    c = score_ovlp([(1.0, 5.0)], [(0.0, 1.0)], 100.0)
    _assert_counts(c, hits=0, misses=1, fa=1, n_ref=1)


def test_ovlp_fa_rate_arithmetic() -> None:
    # 3 false alarms in a 2 h file: 3 / 7200 s * 86400 = 36 per 24 h
    hyp = [(100.0, 110.0), (1000.0, 1010.0), (5000.0, 5010.0)]
    c = score_ovlp([], hyp, 2 * HOUR)
    _assert_counts(c, hits=0, misses=0, fa=3, n_ref=0)
    assert c.fa_per_24h == pytest.approx(36.0)
    assert math.isnan(c.sensitivity)


def test_ovlp_pooling_uses_total_duration() -> None:
    # file A (1 h): 1 ref hit, 1 FA; file B (3 h): 3 refs, 1 hit, 1 FA
    a = score_ovlp([(10.0, 20.0)], [(12.0, 14.0), (500.0, 510.0)], HOUR)
    b = score_ovlp(
        [(10.0, 20.0), (100.0, 120.0), (300.0, 330.0)], [(15.0, 16.0), (900.0, 905.0)], 3 * HOUR
    )
    total = a + b
    _assert_counts(total, hits=2, misses=2, fa=2, n_ref=4)
    assert total.duration_s == 4 * HOUR
    assert total.fa_per_24h == pytest.approx(12.0)  # 2 FA / 4 h


# --- TAES ----------------------------------------------------------------------------------


def test_taes_partial_overlap() -> None:
    # ref (10,20), hyp (15,25): overlap 5/10 = 0.5 hit, miss 0.5; outside 5/10 = 0.5 FA
    c = score_taes([(10.0, 20.0)], [(15.0, 25.0)], HOUR)
    _assert_counts(c, hits=0.5, misses=0.5, fa=0.5, n_ref=1)
    # hyp before the ref: (5,12) -> overlap 2/10, outside 5/10
    c = score_taes([(10.0, 20.0)], [(5.0, 12.0)], HOUR)
    _assert_counts(c, hits=0.2, misses=0.8, fa=0.5, n_ref=1)
    # hyp inside the ref: (15,20) in (10,30) -> 5/20 hit, no FA
    c = score_taes([(10.0, 30.0)], [(15.0, 20.0)], HOUR)
    _assert_counts(c, hits=0.25, misses=0.75, fa=0.0, n_ref=1)
    # exact match
    c = score_taes([(10.0, 30.0)], [(10.0, 30.0)], HOUR)
    _assert_counts(c, hits=1.0, misses=0.0, fa=0.0, n_ref=1)


def test_taes_false_alarm_capped_at_one() -> None:
    # ref (10,12) inside hyp (0,20): hit 2/2 = 1; outside 18 s / 2 s = 9 -> capped to 1
    c = score_taes([(10.0, 12.0)], [(0.0, 20.0)], HOUR)
    _assert_counts(c, hits=1.0, misses=0.0, fa=1.0, n_ref=1)


def test_taes_one_hyp_over_two_refs_misses_the_extra_ref() -> None:
    # hyp (15,35) over refs (10,20) and (30,40): first ref hit 5/10, miss 0.5, FA = hyp outside
    # the first ref 15 s / 10 s -> capped 1; the second ref is an extra ref: one full miss
    c = score_taes([(10.0, 20.0), (30.0, 40.0)], [(15.0, 35.0)], HOUR)
    _assert_counts(c, hits=0.5, misses=1.5, fa=1.0, n_ref=2)
    # hyp (5,45) covering both: first ref hit 1, FA (5 + 25) / 10 -> 1; second ref a miss.
    # (OVLP would give 2 hits here.)
    c = score_taes([(10.0, 20.0), (30.0, 40.0)], [(5.0, 45.0)], HOUR)
    _assert_counts(c, hits=1.0, misses=1.0, fa=1.0, n_ref=2)


def test_taes_extra_ref_is_used_up() -> None:
    # hyp A (5,32) runs past the end of ref (10,20), so ref (30,40) is used up as a miss;
    # hyp B (35,38) then finds no free ref and is a whole false alarm (NEDC's sequencing).
    # ref 1: hit 10/10 = 1, FA (5 + 12)/10 -> 1; ref 2: miss 1; B: FA 1
    c = score_taes([(10.0, 20.0), (30.0, 40.0)], [(5.0, 32.0), (35.0, 38.0)], HOUR)
    _assert_counts(c, hits=1.0, misses=1.0, fa=2.0, n_ref=2)


def test_taes_hyp_credits_one_ref_only() -> None:
    # refs (10,30), (40,50); hyps (12,15), (25,45). Ref 1 takes (12,15): 3/20, then the
    # further hyp (25,45) overlapping it: 5/20, FA 15/20. Ref 1: hit 0.4, miss 0.6, FA 0.75.
    # (25,45) is used, so ref 2 has no free hyp left: one full miss.
    c = score_taes([(10.0, 30.0), (40.0, 50.0)], [(12.0, 15.0), (25.0, 45.0)], HOUR)
    _assert_counts(c, hits=0.4, misses=1.6, fa=0.75, n_ref=2)


def test_taes_two_hyps_inside_one_ref_add_partial_hits() -> None:
    # ref (0,40), hyps (5,10) and (20,30): hits 5/40 + 10/40 = 0.375, miss 0.625, no FA
    c = score_taes([(0.0, 40.0)], [(5.0, 10.0), (20.0, 30.0)], HOUR)
    _assert_counts(c, hits=0.375, misses=0.625, fa=0.0, n_ref=1)
    # the second one sticking out: (35,50) -> hit 5/40, FA 10/40
    c = score_taes([(0.0, 40.0)], [(5.0, 10.0), (35.0, 50.0)], HOUR)
    _assert_counts(c, hits=0.25, misses=0.75, fa=0.25, n_ref=1)


def test_taes_unmatched_both_sides() -> None:
    # ref (10,20) hit by (12,18): 6/10; ref (100,110) unmatched: 1 miss;
    # hyps (200,210) and (300,305) unmatched: 1 FA each
    ref = [(10.0, 20.0), (100.0, 110.0)]
    hyp = [(12.0, 18.0), (200.0, 210.0), (300.0, 305.0)]
    c = score_taes(ref, hyp, 2 * HOUR)
    _assert_counts(c, hits=0.6, misses=1.4, fa=2.0, n_ref=2)
    assert c.fa_per_24h == pytest.approx(2.0 / 7200.0 * 86400.0)
    # touching is not overlap: hyp (20,30) next to ref (10,20) -> 1 miss, 1 FA
    _assert_counts(score_taes([(10.0, 20.0)], [(20.0, 30.0)], HOUR), 0.0, 1.0, 1.0, 1)
    _assert_counts(score_taes([], [], HOUR), 0.0, 0.0, 0.0, 0)


# --- SzCORE --------------------------------------------------------------------------------


def _timescoring(ref, hyp, duration_s: float, fs: float = 1.0) -> EventScoring:
    n = round(duration_s * fs)
    return EventScoring(Annotation(ref, fs, n), Annotation(hyp, fs, n))


@pytest.mark.parametrize(
    ("ref", "hyp", "duration", "expected"),
    [
        # plain hit: ref (100,150) covered by hyp (120,130) -> tp 1, fp 0
        ([(100.0, 150.0)], [(120.0, 130.0)], 600.0, (1, 0, 1)),
        # hyps 40 s apart (< 90 s) merge into one -> far from the ref: 1 fp, not 2; ref missed
        ([(400.0, 420.0)], [(100.0, 110.0), (150.0, 160.0)], 600.0, (0, 1, 1)),
        # hyps 100 s apart (>= 90 s) stay two -> 2 fp
        ([(500.0, 520.0)], [(100.0, 110.0), (220.0, 230.0)], 600.0, (0, 2, 1)),
        # a 700 s ref splits into 300 + 300 + 100 s -> 3 refs; hyp (50,60) lies only in the
        # first, extended to (0,360) -> 1 tp of 3, no fp
        ([(0.0, 700.0)], [(50.0, 60.0)], 1000.0, (1, 0, 3)),
        # tolerance: ref (100,200) extended to (70,260); hyp (240,250) inside -> tp, no fp
        ([(100.0, 200.0)], [(240.0, 250.0)], 600.0, (1, 0, 1)),
        # hyp (270,280) beyond the 60 s end tolerance -> fp, ref missed
        ([(100.0, 200.0)], [(270.0, 280.0)], 600.0, (0, 1, 1)),
        # nothing at all
        ([], [], 600.0, (0, 0, 0)),
    ],
)
def test_szcore_matches_timescoring(ref, hyp, duration, expected) -> None:
    tp, fp, ref_true = expected
    c = score_szcore(ref, hyp, duration)
    ts = _timescoring(ref, hyp, duration)
    assert (ts.tp, ts.fp, ts.refTrue) == (tp, fp, ref_true)  # the hand-worked values
    assert (c.hits, c.false_alarms, c.n_ref) == (tp, fp, ref_true)
    assert c.misses == ref_true - tp
    assert c.fa_per_24h == pytest.approx(ts.fpRate)
    if ref_true:
        assert c.sensitivity == pytest.approx(ts.sensitivity)


def test_szcore_at_higher_fs() -> None:
    ref, hyp = [(10.25, 40.5)], [(12.0, 13.0), (300.0, 301.0)]
    c = score_szcore(ref, hyp, 500.0, SzcoreParams(fs=4))
    ts = _timescoring(ref, hyp, 500.0, fs=4.0)
    assert (c.hits, c.false_alarms, c.n_ref) == (ts.tp, ts.fp, ts.refTrue) == (1, 1, 1)


def test_szcore_cuts_masks_by_truncation_as_the_evaluator() -> None:
    # (10.7, 13.0) marks seconds 10, 11, 12; 600.9 s of recording are 600 samples
    c = score_szcore_sample_events([(10.7, 13.0)], [], 600.9)
    assert (c.n_ref, c.duration_s) == (3, 600.0)
    # a hypothesis ending at 70.9 s covers seconds up to 69: it stops before the 30 s
    # tolerance ahead of a seizure at 100 s (rounding would reach 71 and count a hit)
    late = score_szcore([(100.0, 120.0)], [(60.0, 70.9)], 600.0)
    assert (late.hits, late.false_alarms) == (0, 1)
    hit = score_szcore([(100.0, 120.0)], [(60.0, 71.2)], 600.0)
    assert (hit.hits, hit.false_alarms) == (1, 0)
    with pytest.raises(ValueError, match="shorter than one SzCORE sample"):
        score_szcore([], [], 0.9)


def test_szcore_parameters_change_the_counts() -> None:
    ref, hyp = [(100.0, 120.0)], [(80.0, 85.0), (125.0, 130.0)]
    assert score_szcore(ref, hyp, 600.0).false_alarms == 0  # within 30 s before, 60 s after
    strict = SzcoreParams(tolerance_start_s=5.0, tolerance_end_s=2.0, merge_gap_s=0.0)
    c = score_szcore(ref, hyp, 600.0, strict)
    assert (c.hits, c.false_alarms) == (0, 2)
    split = score_szcore([(0.0, 700.0)], [(50.0, 60.0)], 1000.0, SzcoreParams(max_event_s=100))
    assert split.n_ref == 7


def test_szcore_f1_is_zero_where_nedc_leaves_it_undefined() -> None:
    only_fa = EventCounts(hits=0, misses=0, false_alarms=3, n_ref=0, duration_s=60.0)
    only_miss = EventCounts(hits=0, misses=2, false_alarms=0, n_ref=2, duration_s=60.0)
    nothing = EventCounts(hits=0, misses=0, false_alarms=0, n_ref=0, duration_s=60.0)
    some = EventCounts(hits=2, misses=1, false_alarms=1, n_ref=3, duration_s=60.0)
    assert math.isnan(only_fa.f1) and szcore_f1(only_fa) == 0.0
    assert szcore_f1(only_miss) == 0.0 and math.isnan(szcore_f1(nothing))
    assert szcore_f1(some) == pytest.approx(some.f1) == pytest.approx(4 / 6)


def test_szcore_subject_pooling_averages_defined_rates() -> None:
    a = EventCounts(hits=1, misses=1, false_alarms=0, n_ref=2, duration_s=86_400.0)
    b = EventCounts(hits=0, misses=0, false_alarms=2, n_ref=0, duration_s=86_400.0)
    doc = szcore_doc(a + b, {"sub-01": a, "sub-02": b}, "subject")
    assert doc["subjects"] == 2 and doc["sensitivity"] == 0.5  # sub-02's is undefined
    assert doc["sensitivity_std"] == 0.0
    assert doc["fa_per_24h"] == 1.0 and doc["fa_per_24h_std"] == 1.0  # 0 and 2 per day
    assert doc["f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    pooled = szcore_doc(a + b, {}, "recording")
    assert pooled["sensitivity"] == 0.5 and pooled["fa_per_24h"] == 1.0
    assert pooled["f1"] == pytest.approx(2 / 5) and "f1_rule" in pooled


def test_evaluate_scores_szcore_on_events_as_a_tsv_export_holds_them() -> None:
    events, duration = as_tsv([(-1.0, 2.004), (3.456, 7.891), (9.0, 12.0)], 10.0)
    assert duration == 10.0
    assert events == [(0.0, 2.0), (3.46, 3.46 + 4.44), (9.0, 10.0)]


def test_szcore_samples_matches_sample_scoring() -> None:
    ref = np.zeros(10, dtype=bool)
    hyp = np.zeros(10, dtype=bool)
    ref[2:6] = True  # samples 2..5
    hyp[4:8] = True  # samples 4..7: overlap 4,5 -> tp 2; 6,7 -> fp 2; refTrue 4
    c = score_masks(ref, hyp)[1]
    ts = SampleScoring(Annotation(ref, 1), Annotation(hyp, 1), fs=1)
    assert (c.hits, c.false_alarms, c.n_ref) == (2, 2, 4)
    assert (c.hits, c.false_alarms, c.n_ref) == (ts.tp, ts.fp, ts.refTrue)
    assert c.duration_s == 10.0
    with pytest.raises(ValueError, match="same length"):
        score_masks(ref, hyp[:5])


def test_scorer_registry() -> None:
    assert set(SCORERS) == {"ovlp", "taes", "epoch", "dpalign", "szcore", "szcore_samples"}
    assert get_scorer("taes") is score_taes
    with pytest.raises(KeyError, match="known"):
        get_scorer("nope")


# --- AUROC ---------------------------------------------------------------------------------


def _brute_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _hist(labels: np.ndarray, scores: np.ndarray) -> float:
    h = HistogramAuroc(bins=1000)
    h.update(labels, scores)
    return h.value()


def test_auroc_perfect_inverted_ties_absent() -> None:
    y = np.array([0, 0, 1, 1])
    assert _hist(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert _hist(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert _hist(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(_hist(np.ones(3), np.array([0.1, 0.2, 0.3])))


def test_auroc_matches_pair_count() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) * 0.5 + 0.3 * y, 1)  # rounded: many ties, exact in bins
    assert _hist(y, s) == pytest.approx(_brute_auroc(y, s), abs=1e-12)


def test_histogram_auroc_streams_recordings() -> None:
    # scores on bin centres: the binned AUROC is exact, whatever the recording split
    rng = np.random.default_rng(2)
    bins = 20
    h = HistogramAuroc(bins=bins)
    ys, ss = [], []
    for _ in range(3):
        y = rng.integers(0, 2, 200)
        k = rng.integers(0, bins, 200)
        k = np.where(y == 1, np.minimum(k + 4, bins - 1), k)  # positives score higher
        s = (k + 0.5) / bins
        h.update(y, s)
        ys.append(y)
        ss.append(s)
    y_all, s_all = np.concatenate(ys), np.concatenate(ss)
    assert h.value() == pytest.approx(_brute_auroc(y_all, s_all), abs=1e-12)
    assert h.pos.sum() + h.neg.sum() == 600  # memory is the histogram, not the samples


def test_histogram_auroc_same_bin_counts_half() -> None:
    # 2 bins: pos 0.9 -> bin 1; neg 0.1 -> bin 0, neg 0.7 -> bin 1 (a tie at this resolution)
    # wins = 1 (vs bin 0) + 0.5 (same bin) = 1.5 of 2 pairs = 0.75; a score of exactly 1.0
    # lands in the last bin
    h = HistogramAuroc(bins=2)
    h.update(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.7]))
    assert h.value() == pytest.approx(0.75)
    h.update(np.array([1]), np.array([1.0]))
    assert h.pos.tolist() == [0, 2]
    assert math.isnan(HistogramAuroc().value())
    with pytest.raises(ValueError):
        h.update(np.array([1]), np.array([1.5]))


def test_szcore_defaults_are_the_evaluators_in_code_and_config() -> None:
    from ictal.config import Config
    from ictal.events.szcore import DEFAULT

    assert SzcoreParams.of(Config().scoring.szcore) == DEFAULT
    ours, theirs = DEFAULT.event_parameters(), EventScoring.Parameters()
    assert vars(ours) == vars(theirs)
