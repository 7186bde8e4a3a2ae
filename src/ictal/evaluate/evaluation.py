"""``ictal evaluate``: preflight, per-recording inference (resumable), sweep, operating points,
scores, exports and a summary, with a heartbeat throughout.

Memory is bounded by one recording: probabilities go to ``<out>/probs/<id>.npy`` as soon as
they exist and every scoring pass streams them back one file at a time; only small
per-recording facts (reference events, a few counts) stay in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ictal.auroc import HistogramAuroc
from ictal.cache.manifest import CacheView
from ictal.cache.preflight import preflight
from ictal.config import Config
from ictal.device import pick_device
from ictal.errors import PreflightError, UsageError
from ictal.evaluate.corpora import cache_corpora, corpus_by_id, select_corpora
from ictal.evaluate.probs import (
    RecordingInfo,
    check_identity,
    infer_split,
    recording_infos,
    stream_traces,
)
from ictal.events.counts import ZERO, EventCounts
from ictal.events.hypotheses import write_exports
from ictal.events.operating_points import (
    DEFAULT_SCORERS,
    OperatingCurve,
    OperatingPoints,
    RecordingTrace,
    apply_operating_points,
    at_threshold,
    choose_operating_points,
    export_threshold,
    load_operating_points,
    save_operating_points,
    sweep,
)
from ictal.events.postprocess import Event, PostProcess, events_from_probs, postprocess_of
from ictal.events.scorers import get_scorer, score_ovlp
from ictal.events.szcore import score_szcore_samples
from ictal.io.atomic import atomic_write_json
from ictal.io.digest import file_sha256
from ictal.io.paths import writable_dir
from ictal.models.checkpoint import load_model
from ictal.runs.directory import EvalDir, eval_dir_for
from ictal.runs.heartbeat import LiveStatus
from ictal.runs.sink import check_sink
from ictal.runs.trackers import log_evaluation
from ictal.runs.watch import RunWatch
from ictal.stitch import default_hop
from ictal.ui import log

SCORES_FORMAT = 1
POOLING = (
    "All scores are pooled over files, not averaged per subject or per file. NEDC OVLP and "
    "TAES: hits, misses and false alarms are summed over all recordings and FA/24h is the "
    "summed false alarms over the summed recording time (seizure and background). SzCORE "
    "event and sample scores (timescoring) are pooled the same way (summed counts), which "
    "differs from SzCORE's default per-subject averaging. Sample-level AUROC pools all "
    "output steps of all recordings."
)


@dataclass
class EvaluationResult:
    """Outcome of one evaluation: where it wrote, what it did, and the scores document."""

    out: Path
    split: str
    scores: dict[str, Any]
    scores_path: Path
    operating_points_path: Path
    inferred: int
    resumed: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    pushed_to: str | None = None
    push_error: str = ""


def _device(cfg: Config) -> str:
    return str(pick_device(cfg.train.device))


def _jsonable(obj: Any) -> Any:
    """nan/inf -> None, tuples -> lists, numpy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def counts_doc(c: EventCounts | None) -> dict[str, Any] | None:
    """Counts with every rate derived from them, for scores.json."""
    return None if c is None else c.as_dict()


def _mask(events: list[Event], fs: float, n: int) -> np.ndarray:
    """Boolean mask of ``n`` samples at ``fs`` for events in seconds (``round(t * fs)``)."""
    mask = np.zeros(n, dtype=bool)
    for start, stop in events:
        mask[max(0, round(start * fs)) : max(0, round(stop * fs))] = True
    return mask


def _scorer_order(names: Iterator[str] | list[str]) -> list[str]:
    """Scorers in the canonical order (ovlp, taes, szcore), unknown ones after, by name."""
    known = list(DEFAULT_SCORERS)
    return sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))


def _points_rows(
    ops: OperatingPoints, counts: dict[str, dict[float, EventCounts | None]]
) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [
            {
                "target_fa_per_24h": target,
                "threshold": p.threshold,
                "counts": counts_doc(counts[name][target]),
            }
            for target, p in sorted(ops.points[name].items(), reverse=True)
        ]
        for name in _scorer_order(list(ops.points))
    }


