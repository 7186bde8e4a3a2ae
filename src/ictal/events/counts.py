"""Scorer counts: hits, misses and false alarms over a recording time, pooled by addition.

Every scorer (NEDC's four, SzCORE's two) reports an ``EventCounts`` per file; NEDC pools by
summing counts and recording time, so FA/24h is over the total time of all files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class EventCounts:
    """Hits, misses and false alarms (fractional for TAES) over ``duration_s`` of recording.

    ``fa_seconds`` is what one false alarm weighs in FA/24h: 1 for events, the epoch length
    for NEDC EPOCH (whose rate is false-alarm epochs times their length per day).
    """

    hits: float
    misses: float
    false_alarms: float
    n_ref: int
    duration_s: float
    fa_seconds: float = 1.0

    @property
    def sensitivity(self) -> float:
        """Hits / (hits + misses), as NEDC computes it; nan with neither."""
        found = self.hits + self.misses
        return self.hits / found if found else math.nan

    @property
    def fa_per_24h(self) -> float:
        """False alarms per 24 h of total recording time; nan for zero duration."""
        if not self.duration_s:
            return math.nan
        return self.false_alarms * self.fa_seconds / self.duration_s * SECONDS_PER_DAY

    @property
    def precision(self) -> float:
        """Hits / (hits + false alarms); nan when both are zero."""
        total = self.hits + self.false_alarms
        return self.hits / total if total else math.nan

    def f1_score(self, undefined: float = math.nan) -> float:
        """F1, the harmonic mean of precision and sensitivity (the project's one definition).

        ``undefined`` is what a rate with nothing to divide by counts as. nan (the default)
        leaves F1 undefined too, as pooled scores report it. 1.0 scores a recording with
        nothing to find and nothing found as perfect, and one with only misses or only false
        alarms as 0, as the per-recording F1 of an evaluation ranks recordings.
        """
        p, r = self.precision, self.sensitivity
        p = undefined if math.isnan(p) else p
        r = undefined if math.isnan(r) else r
        if math.isnan(p) or math.isnan(r):
            return math.nan
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def f1(self) -> float:
        """F1 as pooled scores report it: nan when precision or sensitivity is undefined."""
        return self.f1_score()

    def as_dict(self) -> dict[str, Any]:
        """The counts and every rate derived from them, JSON-ready (None where undefined)."""
        rates = {"sensitivity": self.sensitivity, "fa_per_24h": self.fa_per_24h,
                 "precision": self.precision, "f1": self.f1}  # fmt: skip
        return {**asdict(self), **{k: None if math.isnan(v) else v for k, v in rates.items()}}

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(
            hits=self.hits + other.hits,
            misses=self.misses + other.misses,
            false_alarms=self.false_alarms + other.false_alarms,
            n_ref=self.n_ref + other.n_ref,
            duration_s=self.duration_s + other.duration_s,
            fa_seconds=_pooled_weight(self, other.fa_seconds, other.duration_s),
        )


def _pooled_weight(pooled: EventCounts | Tally, fa_seconds: float, duration_s: float) -> float:
    """What a false alarm weighs once ``pooled`` and counts of ``fa_seconds`` and
    ``duration_s`` are added: counts of different weights never pool."""
    if pooled.fa_seconds != fa_seconds and pooled.duration_s and duration_s:
        raise ValueError("cannot pool counts of different scorers (false alarm weights)")
    return fa_seconds if not pooled.duration_s else pooled.fa_seconds


class Tally:
    """Counts pooled in place, field by field in the order ``+`` adds them (the same sums):
    what pooling thousands of files costs without a new ``EventCounts`` per file."""

    __slots__ = ("duration_s", "fa_seconds", "false_alarms", "hits", "misses", "n_ref")

    def __init__(self) -> None:
        self.hits = self.misses = self.false_alarms = self.duration_s = 0.0
        self.n_ref = 0
        self.fa_seconds = 1.0

    def add(self, c: EventCounts) -> None:
        """Pool one file's counts in."""
        self.fa_seconds = _pooled_weight(self, c.fa_seconds, c.duration_s)
        self.hits += c.hits
        self.misses += c.misses
        self.false_alarms += c.false_alarms
        self.n_ref += c.n_ref
        self.duration_s += c.duration_s

    def counts(self) -> EventCounts:
        """The pooled counts."""
        return EventCounts(self.hits, self.misses, self.false_alarms, self.n_ref,
                           self.duration_s, self.fa_seconds)  # fmt: skip


ZERO = EventCounts(hits=0.0, misses=0.0, false_alarms=0.0, n_ref=0, duration_s=0.0)


def pool(counts: Iterable[EventCounts]) -> EventCounts:
    """Pool per-file counts NEDC-style: sum everything, including the recording time."""
    tally = Tally()
    for c in counts:
        tally.add(c)
    return tally.counts()
