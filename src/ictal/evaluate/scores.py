"""scores.json, the document an evaluation leaves: built from typed parts, one function per
block, in the order the file has always had (docs/evaluation.md describes each key)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ictal.evaluate.scoring import Scored, Totals
from ictal.events.counts import EventCounts
from ictal.events.operating_points import OperatingCurve, OperatingPoints, scorer_order
from ictal.events.postprocess import PostProcess
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
STITCHING = "overlap-add of sigmoid outputs, tent weights min(j+1, m-j) per step"
EDGE_HANDLING = {  # the inference block's words for edge_pad_samples > 0 and == 0
    True: "ends mirrored by edge_pad_samples",
    False: "tail zero-padded",
}

# scorer -> FA/24h target -> the counts at that operating point (None: no threshold met it)
PointCounts = dict[str, dict[float, EventCounts | None]]


def counts_doc(c: EventCounts | None) -> dict[str, Any] | None:
    """Counts with every rate derived from them, for scores.json."""
    return None if c is None else c.as_dict()


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
                "counts": counts_doc(counts[name][target]),
            }
            for target, p in sorted(ops.points[name].items(), reverse=True)
        ]
        for name in scorer_order(list(ops.points))
    }


def result_block(
    t: Totals, pp_default: PostProcess, ops: OperatingPoints, counts: PointCounts
) -> dict[str, Any]:
    """The scores of a set of recordings (all evaluated, or one corpus's): size, AUROC, the
    default threshold and every operating point; one shape for the pooled and per-corpus."""
    points = _points_rows(ops, counts)
    for per in points.values():
        for row in per:
            th = row["threshold"]
            row["szcore_samples"] = None if th is None else counts_doc(t.samples_ops[th])
    return {
        "n_recordings": t.n_recordings,
        "total_duration_s": t.duration_s,
        "n_reference_events": t.n_ref,
        "auroc": t.auroc.value(),
        "default": {
            "postprocess": asdict(pp_default),
            "scores": {n: counts_doc(c) for n, c in t.default.items()}
            | {"szcore_samples": counts_doc(t.samples_default)},
        },
        "operating_points": {"points": points},
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
    export_threshold: float
    export_basis: str
    scored: Scored
    corpus_selection: list[str] = field(default_factory=list)
    corpus_order: list[str] = field(default_factory=list)  # a mixture's, for tables

    def document(self) -> dict[str, Any]:
        """The scores document, JSON-ready (nan as null, tuples as lists)."""
        pooled = result_block(self.scored.pooled, self.pp_default, self.ops, self.counts)
        doc = {
            **self.subject.doc(),
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
        }
        if self.corpus_selection:
            doc["corpus_selection"] = list(self.corpus_selection)
        if self.scored.corpora:  # a mixture: the same block per corpus, from the same counts
            doc |= self._per_corpus()
        return jsonable(doc)

    def _exports(self) -> dict[str, Any]:
        """Where the hypotheses went and the threshold they were written at, and why."""
        return {"dir": "hyp", "threshold": self.export_threshold, "basis": self.export_basis}

    def _per_corpus(self) -> dict[str, Any]:
        """Each corpus's block (keys sorted) and the corpora in the config's order."""
        corpora = self.scored.corpora
        return {
            "per_corpus": {
                name: result_block(t, self.pp_default, self.ops, counts_at_points(t, self.ops))
                for name, t in sorted(corpora.items())
            },
            "corpora": [n for n in self.corpus_order if n in corpora],
        }
