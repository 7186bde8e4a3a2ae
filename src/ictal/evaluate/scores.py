"""scores.json, the document an evaluation leaves: built from typed parts, one function per
block, in the order the file has always had (docs/evaluation.md describes each key)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ictal.evaluate.latency import latency_summary
from ictal.evaluate.per_patient import patient_counts, per_patient_doc
from ictal.evaluate.scoring import RecordingTally, Scored, Totals
from ictal.evaluate.uncertainty import interval_doc
from ictal.events.counts import EventCounts
from ictal.events.deployed import ExportPlan
from ictal.events.operating_points import OperatingCurve, OperatingPoints, scorer_order
from ictal.events.postprocess import PostProcess
from ictal.events.scorers import SZCORE_NAMES
from ictal.events.szcore import szcore_doc
from ictal.io.jsonable import jsonable

SCORES_FORMAT = 1
POOLING = (
    "All scores are pooled over files, not averaged per subject or per file. NEDC OVLP and "
    "TAES: hits, misses and false alarms are summed over all recordings and FA/24h is the "
    "summed false alarms over the summed recording time (seizure and background). SzCORE "
    "event and sample scores (timescoring) are pooled the same way (summed counts), which "
    "differs from SzCORE's default per-subject averaging. Sample-level AUROC pools all "
    "output steps of all recordings."
)
POOLING_SUBJECT = (
    "NEDC OVLP and TAES, and every score at an operating point, are pooled over files: counts "
    "and recording time summed. SzCORE event and sample scores at the default threshold are "
    "averaged per subject as SzCORE's evaluator does by default (scoring.szcore.pooling = "
    "subject): each subject's rates from its summed counts, then the mean (and std) over "
    "subjects, ignoring undefined ones. Sample-level AUROC pools all output steps of all "
    "recordings."
)
STITCHING = "overlap-add of sigmoid outputs, tent weights min(j+1, m-j) per step"
EDGE_HANDLING = {  # the inference block's words for edge_pad_samples > 0 and == 0
    True: "ends mirrored by edge_pad_samples",
    False: "tail zero-padded",
}

# scorer -> FA/24h target -> the counts at that operating point (None: no threshold met it)
PointCounts = dict[str, dict[float, EventCounts | None]]


def counts_doc(c: EventCounts | None, name: str = "") -> dict[str, Any] | None:
    """Counts with every rate derived from them, for scores.json (a SzCORE scorer's with
    SzCORE's F1, pooled over recordings as every operating point is)."""
    if c is None:
        return None
    return szcore_doc(c, {}, "recording") if name in SZCORE_NAMES else c.as_dict()


def counts_at_points(t: Totals, ops: OperatingPoints) -> PointCounts:
    """Event counts of ``t`` at each operating point's threshold (None where there is none)."""
    return {
        name: {
            target: None if p.threshold is None else t.events_ops[name][p.threshold]
            for target, p in per.items()
        }
        for name, per in ops.points.items()
    }


def counts_on_curve(curve: OperatingCurve, ops: OperatingPoints) -> PointCounts:
    """Counts at each operating point read off a sweep on the same threshold grid."""
    index = {th: k for k, th in enumerate(curve.thresholds)}
    return {
        name: {
            target: None if p.threshold is None else curve.counts[name][index[p.threshold]]
            for target, p in per.items()
        }
        for name, per in ops.points.items()
    }


@dataclass(frozen=True)
class Subject:
    """What was scored: a checkpoint (with its training metadata) on a split of a cache."""

    split: str
    checkpoint: Path
    checkpoint_sha256: str
    meta: dict[str, Any]
    cache_key: str
    cache_path: Path

    def doc(self) -> dict[str, Any]:
        """The head of scores.json: format, split, checkpoint, its run and both caches."""
        return {
            "format_version": SCORES_FORMAT,
            "split": self.split,
            "checkpoint": str(self.checkpoint),
            "checkpoint_sha256": self.checkpoint_sha256,
            "run_id": self.meta.get("run_id"),
            "epoch": self.meta.get("epoch"),
            "step": self.meta.get("step"),
            "model_name": self.meta.get("model_name"),
            "cache_key": self.cache_key,
            "checkpoint_cache_key": self.meta.get("cache_key"),
            "cache_path": str(self.cache_path),
            "pooling": POOLING,
        }


@dataclass(frozen=True)
class Windowing:
    """How the recordings were cut into windows and stitched back (in input samples)."""

    window: int
    hop: int
    stride: int
    fs_out: float
    pad: int = 0  # samples mirrored beyond each end (ictal.stitch.edge_pad), 0: none

    def doc(self) -> dict[str, Any]:
        """The ``inference`` block: windows, hop, stride, output rate and how they stitch."""
        return {
            "window_samples": self.window,
            "hop_samples": self.hop,
            "edge_pad_samples": self.pad,
            "output_stride": self.stride,
            "fs_out": self.fs_out,
            "stitching": f"{STITCHING}; {EDGE_HANDLING[self.pad > 0]}",
        }


@dataclass(frozen=True)
class PointsSource:
    """Where the operating points come from: chosen here (saved to ``file``) or applied from
    a frozen ``file`` chosen on another split."""

    mode: str  # "chosen" or "applied"
    chosen_on: str
    file: Path
    chosen_on_corpora: list[str] | None = None  # chosen over these, only some scored

    def doc(self) -> dict[str, Any]:
        """The head of the ``operating_points`` block."""
        doc: dict[str, Any] = {"mode": self.mode, "chosen_on": self.chosen_on}
        doc["file"] = str(self.file)
        if self.chosen_on_corpora is not None:
            doc["chosen_on_corpora"] = self.chosen_on_corpora
        return doc


def _points_rows(ops: OperatingPoints, counts: PointCounts) -> dict[str, list[dict[str, Any]]]:
    """Per scorer (canonical order), one row per target, loosest first."""
    return {
        name: [
            {
                "target_fa_per_24h": target,
                "threshold": p.threshold,
                "counts": counts_doc(counts[name][target], name),
            }
            for target, p in sorted(ops.points[name].items(), reverse=True)
        ]
        for name in scorer_order(list(ops.points))
    }


def _default_doc(name: str, c: EventCounts, t: Totals, pooling: str) -> dict[str, Any] | None:
    """A scorer's counts at the default threshold; SzCORE's pooled as configured."""
    if name not in SZCORE_NAMES or pooling == "recording":
        return counts_doc(c, name)
    return szcore_doc(c, t.subjects.get(name, {}), pooling)


def _add_intervals(row: dict[str, Any], name: str, tallies: list[RecordingTally]) -> None:
    """Add a point row's 95 % intervals (``ci95``, ``szcore_samples_ci95``) and the onset
    latencies of the seizures it detects (``latency_s``); None where it has no threshold."""
    th, c, smp = row["threshold"], row["counts"], row["szcore_samples"]
    if th is None or c is None:
        row.update(ci95=None, szcore_samples_ci95=None, latency_s=None)
        return
    events = patient_counts(tallies, lambda r: r.events_ops[name][th])
    samples = patient_counts(tallies, lambda r: r.samples_ops[th])
    row["ci95"] = interval_doc(_counts(c), events)
    row["szcore_samples_ci95"] = interval_doc(_counts(smp), samples, exact=False)
    row["latency_s"] = latency_summary(x for t in tallies for x in t.counts.latency_ops[th])


def _counts(doc: dict[str, Any]) -> EventCounts:
    """The counts of a counts document (its derived rates dropped)."""
    keys = ("hits", "misses", "false_alarms", "n_ref", "duration_s", "fa_seconds")
    return EventCounts(**{k: doc[k] for k in keys})


def _default_intervals(t: Totals, tallies: list[RecordingTally]) -> dict[str, Any]:
    """The default threshold's intervals per scorer and its onset latencies."""
    ci = {n: interval_doc(c, patient_counts(tallies, lambda r, n=n: r.default[n]))
          for n, c in t.default.items()}  # fmt: skip
    ci["szcore_samples"] = interval_doc(
        t.samples_default, patient_counts(tallies, lambda r: r.samples_default), exact=False
    )
    lat = latency_summary(x for tl in tallies for x in tl.counts.latency_default)
    return {"ci95": ci, "latency_s": lat}


def result_block(
    t: Totals,
    pp_default: PostProcess,
    ops: OperatingPoints,
    counts: PointCounts,
    tallies: list[RecordingTally],
    pooling: str = "recording",
) -> dict[str, Any]:
    """The scores of a set of recordings (all evaluated, or one corpus's): size, AUROC, the
    default threshold and every operating point with their 95 % intervals and onset
    latencies, and the per-patient rows; one shape for the pooled and per-corpus."""
    points = _points_rows(ops, counts)
    for name, per in points.items():
        for row in per:
            th = row["threshold"]
            samples = None if th is None else t.samples_ops[th]
            row["szcore_samples"] = counts_doc(samples, "szcore_samples")
            _add_intervals(row, name, tallies)
    return {
        "n_recordings": t.n_recordings,
        "total_duration_s": t.duration_s,
        "n_reference_events": t.n_ref,
        "auroc": t.auroc.value(),
        "default": {
            "postprocess": asdict(pp_default),
            "scores": {
                n: _default_doc(n, c, t, pooling)
                for n, c in (*t.default.items(), ("szcore_samples", t.samples_default))
            },
            **_default_intervals(t, tallies),
        },
        "operating_points": {"points": points},
        "per_patient": per_patient_doc(tallies, points),
    }


def sweep_doc(curve: OperatingCurve) -> dict[str, Any]:
    """The whole sweep: per scorer, sensitivity, FA/24h and precision at every threshold."""
    return {
        "postprocess": asdict(curve.postprocess),
        "thresholds": list(curve.thresholds),
        "scorers": {
            n: {
                "sensitivity": [c.sensitivity for c in cs],
                "fa_per_24h": [c.fa_per_24h for c in cs],
                "precision": [c.precision for c in cs],
            }
            for n, cs in curve.counts.items()
        },
    }


@dataclass(frozen=True)
class Scores:
    """Everything scores.json holds, typed; ``document`` lays it out as the file."""

    subject: Subject
    windowing: Windowing
    failed: list[tuple[str, str]]
    pp_default: PostProcess
    ops: OperatingPoints
    source: PointsSource
    counts: PointCounts  # the pooled counts at each operating point
    curve: OperatingCurve
    plan: ExportPlan
    scored: Scored
    corpus_selection: list[str] = field(default_factory=list)
    corpus_order: list[str] = field(default_factory=list)  # a mixture's, for tables
    szcore_pooling: str = "recording"  # scoring.szcore.pooling

    def document(self) -> dict[str, Any]:
        """The scores document, JSON-ready (nan as null, tuples as lists)."""
        scored = self.scored
        pooled = result_block(
            scored.pooled,
            self.pp_default,
            self.ops,
            self.counts,
            scored.tallies,
            self.szcore_pooling,
        )
        doc = {
            **self.subject.doc(),
            "pooling": POOLING_SUBJECT if self.szcore_pooling == "subject" else POOLING,
            "n_recordings": pooled["n_recordings"],
            "n_failed": len(self.failed),
            "failed": [{"id": i, "reason": r} for i, r in self.failed],
            "total_duration_s": pooled["total_duration_s"],
            "n_reference_events": pooled["n_reference_events"],
            "inference": self.windowing.doc(),
            "auroc": pooled["auroc"],
            "default": pooled["default"],
            "operating_points": {
                **self.source.doc(),
                "postprocess": asdict(self.ops.postprocess),
                "points": pooled["operating_points"]["points"],
            },
            "sweep": sweep_doc(self.curve),
            "exports": self._exports(),
            "recordings": self.scored.recordings,
            "per_patient": pooled["per_patient"],
        }
        if self.corpus_selection:
            doc["corpus_selection"] = list(self.corpus_selection)
        if self.scored.corpora:  # a mixture: the same block per corpus, from the same counts
            doc |= self._per_corpus()
        return jsonable(doc)

    def _exports(self) -> dict[str, Any]:
        """Where the hypotheses went: one folder per export point, with every scorer's counts
        of exactly those files; the threshold of the rows' events, and why."""
        plan = self.plan
        return {
            "dir": "hyp",
            "threshold": plan.deployed.threshold,
            "basis": plan.basis,
            "operating_point": plan.deployed.doc(),
            "points": [
                {
                    "dir": f"hyp/{p.label}",
                    "operating_point": p.doc(),
                    "scores": {
                        n: counts_doc(c, n) for n, c in self.scored.exports[p.label].items()
                    },
                }
                for p in plan.points
            ],
            "skipped": plan.skipped,
        }

    def _per_corpus(self) -> dict[str, Any]:
        """Each corpus's block (keys sorted) and the corpora in the config's order."""
        corpora = self.scored.corpora
        return {
            "per_corpus": {
                name: result_block(
                    t,
                    self.pp_default,
                    self.ops,
                    counts_at_points(t, self.ops),
                    [tl for tl in self.scored.tallies if tl.corpus == name],
                    self.szcore_pooling,
                )
                for name, t in sorted(corpora.items())
            },
            "corpora": [n for n in self.corpus_order if n in corpora],
        }