@dataclass
class _Totals:
    """What the detail pass pools over a set of recordings: all of them, or one corpus's."""

    default: dict[str, EventCounts]
    samples_ops: dict[float, EventCounts]
    events_ops: dict[str, dict[float, EventCounts]]
    samples_default: EventCounts = ZERO
    auroc: HistogramAuroc = field(default_factory=HistogramAuroc)
    n_recordings: int = 0
    duration_s: float = 0.0
    n_ref: int = 0

    @classmethod
    def empty(
        cls, scorers: list[str], op_thresholds: list[float], event_scorers: list[str]
    ) -> _Totals:
        """Zero totals; the event counts at each operating threshold for ``event_scorers``."""
        return cls(
            default=dict.fromkeys(scorers, ZERO),
            samples_ops=dict.fromkeys(op_thresholds, ZERO),
            events_ops={n: dict.fromkeys(op_thresholds, ZERO) for n in event_scorers},
        )

    def add(self, rec: _RecordingCounts, ref_mask: np.ndarray, probs: np.ndarray) -> None:
        """Pool one recording's counts (by addition) and its samples into the AUROC."""
        self.auroc.update(ref_mask, probs)
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
class _RecordingCounts:
    """One recording's counts, computed once and added to every total it belongs to."""

    duration_s: float
    n_ref: int
    default: dict[str, EventCounts]
    samples_default: EventCounts
    samples_ops: dict[float, EventCounts]
    events_ops: dict[str, dict[float, EventCounts]]


