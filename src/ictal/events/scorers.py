"""Every scorer by name, in the two forms Ictal calls them: on event lists (evaluate, the
operating points) and on annotation files (``ictal score``). One implementation each:
NEDC's four live in ``events.nedc``, SzCORE's two in ``events.szcore``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from ictal.events import nedc
from ictal.events.counts import EventCounts
from ictal.events.formats import ScoredFile
from ictal.events.intervals import Event
from ictal.events.nedc import Timeline, timeline_of_events
from ictal.events.szcore import DEFAULT, SzcoreParams, score_pair

Scorer = Callable[[Sequence[Event], Sequence[Event], float], EventCounts]
TimelineScorer = Callable[[Timeline, Timeline], EventCounts]

# Names in the order tables and documents list them; "szcore" on the command line means both
# SzCORE scorers.
ORDER: tuple[str, ...] = ("ovlp", "taes", "epoch", "dpalign", "szcore", "szcore_samples")
NEDC_NAMES: tuple[str, ...] = ("ovlp", "taes", "epoch", "dpalign")
SZCORE_NAMES: tuple[str, ...] = ("szcore", "szcore_samples")
LABELS: dict[str, str] = {
    "ovlp": "OVLP (NEDC)",
    "taes": "TAES (NEDC)",
    "epoch": "EPOCH (NEDC)",
    "dpalign": "DPALIGN (NEDC)",
    "szcore": "SzCORE events",
    "szcore_samples": "SzCORE samples",
}

TIMELINE_SCORERS: dict[str, TimelineScorer] = {
    "ovlp": nedc.ovlp,
    "taes": nedc.taes,
    "epoch": nedc.epoch,
    "dpalign": nedc.dpalign,
}


def score_szcore_files(
    ref: ScoredFile, hyp: ScoredFile | None, params: SzcoreParams = DEFAULT
) -> dict[str, EventCounts]:
    """Both SzCORE scorers on one pair of files, from the times as written (no hypothesis:
    an empty one); the reference's duration sizes both masks."""
    hyp_events = () if hyp is None else hyp.seizures
    hyp_duration = None if hyp is None else hyp.duration_s
    events, samples = score_pair(ref.seizures, hyp_events, ref.duration_s, params, hyp_duration)
    return {"szcore": events, "szcore_samples": samples}


def _tsv_times(value: float) -> float:
    """A time as a SzCORE TSV export writes it (two decimals) and a reader reads it back."""
    return float(f"{value:.2f}")


def as_tsv(events: Sequence[Event], duration_s: float) -> tuple[list[Event], float]:
    """Events and duration as a SzCORE ``_events.tsv`` export holds them: clipped to the
    recording, onset and duration at two decimals (stop = onset + duration, as read)."""
    out = []
    for a, b in events:
        start, stop = max(float(a), 0.0), min(float(b), duration_s)
        if stop > start:
            onset = _tsv_times(start)
            out.append((onset, onset + _tsv_times(stop - start)))
    return out, _tsv_times(duration_s)


def _szcore_events(
    which: int, params: SzcoreParams, ref: Sequence[Event], hyp: Sequence[Event], d: float
) -> EventCounts:
    ref_tsv, duration = as_tsv(ref, d)
    return score_pair(ref_tsv, as_tsv(hyp, d)[0], duration, params)[which]


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
    "szcore": functools.partial(_szcore_events, 0, DEFAULT),
    "szcore_samples": functools.partial(_szcore_events, 1, DEFAULT),
}


def get_scorer(name: str, szcore: SzcoreParams = DEFAULT) -> Scorer:
    """The scorer registered under ``name`` (SzCORE's with ``szcore`` parameters, on events
    as a TSV export holds them, so evaluate equals ``ictal score`` on its exports); a clear
    error listing the known names otherwise."""
    if name in SZCORE_NAMES and szcore != DEFAULT:
        return functools.partial(_szcore_events, SZCORE_NAMES.index(name), szcore)
    try:
        return SCORERS[name]
    except KeyError:
        raise KeyError(f"unknown scorer {name!r}; known: {', '.join(ORDER)}") from None
