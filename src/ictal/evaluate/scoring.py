"""The scoring pass of an evaluation: each recording's trace scored once (default threshold,
every operating threshold, each export point), its counts added to the pooled totals and, in
a mixture, to its corpus's; its hypotheses exported at each export point (``hyp/<label>/``,
scored there as ``ictal score`` scores those files) and its row of scores.json written.

One trace is in memory at a time; only counts, AUROC histograms and per-recording rows stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal.auroc import HistogramAuroc
from ictal.evaluate.latency import onset_latencies
from ictal.evaluate.probs import RecordingInfo
from ictal.events.counts import ZERO, EventCounts
from ictal.events.deployed import ExportPlan
from ictal.events.hypotheses import write_exports
from ictal.events.masks import events_mask
from ictal.events.operating_points import (
    DEFAULT_SCORERS,
    OperatingPoints,
    RecordingTrace,
    at_threshold,
)
from ictal.events.postprocess import Event, PostProcess, events_from_probs
from ictal.events.scorers import SZCORE_NAMES, Scorer, get_scorer
from ictal.events.szcore import DEFAULT, SzcoreParams

# A recording's OVLP F1 counts a rate with nothing to divide by as perfect: 1.0 for nothing
# to find and nothing found, 0.0 for only misses or only false alarms.
RECORDING_F1_UNDEFINED = 1.0


@dataclass
class RecordingCounts:
    """One recording's counts, computed once and added to every total it belongs to."""

    duration_s: float
    n_ref: int
    default: dict[str, EventCounts]
    samples_default: EventCounts
    samples_ops: dict[float, EventCounts] = field(default_factory=dict)
    events_ops: dict[str, dict[float, EventCounts]] = field(default_factory=dict)
    latency_default: list[float] = field(default_factory=list)  # s, per detected seizure
    latency_ops: dict[float, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordingTally:
    """A recording's counts with the patient (and corpus) they belong to: what the patient
    bootstrap, the per-patient rows and the onset latencies are computed from."""

    id: str
    patient: str
    corpus: str | None
    counts: RecordingCounts


@dataclass
class Totals:
    """What the scoring pass pools over a set of recordings: all of them, or one corpus's."""

    default: dict[str, EventCounts]
    samples_ops: dict[float, EventCounts]
    events_ops: dict[str, dict[float, EventCounts]]
    samples_default: EventCounts = ZERO
    auroc: HistogramAuroc = field(default_factory=HistogramAuroc)
    n_recordings: int = 0
    duration_s: float = 0.0
    n_ref: int = 0
    # SzCORE's counts at the default threshold per subject (its per-subject pooling)
    subjects: dict[str, dict[str, EventCounts]] = field(default_factory=dict)

    @classmethod
    def empty(
        cls, scorers: Iterable[str], op_thresholds: list[float], event_scorers: Iterable[str]
    ) -> Totals:
        """Zero totals; the event counts at each operating threshold for ``event_scorers``."""
        return cls(
            default=dict.fromkeys(scorers, ZERO),
            samples_ops=dict.fromkeys(op_thresholds, ZERO),
            events_ops={n: dict.fromkeys(op_thresholds, ZERO) for n in event_scorers},
        )

    def add(
        self, rec: RecordingCounts, ref_mask: np.ndarray, probs: np.ndarray, subject: str = ""
    ) -> None:
        """Pool one recording's counts (by addition, SzCORE's also per subject) and its
        samples into the AUROC."""
        self.auroc.update(ref_mask, probs)
        for name, c in (*rec.default.items(), ("szcore_samples", rec.samples_default)):
            if name in SZCORE_NAMES:
                per = self.subjects.setdefault(name, {})
                per[subject] = per.get(subject, ZERO) + c
        for name, c in rec.default.items():
            self.default[name] += c
        self.samples_default += rec.samples_default
        for t, c in rec.samples_ops.items():
            self.samples_ops[t] += c
        for name, per in self.events_ops.items():  # only where they are kept (per corpus)
            for t in per:
                per[t] += rec.events_ops[name][t]
        self.n_recordings += 1
        self.duration_s += rec.duration_s
        self.n_ref += rec.n_ref


@dataclass
class Scored:
    """What the scoring pass leaves: the pooled totals, the per-corpus ones (a mixture only)
    and one row per recording for scores.json."""

    pooled: Totals
    corpora: dict[str, Totals]
    recordings: list[dict[str, Any]]
    tallies: list[RecordingTally] = field(default_factory=list)
    exports: dict[str, dict[str, EventCounts]] = field(default_factory=dict)  # label -> scorer


class ScoringPass:
    """Scores recordings one trace at a time at the default threshold, at every operating
    threshold and at each export point of ``plan``; with ``corpus_of`` (a mixture) it also
    keeps the totals of each corpus, with the event counts at every operating threshold. Each
    recording's counts (every scorer at every operating threshold) stay as a tally."""

    def __init__(
        self,
        infos: list[RecordingInfo],
        pp_default: PostProcess,
        ops: OperatingPoints,
        plan: ExportPlan,
        hyp_dir: Path,
        corpus_of: dict[str, str] | None = None,
        szcore: SzcoreParams = DEFAULT,
    ) -> None:
        self.by_id = {i.id: i for i in infos}
        self.pp_default = pp_default
        self.ops = ops
        self.plan = plan
        self.pp_export = at_threshold(ops.postprocess, plan.deployed.threshold)
        self.hyp_dir = hyp_dir
        self.corpus_of = corpus_of or {}
        self.fns = {name: get_scorer(name, szcore) for name in DEFAULT_SCORERS}
        self.samples = get_scorer("szcore_samples", szcore)
        self.op_thresholds = sorted(
            {p.threshold for per in ops.points.values() for p in per.values()} - {None}
        )
        self.op_fns: dict[str, Scorer] = {name: get_scorer(name, szcore) for name in ops.points}
        self.scored = Scored(Totals.empty(self.fns, self.op_thresholds, []), {}, [])
        self.scored.exports = {p.label: dict.fromkeys(self.fns, ZERO) for p in plan.points}

    def run(self, traces: Iterable[RecordingTrace]) -> Scored:
        """Score every trace, in order; the totals and rows of all of them."""
        for tr in traces:
            self.add(tr)
        return self.scored

    def add(self, tr: RecordingTrace) -> None:
        """Score one recording, pool its counts, export its hypotheses and keep its row."""
        info = self.by_id[tr.recording_id]
        ref_mask = events_mask(info.ref_events, tr.fs_out, info.n_out)
        hyp_default = events_from_probs(tr.probs, tr.fs_out, self.pp_default)
        rec = self._counts(tr, info, hyp_default)
        self.scored.pooled.add(rec, ref_mask, tr.probs, info.subject)
        corpus = self.corpus_of.get(info.id)
        if corpus is not None:
            if corpus not in self.scored.corpora:
                self.scored.corpora[corpus] = Totals.empty(
                    self.fns, self.op_thresholds, self.op_fns
                )
            self.scored.corpora[corpus].add(rec, ref_mask, tr.probs, info.subject)
        self._export(tr, info)
        hyp_export = events_from_probs(tr.probs, tr.fs_out, self.pp_export)
        self.scored.recordings.append(self._row(info, corpus, tr, rec, hyp_export))
        self.scored.tallies.append(RecordingTally(info.id, info.subject, corpus, rec))

    def _export(self, tr: RecordingTrace, info: RecordingInfo) -> None:
        """Write the recording's hypotheses at each export point and pool every scorer's
        counts of exactly those events (what ``ictal score`` finds in that folder)."""
        for point in self.plan.points:
            pp = at_threshold(self.ops.postprocess, point.threshold)
            hyp = events_from_probs(tr.probs, tr.fs_out, pp)
            write_exports(self.hyp_dir / point.label, info.id, info.id, info.export_duration_s,
                          hyp)  # fmt: skip
            totals = self.scored.exports[point.label]
            for name, fn in self.fns.items():
                totals[name] += fn(info.ref_events, hyp, info.duration_s)

    def _counts(
        self,
        tr: RecordingTrace,
        info: RecordingInfo,
        hyp_default: list[Event],
    ) -> RecordingCounts:
        """The recording's counts at the default threshold and at every operating threshold."""
        ref, duration = info.ref_events, info.duration_s
        rec = RecordingCounts(
            duration_s=duration,
            n_ref=len(ref),
            default={n: fn(ref, hyp_default, duration) for n, fn in self.fns.items()},
            samples_default=self.samples(ref, hyp_default, duration),
            events_ops={n: {} for n in self.op_fns},
            latency_default=onset_latencies(ref, hyp_default),
        )
        for t in self.op_thresholds:
            hyp = events_from_probs(tr.probs, tr.fs_out, at_threshold(self.ops.postprocess, t))
            rec.samples_ops[t] = self.samples(ref, hyp, duration)
            rec.latency_ops[t] = onset_latencies(ref, hyp)
            for name in rec.events_ops:
                rec.events_ops[name][t] = self.op_fns[name](ref, hyp, duration)
        return rec

    def _row(
        self,
        info: RecordingInfo,
        corpus: str | None,
        tr: RecordingTrace,
        rec: RecordingCounts,
        hyp_export: list[Event],
    ) -> dict[str, Any]:
        """The recording's row of scores.json: its events and OVLP counts (default, export)."""
        ovlp_export = self.fns["ovlp"](info.ref_events, hyp_export, info.duration_s)
        return {
            "id": info.id,
            **({"corpus": corpus} if corpus is not None else {}),
            "duration_s": info.duration_s,
            "ref_events": info.ref_events,
            "hyp_events": hyp_export,
            "max_prob": float(tr.probs.max()),
            "ovlp_default": asdict(rec.default["ovlp"]),
            "ovlp_export": asdict(ovlp_export),
            "ovlp_f1_export": ovlp_export.f1_score(undefined=RECORDING_F1_UNDEFINED),
        }
