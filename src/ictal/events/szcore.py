"""SzCORE scoring through ``timescoring``: event scoring with its default parameters and
sample scoring, counts pooled like NEDC's (summed), not averaged per subject."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from timescoring.annotations import Annotation
from timescoring.scoring import EventScoring, SampleScoring

from ictal.events.counts import EventCounts
from ictal.events.postprocess import Event, merge_close


def _events(events: Sequence[Event]) -> list[Event]:
    """Sorted events with overlapping ones united (timescoring expects disjoint events)."""
    return merge_close(sorted((float(a), float(b)) for a, b in events), 0.0)


def _counts(s: EventScoring | SampleScoring) -> EventCounts:
    """EventCounts from a timescoring result (its own duration, so rates match fpRate)."""
    return EventCounts(
        hits=float(s.tp),
        misses=float(s.refTrue - s.tp),
        false_alarms=float(s.fp),
        n_ref=int(s.refTrue),
        duration_s=s.numSamples / s.fs,
    )


def score_szcore(
    ref: Sequence[Event], hyp: Sequence[Event], duration_s: float, fs: float = 1.0
) -> EventCounts:
    """SzCORE event scoring: ``timescoring.EventScoring`` with its default parameters.

    Events become masks of ``round(duration_s * fs)`` samples (SzCORE scores at 1 Hz); the
    counts' duration is the one timescoring scored, so ``fa_per_24h`` equals its ``fpRate``.
    """
    n = round(duration_s * fs)
    s = EventScoring(Annotation(_events(ref), fs, n), Annotation(_events(hyp), fs, n))
    return _counts(s)


def score_szcore_samples(ref_mask: np.ndarray, hyp_mask: np.ndarray, fs: float) -> EventCounts:
    """SzCORE sample scoring (``timescoring.SampleScoring``): counts are samples, not events."""
    ref_mask = np.asarray(ref_mask, dtype=bool)
    hyp_mask = np.asarray(hyp_mask, dtype=bool)
    if ref_mask.ndim != 1 or ref_mask.shape != hyp_mask.shape or ref_mask.size == 0:
        raise ValueError(
            f"masks must be 1-D, non-empty, same length: {ref_mask.shape}, {hyp_mask.shape}"
        )
    s = SampleScoring(Annotation(ref_mask, fs), Annotation(hyp_mask, fs), fs=fs)
    return _counts(s)


def score_szcore_sample_events(
    ref: Sequence[Event], hyp: Sequence[Event], duration_s: float, fs: float = 1.0
) -> EventCounts:
    """SzCORE sample scoring of two event lists, as SzCORE scores files: masks at ``fs``."""
    n = round(duration_s * fs)
    ref_mask = Annotation(_events(ref), fs, n).mask
    hyp_mask = Annotation(_events(hyp), fs, n).mask
    return score_szcore_samples(ref_mask, hyp_mask, fs)
