"""95 % intervals (exact and patient bootstrap) and onset latencies against known values."""

from __future__ import annotations

import math

import pytest

from ictal.evaluate.latency import latency_summary, onset_latencies
from ictal.evaluate.uncertainty import (
    clopper_pearson,
    garwood,
    interval_doc,
    patient_bootstrap,
)
from ictal.events.counts import EventCounts

DAY = 86_400.0


def counts(hits: float, misses: float, fa: float, hours: float) -> EventCounts:
    return EventCounts(hits=hits, misses=misses, false_alarms=fa, n_ref=int(hits + misses),
                       duration_s=hours * 3600.0)  # fmt: skip


def test_clopper_pearson_matches_published_values() -> None:
    # Clopper & Pearson's exact interval, as tabulated (e.g. Newcombe 1998, method 5)
    assert clopper_pearson(7, 10) == pytest.approx((0.3475, 0.9333), abs=1e-4)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert clopper_pearson(10, 10) == pytest.approx((0.6915, 1.0), abs=1e-4)
    assert clopper_pearson(0, 0) is None  # no seizures: no interval
    with pytest.raises(ValueError, match="greater than n"):
        clopper_pearson(11, 10)  # counts that cannot be: refused, as binomtest did
    # TAES's fractional hits: the low bound of the whole count below, the high of the one above
    assert clopper_pearson(6.4, 10) == (clopper_pearson(6, 10)[0], clopper_pearson(7, 10)[1])


def test_garwood_matches_the_poisson_table() -> None:
    # Garwood (1936) 95 % limits of a Poisson count, per one day of recording = per 24 h
    assert garwood(0, DAY) == pytest.approx((0.0, 3.6889), abs=1e-4)
    assert garwood(1, DAY) == pytest.approx((0.0253, 5.5716), abs=1e-4)
    assert garwood(5, DAY) == pytest.approx((1.6235, 11.6683), abs=1e-4)
    # the eval split: one false alarm in 3.6 h is 6.7 FA/24h, somewhere in 0.17-37
    low, high = garwood(1, 3.6 * 3600)
    assert (low, high) == pytest.approx((0.0253 / 0.15, 5.5716 / 0.15), rel=1e-3)
    assert garwood(1, DAY, fa_seconds=0.25) == pytest.approx((0.0253 / 4, 5.5716 / 4), abs=1e-4)
    assert garwood(1.5, DAY) == (garwood(1, DAY)[0], garwood(2, DAY)[1])  # TAES: conservative
    assert garwood(3, 0.0) is None


def test_patient_bootstrap_known_case_and_reproducible() -> None:
    # two patients of 10 seizures each, one all found, one all missed: a draw holds both
    # (0.5) half the time and one of them twice (1.0 or 0.0) a quarter each -> [0, 1]
    a, b = counts(10, 0, 0, 1.0), counts(0, 10, 2, 1.0)
    boot = patient_bootstrap([a, b])
    assert boot is not None
    assert boot["sensitivity"] == (0.0, 1.0)
    assert boot["fa_per_24h"] == (0.0, 48.0)  # 0 or 2 FA in 1 h, at the extremes
    assert patient_bootstrap([a, b]) == boot  # a fixed seed: the same every time
    # identical patients leave nothing to resample: the interval is the point
    same = patient_bootstrap([counts(3, 1, 1, 2.0)] * 4)
    assert same == {"sensitivity": (0.75, 0.75), "fa_per_24h": (12.0, 12.0)}
    assert patient_bootstrap([a]) is None  # one patient: no bootstrap


def test_bootstrap_bounds_lie_between_the_patients_and_move_with_the_seed() -> None:
    patients = [counts(h, 6 - h, fa, 1.0 + h / 3) for h, fa in ((1, 0), (3, 4), (5, 1), (6, 2))]
    boot = patient_bootstrap(patients)
    other = patient_bootstrap(patients, seed=1)
    assert boot is not None and other is not None
    lo, hi = boot["sensitivity"]
    assert 1 / 6 <= lo < hi <= 1.0
    assert boot != other  # the seed is what makes it reproducible, not a constant result


def test_interval_doc_reports_the_envelope_and_both_methods() -> None:
    patients = [counts(10, 0, 0, 2.0), counts(5, 5, 3, 2.0), counts(8, 2, 1, 2.0)]
    pooled = counts(23, 7, 4, 6.0)
    doc = interval_doc(pooled, patients)
    ex, boot = doc["exact"], doc["bootstrap"]
    assert ex["sensitivity"] == clopper_pearson(23, 30) and ex["fa_per_24h"] == garwood(4, 6 * 3600)
    for key in ("sensitivity", "fa_per_24h"):
        lows, highs = (ex[key][0], boot[key][0]), (ex[key][1], boot[key][1])
        assert doc[key] == (min(lows), max(highs))
        assert doc[key][0] <= getattr(pooled, key) <= doc[key][1]
    assert doc["method"] == "exact and patient bootstrap"
    assert (boot["resamples"], boot["n_patients"]) == (2000, 3)
    samples = interval_doc(pooled, patients, exact=False)  # correlated seconds: bootstrap only
    assert samples["exact"] == {"sensitivity": None, "fa_per_24h": None}
    assert samples["sensitivity"] == boot["sensitivity"]
    assert samples["method"] == "patient bootstrap"


def test_onset_latency_keeps_early_detections_negative() -> None:
    ref = [(100.0, 130.0), (500.0, 520.0), (900.0, 960.0)]
    hyp = [(95.0, 110.0), (112.0, 140.0), (507.5, 515.0), (960.0, 990.0)]
    # first overlapping start minus onset; the third seizure is only touched (a miss)
    assert onset_latencies(ref, hyp) == [-5.0, 7.5]
    assert onset_latencies(ref, []) == []
    # linear quartiles of (-5, 2, 7.5, 10): -5 + 0.75 * 7 and 7.5 + 0.25 * 2.5
    s = latency_summary([-5.0, 7.5, 2.0, 10.0])
    assert s == {"n": 4, "median": 4.75, "q1": 0.25, "q3": 8.125, "min": -5.0, "max": 10.0}
    assert latency_summary([])["median"] is None


def test_exact_intervals_agree_with_scipy_stats_on_every_count() -> None:
    """The bounds from the beta and gamma quantiles, against scipy.stats' own computations
    (binomtest's root-finding, chi2's quantile) for every count of up to 12 seizures and some
    larger, every count of up to 300 false alarms, fractional counts included."""
    from scipy.stats import binomtest, chi2

    worst = 0.0
    for n in [*range(1, 13), 97, 400]:
        for hits in [
            *range(0, n + 1, 1 if n <= 12 else 13),
            n,
            *(k + 0.5 for k in range(0, n, 29)),
        ]:
            got = clopper_pearson(hits, n)
            below, above = math.floor(hits + 1e-9), math.ceil(hits - 1e-9)
            ref = (binomtest(below, n).proportion_ci(0.95, method="exact").low,
                   binomtest(above, n).proportion_ci(0.95, method="exact").high)  # fmt: skip
            worst = max(worst, abs(got[0] - ref[0]), abs(got[1] - ref[1]))
            assert 0.0 <= got[0] <= hits / n <= got[1] <= 1.0
    assert worst < 1e-9
    for fa in [*range(300), 2.5, 17.25]:
        below, above = math.floor(fa + 1e-9), math.ceil(fa - 1e-9)
        low = chi2.ppf(0.025, 2 * below) / 2 if below > 0 else 0.0
        high = chi2.ppf(0.975, 2 * above + 2) / 2
        assert garwood(fa, DAY) == pytest.approx((low, high), rel=1e-13, abs=0)
