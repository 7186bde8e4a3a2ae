"""Scorers: NEDC any-overlap (OVLP) and time-aligned (TAES), SzCORE via timescoring.

Every scorer turns one recording's reference and hypothesis events into ``EventCounts``;
counts pool over files by addition, so FA/24h is over the total recording time (NEDC).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from timescoring.annotations import Annotation
from timescoring.scoring import EventScoring, SampleScoring

Event = tuple[float, float]
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class EventCounts:
    """Hits, misses and false alarms (fractional for TAES) over ``duration_s`` of recording."""

    hits: float
    misses: float
    false_alarms: float
    n_ref: int
    duration_s: float

    @property
    def sensitivity(self) -> float:
        """Hits per reference event; nan without reference events."""
        return self.hits / self.n_ref if self.n_ref else math.nan

    @property
    def fa_per_24h(self) -> float:
        """False alarms per 24 h of total recording time; nan for zero duration."""
        return (
            self.false_alarms / self.duration_s * SECONDS_PER_DAY if self.duration_s else math.nan
        )

    @property
    def precision(self) -> float:
        """Hits / (hits + false alarms); nan when both are zero."""
        total = self.hits + self.false_alarms
        return self.hits / total if total else math.nan

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(
            hits=self.hits + other.hits,
            misses=self.misses + other.misses,
            false_alarms=self.false_alarms + other.false_alarms,
            n_ref=self.n_ref + other.n_ref,
            duration_s=self.duration_s + other.duration_s,
        )


ZERO = EventCounts(hits=0.0, misses=0.0, false_alarms=0.0, n_ref=0, duration_s=0.0)


def pool(counts: Iterable[EventCounts]) -> EventCounts:
    """Pool per-file counts NEDC-style: sum everything, including the recording time."""
    total = ZERO
    for c in counts:
        total = total + c
    return total


def normalise_events(events: Sequence[Event]) -> list[Event]:
    """Sorted events with overlapping ones united; rejects non-finite or empty events."""
    out: list[Event] = []
    for start, stop in sorted((float(a), float(b)) for a, b in events):
        if not (math.isfinite(start) and math.isfinite(stop)) or stop <= start:
            raise ValueError(f"invalid event ({start}, {stop}): need finite start < stop")
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out


def _overlaps(a: Event, b: Event) -> bool:
    """NEDC any-overlap: ``b.stop > a.start and b.start < a.stop`` (touching is not overlap)."""
    return b[1] > a[0] and b[0] < a[1]


def score_ovlp(ref: Sequence[Event], hyp: Sequence[Event], duration_s: float) -> EventCounts:
    """NEDC any-overlap: a reference overlapped by any hypothesis is a hit, else a miss; a
    hypothesis overlapping no reference is one false alarm (one hypothesis may hit several)."""
    r, h = normalise_events(ref), normalise_events(hyp)
    hits = sum(any(_overlaps(x, y) for y in h) for x in r)
    false_alarms = sum(not any(_overlaps(x, y) for x in r) for y in h)
    return EventCounts(float(hits), float(len(r) - hits), float(false_alarms), len(r), duration_s)


def _partial(ref: Event, hyp: Event) -> tuple[float, float]:
    """TAES credit of one overlapping pair: (overlap / ref length, min(1, outside / ref length))."""
    ref_len = ref[1] - ref[0]
    overlap = min(ref[1], hyp[1]) - max(ref[0], hyp[0])
    outside = (hyp[1] - hyp[0]) - overlap
    return overlap / ref_len, min(1.0, outside / ref_len)


def score_taes(ref: Sequence[Event], hyp: Sequence[Event], duration_s: float) -> EventCounts:
    """NEDC time-aligned event scoring with fractional hits, misses and false alarms.

    Walks references in time order like NEDC's ``nedc_eval_taes``: a reference takes the first
    unused hypothesis that overlaps it. If that hypothesis runs to or past the reference's end,
    every later reference it overlaps is used up as one full miss; otherwise all further unused
    hypotheses overlapping the reference add their partial hits and false alarms (the last of
    them may reach into the next reference, which it then does not credit). Each pair gives
    hit = overlap / ref length, miss = 1 - hit, FA = min(1, hyp outside / ref length).
    Leftover references are one miss each, leftover hypotheses one false alarm each, so
    hits + misses always equals the number of references.
    """
    r, h = normalise_events(ref), normalise_events(hyp)
    ref_free = [True] * len(r)
    hyp_free = [True] * len(h)
    hits = misses = false_alarms = 0.0
    for i, rev in enumerate(r):
        if not ref_free[i]:
            continue
        j = next((j for j, hev in enumerate(h) if hyp_free[j] and _overlaps(rev, hev)), None)
        if j is None:
            continue
        ref_free[i] = hyp_free[j] = False
        hit, fa = _partial(rev, h[j])
        hits, misses, false_alarms = hits + hit, misses + 1.0 - hit, false_alarms + fa
        if h[j][1] >= rev[1]:
            for k in range(i + 1, len(r)):
                if ref_free[k] and _overlaps(r[k], h[j]):
                    ref_free[k] = False
                    misses += 1.0
        else:
            for k in range(j + 1, len(h)):
                if hyp_free[k] and _overlaps(rev, h[k]):
                    hyp_free[k] = False
                    hit, fa = _partial(rev, h[k])
                    hits, misses, false_alarms = hits + hit, misses - hit, false_alarms + fa
    misses += sum(ref_free)
    false_alarms += sum(hyp_free)
    return EventCounts(hits, misses, false_alarms, len(r), duration_s)


def score_szcore(
    ref: Sequence[Event], hyp: Sequence[Event], duration_s: float, fs: float = 1.0
) -> EventCounts:
    """SzCORE event scoring: ``timescoring.EventScoring`` with its default parameters.

    Events become masks of ``round(duration_s * fs)`` samples; the counts' duration is the one
    timescoring scored, so ``fa_per_24h`` equals its ``fpRate``.
    """
    n = round(duration_s * fs)
    ref_ann = Annotation(normalise_events(ref), fs, n)
    hyp_ann = Annotation(normalise_events(hyp), fs, n)
    s = EventScoring(ref_ann, hyp_ann)
    return _from_timescoring(s)


def _from_timescoring(s: EventScoring | SampleScoring) -> EventCounts:
    """EventCounts from a timescoring result (its own duration, so rates match fpRate)."""
    return EventCounts(
        hits=float(s.tp),
        misses=float(s.refTrue - s.tp),
        false_alarms=float(s.fp),
        n_ref=int(s.refTrue),
        duration_s=s.numSamples / s.fs,
    )


def score_szcore_samples(ref_mask: np.ndarray, hyp_mask: np.ndarray, fs: float) -> EventCounts:
    """SzCORE sample scoring (``timescoring.SampleScoring``): counts are samples, not events."""
    ref_mask = np.asarray(ref_mask, dtype=bool)
    hyp_mask = np.asarray(hyp_mask, dtype=bool)
    if ref_mask.ndim != 1 or ref_mask.shape != hyp_mask.shape or ref_mask.size == 0:
        raise ValueError(
            f"masks must be 1-D, non-empty, same length: {ref_mask.shape}, {hyp_mask.shape}"
        )
    s = SampleScoring(Annotation(ref_mask, fs), Annotation(hyp_mask, fs), fs=fs)
    return _from_timescoring(s)


Scorer = Callable[[Sequence[Event], Sequence[Event], float], EventCounts]
SCORERS: dict[str, Scorer] = {"ovlp": score_ovlp, "taes": score_taes, "szcore": score_szcore}


def get_scorer(name: str) -> Scorer:
    """The scorer registered under ``name``; a clear error listing the known names otherwise."""
    try:
        return SCORERS[name]
    except KeyError:
        raise KeyError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}") from None
