"""95 % intervals for pooled sensitivity and FA/24h: exact (Clopper-Pearson for a
sensitivity, Garwood's Poisson interval for a false-alarm rate) and a patient-level
bootstrap; the reported interval is the envelope of both (docs/evaluation.md says why).

Exact intervals treat every seizure and false alarm as independent, which they are not within
a patient, so they are too narrow when patients differ; a bootstrap over a handful of patients
has few distinct resamples and undercovers too. Neither alone is honest on a small split; the
envelope (lowest low, highest high) is what is reported, both are kept beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import betaincinv, gammaincinv

from ictal.events.counts import SECONDS_PER_DAY, EventCounts

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 30  # fixed: the same scores give the same intervals on every run

Interval = tuple[float, float]


def clopper_pearson(hits: float, n: float) -> Interval | None:
    """Exact binomial interval of hits / n; None without seizures. Fractional counts (TAES)
    take the low bound at the whole count below and the high bound at the one above, which
    contains the interval of any count between them (conservative). The bounds are the beta
    quantiles that define them (``scipy.special``: ``scipy.stats`` costs a command 0.7 s to
    import, and its ``binomtest`` finds the same bounds by root-finding, to 1e-12)."""
    if n <= 0:
        return None
    whole_n = math.ceil(n - 1e-9)
    below, above = math.floor(hits + 1e-9), min(math.ceil(hits - 1e-9), whole_n)
    below, above = max(below, 0), max(above, 0)
    if below > whole_n:  # more hits than seizures: counts that cannot be, never a NaN bound
        raise ValueError(f"hits ({hits}) must not be greater than n ({n})")
    tail = (1.0 - CONFIDENCE) / 2
    low = betaincinv(below, whole_n - below + 1, tail) if below > 0 else 0.0
    high = betaincinv(above + 1, whole_n - above, 1.0 - tail) if above < whole_n else 1.0
    return float(low), float(high)


def garwood(false_alarms: float, duration_s: float, fa_seconds: float = 1.0) -> Interval | None:
    """Exact Poisson (Garwood) interval of a false-alarm count, as FA/24h over ``duration_s``;
    None without recording time. A fractional count (TAES) takes the low bound at the whole
    count below and the high bound at the one above (conservative)."""
    if duration_s <= 0:
        return None
    alpha = 1.0 - CONFIDENCE
    below, above = math.floor(false_alarms + 1e-9), math.ceil(false_alarms - 1e-9)
    # chi2.ppf(q, 2k) / 2 is gammaincinv(k, q), as scipy.stats computes it
    low = gammaincinv(below, alpha / 2) if below > 0 else 0.0
    high = gammaincinv(above + 1, 1 - alpha / 2)
    scale = fa_seconds * SECONDS_PER_DAY / duration_s
    return float(low * scale), float(high * scale)


def patient_bootstrap(
    patients: Sequence[EventCounts], resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, Interval | None] | None:
    """Percentile intervals of pooled sensitivity and FA/24h over ``resamples`` draws of the
    patients with replacement (each patient's counts pooled over its recordings); None for
    fewer than two patients. Draws without seizures or time are left out of that rate."""
    if len(patients) < 2:
        return None
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(patients), size=(resamples, len(patients)))

    def total(attr: str) -> np.ndarray:
        """Each draw's sum of one count over its patients."""
        return np.asarray([getattr(c, attr) for c in patients], dtype=float)[draw].sum(1)

    hits, misses, fas, dur = (total(a) for a in ("hits", "misses", "false_alarms", "duration_s"))
    fa_seconds = patients[0].fa_seconds
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(hits + misses > 0, hits / (hits + misses), np.nan)
        fa = np.where(dur > 0, fas * fa_seconds / dur * SECONDS_PER_DAY, np.nan)
    return {"sensitivity": _percentiles(sens), "fa_per_24h": _percentiles(fa)}


def _percentiles(x: np.ndarray) -> Interval | None:
    x = x[~np.isnan(x)]
    if not len(x):
        return None
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(x, [tail, 100 - tail])
    return float(low), float(high)


def _envelope(*intervals: Interval | None) -> Interval | None:
    have = [i for i in intervals if i is not None]
    return (min(i[0] for i in have), max(i[1] for i in have)) if have else None


def interval_doc(
    pooled: EventCounts, patients: Sequence[EventCounts], exact: bool = True
) -> dict[str, Any]:
    """The ``ci95`` of one operating point: the reported sensitivity and FA/24h intervals
    (envelope of the exact and bootstrap ones), each method's own, and how they were made.
    ``exact=False`` (sample scores: correlated seconds, not events) leaves the bootstrap only."""
    ex = {
        "sensitivity": clopper_pearson(pooled.hits, pooled.hits + pooled.misses),
        "fa_per_24h": garwood(pooled.false_alarms, pooled.duration_s, pooled.fa_seconds),
    } if exact else {"sensitivity": None, "fa_per_24h": None}  # fmt: skip
    boot = patient_bootstrap(patients) or {"sensitivity": None, "fa_per_24h": None}
    used = [m for m, d in (("exact", ex), ("patient bootstrap", boot)) if any(d.values())]
    return {
        "sensitivity": _envelope(ex["sensitivity"], boot["sensitivity"]),
        "fa_per_24h": _envelope(ex["fa_per_24h"], boot["fa_per_24h"]),
        "exact": ex,
        "bootstrap": {**boot, "resamples": RESAMPLES, "seed": SEED, "n_patients": len(patients)},
        "method": " and ".join(used) or "none (no seizures or time; bootstrap: 2+ patients)",
    }
