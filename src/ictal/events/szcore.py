"""SzCORE scoring exactly as SzCORE's own evaluator (``szcore-evaluation`` 0.0.7) scores.

Events become a mask of ``int(duration * fs)`` samples in which each event sets samples
``int(start * fs)`` up to ``int(stop * fs)`` (truncation, as epilepsy2bids builds masks), and
``timescoring`` scores those masks: ``EventScoring`` with the parameters below, and
``SampleScoring``, here computed on the masks' runs (``events.szcore_runs``: the same counts
without a sample-by-sample pass). docs/evaluation.md ("SzCORE rules") lists each rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from ictal.events.counts import EventCounts
from ictal.events.intervals import Event
from ictal.events.runs import Run, of_mask, union
from ictal.events.szcore_runs import event_counts, sample_counts

if TYPE_CHECKING:  # numpy is imported where masks are built: the scorers walk runs
    import numpy as np
    from timescoring.scoring import EventScoring

POOLINGS: tuple[str, ...] = ("recording", "subject")
F1_RULE = (
    "SzCORE's: 2*hits / (2*hits + false_alarms + misses); 0, not null, with only misses or "
    "only false alarms; null with neither"
)


class SzcoreError(ValueError):
    """A recording or pair SzCORE cannot score (shorter than one sample, lengths differ)."""


@dataclass(frozen=True)
class SzcoreParams:
    """SzCORE's scoring parameters; the defaults are the evaluator's (``timescoring``'s)."""

    fs: int = 1  # mask rate in Hz: the evaluator scores at 1 Hz
    tolerance_start_s: float = 30.0  # a hypothesis this long before a seizure still hits it
    tolerance_end_s: float = 60.0  # ... and this long after it
    min_overlap: float = 0.0  # fraction of the widened seizure a hit must cover (0: any)
    max_event_s: float = 300.0  # longer events are split into pieces of this length
    merge_gap_s: float = 90.0  # events closer than this are merged first

    @classmethod
    def of(cls, section: object) -> SzcoreParams:
        """The parameters of a config section with the same field names (``scoring.szcore``)."""
        return cls(**{f.name: getattr(section, f.name) for f in fields(cls)})

    def event_parameters(self) -> EventScoring.Parameters:
        """The same parameters as ``timescoring`` names them."""
        from timescoring.scoring import EventScoring

        return EventScoring.Parameters(
            toleranceStart=self.tolerance_start_s,
            toleranceEnd=self.tolerance_end_s,
            minOverlap=self.min_overlap,
            maxEventDuration=self.max_event_s,
            minDurationBetweenEvents=self.merge_gap_s,
        )


DEFAULT = SzcoreParams()


def n_samples(duration_s: float, fs: int) -> int:
    """Samples of a recording's mask: its duration times ``fs``, truncated (the evaluator's)."""
    return int(duration_s * fs)


def mask_of(events: Iterable[Event], duration_s: float, fs: int) -> np.ndarray:
    """The evaluator's mask of events in seconds: ``[int(start*fs), int(stop*fs))`` each,
    cut at the recording's end; times before 0 count from 0 (the evaluator's slice would
    wrap them to the end of the recording)."""
    import numpy as np

    mask = np.zeros(n_samples(duration_s, fs), dtype=bool)
    for lo, hi in runs_of(events, duration_s, fs):
        mask[lo:hi] = True
    return mask


def runs_of(events: Iterable[Event], duration_s: float, fs: int) -> list[Run]:
    """``mask_of``'s mask as its runs (what the scorers below walk)."""
    cut = []
    for start, stop in events:
        lo, hi = int(start * fs), int(stop * fs)
        cut.append((lo if lo > 0 else 0, hi if hi > 0 else 0))
    return union(cut, n_samples(duration_s, fs))


def score_masks(
    ref_mask: np.ndarray, hyp_mask: np.ndarray, params: SzcoreParams = DEFAULT
) -> tuple[EventCounts, EventCounts]:
    """SzCORE event and sample counts of two masks at ``params.fs``."""
    import numpy as np

    ref_mask = np.asarray(ref_mask, dtype=bool)
    hyp_mask = np.asarray(hyp_mask, dtype=bool)
    if ref_mask.ndim != 1 or ref_mask.shape != hyp_mask.shape or ref_mask.size == 0:
        raise SzcoreError(
            f"masks must be 1-D, non-empty, same length: {ref_mask.shape}, {hyp_mask.shape}"
        )
    return _score_runs(of_mask(ref_mask), of_mask(hyp_mask), ref_mask.size, params)


def _score_runs(
    ref: list[Run], hyp: list[Run], n: int, params: SzcoreParams
) -> tuple[EventCounts, EventCounts]:
    """Timescoring's event and sample counts of two masks of ``n`` samples given as runs."""
    return event_counts(ref, hyp, n, params), sample_counts(ref, hyp, n, params.fs)


def score_pair(
    ref: Sequence[Event],
    hyp: Sequence[Event],
    duration_s: float,
    params: SzcoreParams = DEFAULT,
    hyp_duration_s: float | None = None,
) -> tuple[EventCounts, EventCounts]:
    """SzCORE event and sample counts of one recording's event lists (times in seconds).

    ``hyp_duration_s``, the hypothesis file's own duration, must give the same number of
    samples (the evaluator would score the hypothesis as empty without a word).
    """
    n = n_samples(duration_s, params.fs)
    if n < 1:
        raise SzcoreError(
            f"recording of {duration_s} s is shorter than one SzCORE sample ({1 / params.fs:g} s)"
        )
    if hyp_duration_s is not None and n_samples(hyp_duration_s, params.fs) != n:
        raise SzcoreError(
            f"durations differ: reference {duration_s} s, hypothesis {hyp_duration_s} s "
            f"({n} and {n_samples(hyp_duration_s, params.fs)} samples at {params.fs} Hz)"
        )
    fs = params.fs
    return _score_runs(runs_of(ref, duration_s, fs), runs_of(hyp, duration_s, fs), n, params)


def score_szcore(
    ref: Sequence[Event], hyp: Sequence[Event], duration_s: float, params: SzcoreParams = DEFAULT
) -> EventCounts:
    """SzCORE event scoring of one recording (the evaluator's ``event_results``)."""
    return score_pair(ref, hyp, duration_s, params)[0]


def score_szcore_sample_events(
    ref: Sequence[Event], hyp: Sequence[Event], duration_s: float, params: SzcoreParams = DEFAULT
) -> EventCounts:
    """SzCORE sample scoring of one recording (the evaluator's ``sample_results``)."""
    return score_pair(ref, hyp, duration_s, params)[1]


def szcore_f1(c: EventCounts) -> float:
    """F1 as SzCORE computes it: ``2*hits / (2*hits + false_alarms + misses)``; 0 when only
    misses or only false alarms (where precision or sensitivity is undefined), nan only with
    nothing to find and nothing found."""
    if not (c.n_ref or c.false_alarms):
        return math.nan
    return 2 * c.hits / (2 * c.hits + c.false_alarms + c.misses)


def _rates(c: EventCounts) -> dict[str, float]:
    return {"sensitivity": c.sensitivity, "precision": c.precision, "f1": szcore_f1(c),
            "fa_per_24h": c.fa_per_24h}  # fmt: skip


def _json(v: float) -> float | None:
    return None if math.isnan(v) else v


def szcore_doc(
    total: EventCounts, by_subject: dict[str, EventCounts], pooling: str
) -> dict[str, Any]:
    """A SzCORE scorer's JSON object: the summed counts, and rates pooled as asked.

    ``recording``: rates of the summed counts (the evaluator's ``avg_per_subject=False``).
    ``subject``: the mean and standard deviation over subjects of each subject's rates,
    ignoring undefined ones (its default, ``nanmean``/``nanstd``).
    """
    doc: dict[str, Any] = {**asdict(total), "pooling": pooling, "f1_rule": F1_RULE}
    if pooling == "recording":
        return doc | {k: _json(v) for k, v in _rates(total).items()}
    import numpy as np

    per = [_rates(c) for c in by_subject.values()]
    doc["subjects"] = len(per)
    for key in ("sensitivity", "precision", "f1", "fa_per_24h"):
        values = np.array([r[key] for r in per], dtype=float)
        defined = values[~np.isnan(values)]
        doc[key] = float(defined.mean()) if defined.size else None
        doc[f"{key}_std"] = float(defined.std()) if defined.size else None
    return doc


def subject_of(stem: str) -> str:
    """The subject a recording belongs to: its name up to the first ``_`` (``sub-01`` of a
    BIDS name, the patient of a TUSZ one)."""
    return stem.split("_", 1)[0]
