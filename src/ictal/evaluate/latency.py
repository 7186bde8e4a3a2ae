"""Onset latency: how long after a seizure's annotated onset the detector first flags it,
per detected seizure; what bedside monitoring needs and neither NEDC nor SzCORE reports.

A reference seizure is detected when a hypothesis event overlaps it (OVLP's rule); its
latency is the start of the earliest such event minus the reference onset, in seconds.
Negative latencies (a detection that began before the annotated onset) are kept, not clipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ictal.events.postprocess import Event


def onset_latencies(ref: Sequence[Event], hyp: Sequence[Event]) -> list[float]:
    """One latency (s) per reference seizure some hypothesis overlaps strictly, in order."""
    out = []
    for a, b in ref:
        starts = [s for s, e in hyp if e > a and s < b]
        if starts:
            out.append(float(min(starts) - a))
    return out


def latency_summary(latencies: Iterable[float]) -> dict[str, Any]:
    """Median, quartiles and range (s) of the latencies; ``n`` the seizures they come from
    (None throughout when no seizure was detected)."""
    x = np.asarray(list(latencies), dtype=float)
    if not len(x):
        return {"n": 0, "median": None, "q1": None, "q3": None, "min": None, "max": None}
    q1, median, q3 = (float(v) for v in np.percentile(x, [25, 50, 75]))
    return {"n": len(x), "median": median, "q1": q1, "q3": q3,
            "min": float(x.min()), "max": float(x.max())}  # fmt: skip