def _detail_pass(
    traces: Iterator[RecordingTrace],
    infos: list[RecordingInfo],
    pp_default: PostProcess,
    ops: OperatingPoints,
    export_threshold: float,
    hyp_dir: Path,
    corpus_of: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Default-threshold scores, AUROC, sample scores per threshold, exports, per-recording rows;
    with ``corpus_of`` (a mixture) the same totals per corpus, from the same per-recording
    counts, with the event counts at every operating threshold."""
    by_id = {i.id: i for i in infos}
    fns = {name: get_scorer(name) for name in DEFAULT_SCORERS}
    op_thresholds = sorted(
        {p.threshold for per in ops.points.values() for p in per.values()} - {None}
    )
    grouped = bool(corpus_of)
    op_fns = {name: get_scorer(name) for name in ops.points} if grouped else {}
    pooled = _Totals.empty(list(fns), op_thresholds, [])
    groups: dict[str, _Totals] = {}
    pp_export = at_threshold(ops.postprocess, export_threshold)
    per_recording = []
    for tr in traces:
        info = by_id[tr.recording_id]
        ref_mask = _mask(info.ref_events, tr.fs_out, info.n_out)
        hyp_default = events_from_probs(tr.probs, tr.fs_out, pp_default)
        rec = _RecordingCounts(
            duration_s=info.duration_s,
            n_ref=len(info.ref_events),
            default={n: fn(info.ref_events, hyp_default, info.duration_s) for n, fn in fns.items()},
            samples_default=score_szcore_samples(
                ref_mask, _mask(hyp_default, tr.fs_out, info.n_out), tr.fs_out
            ),
            samples_ops={},
            events_ops={n: {} for n in op_fns},
        )
        for t in op_thresholds:
            hyp = events_from_probs(tr.probs, tr.fs_out, at_threshold(ops.postprocess, t))
            hyp_mask = _mask(hyp, tr.fs_out, info.n_out)
            rec.samples_ops[t] = score_szcore_samples(ref_mask, hyp_mask, tr.fs_out)
            for name in rec.events_ops:
                rec.events_ops[name][t] = op_fns[name](info.ref_events, hyp, info.duration_s)
        pooled.add(rec, ref_mask, tr.probs)
        row_corpus = (corpus_of or {}).get(info.id)
        if row_corpus is not None:
            if row_corpus not in groups:
                groups[row_corpus] = _Totals.empty(list(fns), op_thresholds, list(op_fns))
            groups[row_corpus].add(rec, ref_mask, tr.probs)
        hyp_export = events_from_probs(tr.probs, tr.fs_out, pp_export)
        write_exports(hyp_dir, info.id, info.id, info.export_duration_s, hyp_export)
        ovlp_default = score_ovlp(info.ref_events, hyp_default, info.duration_s)
        ovlp_export = score_ovlp(info.ref_events, hyp_export, info.duration_s)
        per_recording.append(
            {
                "id": info.id,
                **({"corpus": row_corpus} if row_corpus is not None else {}),
                "duration_s": info.duration_s,
                "ref_events": info.ref_events,
                "hyp_events": hyp_export,
                "max_prob": float(tr.probs.max()),
                "ovlp_default": asdict(ovlp_default),
                "ovlp_export": asdict(ovlp_export),
                "ovlp_f1_export": _f1(ovlp_export),
            }
        )
    return {"pooled": pooled, "corpora": groups, "recordings": per_recording}


def _result_block(
    t: _Totals,
    pp_default: PostProcess,
    ops: OperatingPoints,
    counts: dict[str, dict[float, EventCounts | None]],
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


def _counts_at_points(
    t: _Totals, ops: OperatingPoints
) -> dict[str, dict[float, EventCounts | None]]:
    """Event counts of ``t`` at each operating point's threshold (None where there is none)."""
    return {
        name: {
            target: None if p.threshold is None else t.events_ops[name][p.threshold]
            for target, p in per.items()
        }
        for name, per in ops.points.items()
    }


def _counts_on_curve(
    curve: OperatingCurve, ops: OperatingPoints
) -> dict[str, dict[float, EventCounts | None]]:
    """Counts at each operating point read off a sweep on the same threshold grid."""
    index = {th: k for k, th in enumerate(curve.thresholds)}
    return {
        name: {
            target: None if p.threshold is None else curve.counts[name][index[p.threshold]]
            for target, p in per.items()
        }
        for name, per in ops.points.items()
    }


def _f1(c: EventCounts) -> float:
    """Per-recording OVLP F1; 1.0 when there is nothing to find and nothing was found."""
    denom = 2 * c.hits + c.misses + c.false_alarms
    return 1.0 if denom == 0 else 2 * c.hits / denom


def evaluate(
    cfg: Config,
    checkpoint: Path,
    *,
    split: str,
    out: Path | None = None,
    operating_points: Path | None = None,
    fix_hint: str = "ictal build",
    allow_version_mismatch: bool = False,
    corpora: list[str] | None = None,
) -> EvaluationResult:
    """Score ``checkpoint`` on ``split``; choose operating points there or apply frozen ones.
    ``corpora``: score only these corpora of a mixture cache (points chosen over all)."""
    pf = preflight(cfg, split=split, fix=fix_hint)
    view = pf.view
    if corpora:
        select_corpora(view, view.split(split), corpora, split)  # refuse before any work
    checkpoint = Path(checkpoint)
    device = _device(cfg)
    model, meta = load_model(checkpoint, device, allow_version_mismatch=allow_version_mismatch)
    if int(meta["n_channels"]) != len(view.channels) or float(meta["fs"]) != view.fs:
        raise PreflightError(
            f"checkpoint {checkpoint} expects {meta['n_channels']} channels at {meta['fs']} Hz; "
            f"the cache {view.path} has {len(view.channels)} at {view.fs} Hz",
            "evaluate with the config the model was trained with (the run's frozen config)",
        )
    if meta.get("cache_key") and meta["cache_key"] != view.key:
        log.warning(
            f"checkpoint was trained on cache {str(meta['cache_key'])[:16]}, evaluating on "
            f"{view.key[:16]} (same channels and rate; preprocessing or corpus may differ)"
        )
    out = Path(out) if out is not None else default_out(checkpoint, split, cfg, corpora)
    if cfg.sink.url:
        check_sink(cfg.sink.url, sink_name(meta, out))
    return evaluate_view(
        cfg, view, model, meta, checkpoint=checkpoint, split=split, out=out,
        operating_points=operating_points, device=device, corpora=corpora,
    )  # fmt: skip


def default_out(
    checkpoint: Path, split: str, cfg: Config, corpora: list[str] | None = None
) -> Path:
    """``<run>/eval-X-<split>``, with ``-<corpus>[+<corpus>...]`` when only some corpora are
    scored (their scores never replace the full evaluation's)."""
    path = eval_dir_for(checkpoint, split, cfg.runs.root).path
    return path.with_name(f"{path.name}-{'+'.join(corpora)}") if corpora else path


def sink_name(meta: dict[str, Any], out: Path) -> str:
    """Where an evaluation goes in the sink: inside its run (``<run id>/<out name>``)."""
    run_id = str(meta.get("run_id") or "")
    return f"{run_id}/{out.name}" if run_id else out.name


def _read_frozen(path: Path) -> OperatingPoints:
    """Frozen operating points, or a usage error naming the file."""
    try:
        return load_operating_points(path)
    except FileNotFoundError:
        raise UsageError(f"operating points file {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"operating points file {path} is not usable: {exc}") from exc


def evaluate_view(
    cfg: Config,
    view: CacheView,
    model: nn.Module,
    meta: dict[str, Any],
    *,
    checkpoint: Path,
    split: str,
    out: Path,
    operating_points: Path | None = None,
    device: str = "cpu",
    corpora: list[str] | None = None,
) -> EvaluationResult:
    """Evaluate a loaded model on an opened cache (``evaluate`` without preflight and loading);
    heartbeat in ``<out>/heartbeat.json``, marked done or failed at the end."""
    ops_frozen = _read_frozen(operating_points) if operating_points else None
    where = EvalDir(writable_dir(out, "--out"))
    live = LiveStatus(
        str(meta.get("run_id") or ""), cfg.train.heartbeat_s, command="evaluate", phase="evaluate"
    )
    live.update(detail={"split": split, "checkpoint": str(checkpoint)})
    live.stage("start")
    watch = RunWatch(where.path, where.heartbeat, live, cfg.sink, sink_name(meta, where.path))
    watch.start()
    final, error = "failed", None
    try:
        result = _evaluate(cfg, view, model, meta, Path(checkpoint), split, where, ops_frozen,
                           operating_points, device, live, corpora or [])  # fmt: skip
        live.stage("done")
        final = "done"
    except KeyboardInterrupt:  # SIGINT or SIGTERM: the probabilities written so far are kept
        final, error = "stopped", "interrupted; the same command resumes"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        pushed = watch.finish(final, error)
    result.pushed_to = pushed.url if pushed.complete else None
    result.push_error = pushed.error
    log_evaluation(Path(checkpoint), split, result.scores)  # the run's trackers, if any
    return result


def _evaluate(
    cfg: Config,
    view: CacheView,
    model: nn.Module,
    meta: dict[str, Any],
    checkpoint: Path,
    split: str,
    out: EvalDir,
    ops_frozen: OperatingPoints | None,
    ops_file: Path | None,
    device: str,
    live: LiveStatus,
    corpora: list[str],
) -> EvaluationResult:
    ecfg = cfg.evaluate
    stride = int(meta["output_stride"])
    window = int(meta["window"])
    hop = default_hop(window, stride)
    fs_out = view.fs / stride
    rows_all = view.split(split)
    rows = select_corpora(view, rows_all, corpora, split) if corpora else rows_all
    # points chosen here are chosen over every corpus of the split, so all are inferred
    infer_rows = rows_all if ops_frozen is None else rows
    identity = {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "cache_key": view.key,
        "split": split,
        "window": window,
        "hop": hop,
        "output_stride": stride,
    }
    check_identity(out, identity)
    inferred, resumed, failed = infer_split(
        view, infer_rows, model, window=window, stride=stride, hop=hop, out=out,
        batch_size=ecfg.batch_size, device=device, live=live,
    )  # fmt: skip
    failed_ids = {rid for rid, _ in failed}
    all_infos = [i for i in recording_infos(view, infer_rows, stride) if i.id not in failed_ids]
    selected = {r["id"] for r in rows}
    infos = [i for i in all_infos if i.id in selected]
    if not infos:
        raise UsageError(f"no recording of the {split} split could be evaluated")

    pp_default = postprocess_of(ecfg)
    pp_sweep = ops_frozen.postprocess if ops_frozen else pp_default
    curve = sweep(stream_traces(all_infos, out, fs_out, live, "sweep"), pp_sweep)
    ops_path = out.operating_points
    if ops_frozen is None:
        if split != "dev":
            log.warning(
                f"choosing operating points on {split}: optimistic; choose them on dev and "
                "pass --operating-points <dev eval dir>/operating_points.json"
            )
        ops = choose_operating_points(curve, ecfg.targets_fa_per_24h, split=split)
        ops = OperatingPoints(ops.postprocess, ops.points, ops.split,
                              {**ops.meta, "checkpoint": str(checkpoint)})  # fmt: skip
        save_operating_points(ops_path, ops)
        counts = {n: {t: p.counts for t, p in per.items()} for n, per in ops.points.items()}
        source: dict[str, Any] = {"mode": "chosen", "chosen_on": split, "file": str(ops_path)}
        if len(infos) < len(all_infos):  # only some corpora scored: their own curve and counts
            ids = corpus_by_id(rows_all)
            source["chosen_on_corpora"] = sorted({ids[i.id] for i in all_infos})
            curve = sweep(stream_traces(infos, out, fs_out, live, "sweep"), pp_sweep)
            counts = _counts_on_curve(curve, ops)
    else:
        ops = ops_frozen
        assert ops_file is not None
        if ops.postprocess != pp_default:
            log.warning("the operating points carry their own post-processing; it is applied")
        applied = apply_operating_points(stream_traces(infos, out, fs_out, live, "apply"), ops)
        counts = {n: {t: a.counts for t, a in per.items()} for n, per in applied.items()}
        source = {"mode": "applied", "chosen_on": ops.split, "file": str(Path(ops_file))}
        ops_path = Path(ops_file)

    export_t, export_basis = export_threshold(ops, ecfg.threshold)
    detail = _detail_pass(
        stream_traces(infos, out, fs_out, live, "scoring"), infos, pp_default, ops, export_t,
        out.hypotheses, corpus_by_id(rows),
    )  # fmt: skip
    pooled = _result_block(detail["pooled"], pp_default, ops, counts)
    scores = {
        "format_version": SCORES_FORMAT,
        "split": split,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": identity["checkpoint_sha256"],
        "run_id": meta.get("run_id"),
        "epoch": meta.get("epoch"),
        "step": meta.get("step"),
        "model_name": meta.get("model_name"),
        "cache_key": view.key,
        "checkpoint_cache_key": meta.get("cache_key"),
        "cache_path": str(view.path),
        "pooling": POOLING,
        "n_recordings": pooled["n_recordings"],
        "n_failed": len(failed),
        "failed": [{"id": i, "reason": r} for i, r in failed],
        "total_duration_s": pooled["total_duration_s"],
        "n_reference_events": pooled["n_reference_events"],
        "inference": {
            "window_samples": window,
            "hop_samples": hop,
            "output_stride": stride,
            "fs_out": fs_out,
            "stitching": "overlap-add of sigmoid outputs, tent weights min(j+1, m-j) per step; "
            "tail zero-padded",
        },
        "auroc": pooled["auroc"],
        "default": pooled["default"],
        "operating_points": {
            **source,
            "postprocess": asdict(ops.postprocess),
            "points": pooled["operating_points"]["points"],
        },
        "sweep": {
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
        },
        "exports": {"dir": "hyp", "threshold": export_t, "basis": export_basis},
        "recordings": detail["recordings"],
    }
    if corpora:
        scores["corpus_selection"] = list(corpora)
    if detail["corpora"]:  # a mixture: the same block per corpus, from the same counts
        scores["per_corpus"] = {
            name: _result_block(t, pp_default, ops, _counts_at_points(t, ops))
            for name, t in sorted(detail["corpora"].items())
        }
        order = cache_corpora(view)  # the config's order, for tables (keys are sorted)
        scores["corpora"] = [n for n in order if n in detail["corpora"]]
    scores_path = atomic_write_json(out.scores, _jsonable(scores))
    return EvaluationResult(
        out=out.path,
        split=split,
        scores=_jsonable(scores),
        scores_path=scores_path,
        operating_points_path=ops_path,
        inferred=inferred,
        resumed=resumed,
        failed=failed,
    )
