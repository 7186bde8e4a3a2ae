"""Every scorer by name, in the two forms Ictal calls them: on event lists (evaluate, the
operating points) and on NEDC timelines (``ictal score`` on files). One implementation each:
NEDC's four live in ``events.nedc``, SzCORE's two in ``events.szcore``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ictal.events import nedc
from ictal.events.counts import EventCounts
from ictal.events.nedc import Timeline, timeline_of_events
from ictal.events.postprocess import Event
from ictal.events.szcore import score_szcore, score_szcore_sample_events

Scorer = Callable[[Sequence[Event], Sequence[Event], float], EventCounts]
TimelineScorer = Callable[[Timeline, Timeline], EventCounts]

# Names in the order tables and documents list them; "szcore" on the command line means both
# SzCORE scorers.
ORDER: tuple[str, ...] = ("ovlp", "taes", "epoch", "dpalign", "szcore", "szcore_samples")
NEDC_NAMES: tuple[str, ...] = ("ovlp", "taes", "epoch", "dpalign")
LABELS: dict[str, str] = {
    "ovlp": "OVLP (NEDC)",
    "taes": "TAES (NEDC)",
    "epoch": "EPOCH (NEDC)",
    "dpalign": "DPALIGN (NEDC)",
    "szcore": "SzCORE events",
    "szcore_samples": "SzCORE samples",
}


def _inside(tl: Timeline, duration_s: float) -> list[Event]:
    """Seizures clipped to the recording: SzCORE scores masks of the recording's length."""
    clipped = [(max(a, 0.0), min(b, duration_s)) for a, b in tl.seizures]
    return [(a, b) for a, b in clipped if b > a]


def _szcore(ref: Timeline, hyp: Timeline) -> EventCounts:
    d = ref.duration_s
    return score_szcore(_inside(ref, d), _inside(hyp, d), d)


def _szcore_samples(ref: Timeline, hyp: Timeline) -> EventCounts:
    d = ref.duration_s
    return score_szcore_sample_events(_inside(ref, d), _inside(hyp, d), d)


TIMELINE_SCORERS: dict[str, TimelineScorer] = {
    "ovlp": nedc.ovlp,
    "taes": nedc.taes,
    "epoch": nedc.epoch,
    "dpalign": nedc.dpalign,
    "szcore": _szcore,
    "szcore_samples": _szcore_samples,
}


def _on_events(scorer: TimelineScorer) -> Scorer:
    """The event-list form of a timeline scorer: both lists become timelines as a ``.csv_bi``
    export would hold them, so evaluate's numbers equal ``ictal score`` on its exports."""

    def score(ref: Sequence[Event], hyp: Sequence[Event], duration_s: float) -> EventCounts:
        return scorer(timeline_of_events(ref, duration_s), timeline_of_events(hyp, duration_s))

    score.__name__ = f"score_{scorer.__name__.lstrip('_')}"
    score.__doc__ = scorer.__doc__
    return score


score_ovlp = _on_events(nedc.ovlp)
score_taes = _on_events(nedc.taes)
score_epoch = _on_events(nedc.epoch)
score_dpalign = _on_events(nedc.dpalign)

SCORERS: dict[str, Scorer] = {
    "ovlp": score_ovlp,
    "taes": score_taes,
    "epoch": score_epoch,
    "dpalign": score_dpalign,
    "szcore": score_szcore,
    "szcore_samples": score_szcore_sample_events,
}


def get_scorer(name: str) -> Scorer:
    """The scorer registered under ``name``; a clear error listing the known names otherwise."""
    try:
        return SCORERS[name]
    except KeyError:
        raise KeyError(f"unknown scorer {name!r}; known: {', '.join(ORDER)}") from None
