"""``ictal evaluate``: preflight, per-recording inference (resumable), sweep, operating points,
scores, exports and a summary, with a heartbeat throughout.

Memory is bounded by one recording: probabilities go to ``<out>/probs/<id>.npy`` as soon as
they exist and every scoring pass streams them back one file at a time; only small
per-recording facts (reference events, a few counts) stay in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ictal.cache.manifest import CacheView
from ictal.cache.preflight import preflight
from ictal.config import Config
from ictal.device import pick_device
from ictal.errors import Ending, PreflightError, UsageError
from ictal.evaluate.corpora import cache_corpora, corpus_by_id, select_corpora
from ictal.evaluate.probs import (
    RecordingInfo,
    check_identity,
    infer_split,
    recording_infos,
    stream_traces,
)
from ictal.evaluate.scores import (
    PointCounts,
    PointsSource,
    Scores,
    Subject,
    Windowing,
    counts_on_curve,
)
from ictal.evaluate.scoring import ScoringPass
from ictal.events.deployed import check_plan, export_plan
from ictal.events.operating_points import (
    DEFAULT_SCORERS,
    OperatingCurve,
    OperatingPoints,
    RecordingTrace,
    apply_operating_points,
    choose_operating_points,
    read_operating_points,
    save_operating_points,
    sweep,
)
from ictal.events.postprocess import postprocess_of
from ictal.events.szcore import SzcoreParams
from ictal.io.atomic import atomic_write_json
from ictal.io.digest import file_sha256
from ictal.io.paths import writable_dir
from ictal.models.checkpoint import load_model
from ictal.models.metadata import trained_edges
from ictal.models.trust import ModelTrust
from ictal.runs.directory import EvalDir, eval_dir_for
from ictal.runs.heartbeat import LiveStatus
from ictal.runs.pusher import PushOutcome
from ictal.runs.session import RunSession
from ictal.runs.trackers import log_evaluation
from ictal.stitch import default_hop, pad_for
from ictal.ui import log


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
    push: PushOutcome | None = None  # the final push, with a sink

    @property
    def ending(self) -> Ending:
        """Partial when a recording failed or the scores could not be pushed."""
        pushed = self.push is None or not self.push.error
        return Ending.DONE if pushed and not self.failed else Ending.PARTIAL


def _device(cfg: Config) -> str:
    return str(pick_device(cfg.train.device))


def evaluate(
    cfg: Config,
    checkpoint: Path,
    *,
    split: str,
    out: Path | None = None,
    operating_points: Path | None = None,
    fix_hint: str = "ictal build",
    trust: ModelTrust | None = None,
    corpora: list[str] | None = None,
) -> EvaluationResult:
    """Score ``checkpoint`` on ``split``; choose operating points there or apply frozen ones.
    ``trust``: the model code the user accepts (default: registered models and entry points).
    ``corpora``: score only these corpora of a mixture cache (points chosen over all)."""
    pf = preflight(cfg, split=split, fix=fix_hint)
    view = pf.view
    if corpora:
        select_corpora(view, view.split(split), corpora, split)  # refuse before any work
    checkpoint = Path(checkpoint)
    device = _device(cfg)
    model, meta = load_model(checkpoint, device, trust=trust)
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
    ops_frozen = read_operating_points(operating_points) if operating_points else None
    scorers = ops_frozen.points if ops_frozen else DEFAULT_SCORERS
    budgets = (
        {b for per in ops_frozen.points.values() for b in per}
        if ops_frozen
        else cfg.evaluate.targets_fa_per_24h
    )
    check_plan(cfg.detect.operating_point, cfg.evaluate.export_points, scorers, budgets)
    where = EvalDir(writable_dir(out, "--out"))
    live = {"command": "evaluate", "phase": "evaluate"}
    session = RunSession.evaluation(cfg, where.path, where.heartbeat,
                                    str(meta.get("run_id") or ""), live)  # fmt: skip
    session.live.update(detail={"split": split, "checkpoint": str(checkpoint)})
    session.live.stage("start")
    with session:  # SIGINT or SIGTERM: the probabilities written so far are kept
        evaluation = Evaluation(cfg, view, model, meta, Path(checkpoint), split, where,
                                ops_frozen, operating_points, device, session.live,
                                corpora or [])  # fmt: skip
        result = evaluation.run()
        session.live.stage("done")
    result.push = session.push
    log_evaluation(Path(checkpoint), split, result.scores)  # the run's trackers, if any
    return result


@dataclass
class Evaluation:
    """One evaluation of a loaded model on a split of an opened cache, step by step: inference
    (resumable), operating points chosen here or applied from a frozen file, the scoring pass
    and scores.json. ``corpora`` scores only those corpora of a mixture."""

    cfg: Config
    view: CacheView
    model: nn.Module
    meta: dict[str, Any]
    checkpoint: Path
    split: str
    out: EvalDir
    frozen: OperatingPoints | None
    frozen_file: Path | None
    device: str
    live: LiveStatus
    corpora: list[str]

    def __post_init__(self) -> None:
        """The windowing of the checkpoint, the split's rows (and the scored ones), the
        configured post-processing."""
        stride, window = int(self.meta["output_stride"]), int(self.meta["window"])
        fs_out = self.view.fs / stride
        pad = pad_for(trained_edges(self.meta), window, stride)
        self.windowing = Windowing(window, default_hop(window, stride), stride, fs_out, pad)
        self.rows_all = self.view.split(self.split)
        self.rows = (
            select_corpora(self.view, self.rows_all, self.corpora, self.split)
            if self.corpora
            else self.rows_all
        )
        self.pp_default = postprocess_of(self.cfg.evaluate)
        self.szcore = SzcoreParams.of(self.cfg.scoring.szcore)

    def run(self) -> EvaluationResult:
        """Infer what is missing, then choose or apply the operating points, score, write."""
        sha256 = file_sha256(self.checkpoint)
        inferred, resumed, failed = self._infer(sha256)
        all_infos, infos = self._infos(failed)
        pp_sweep = self.frozen.postprocess if self.frozen else self.pp_default
        curve = sweep(self._traces(all_infos, "sweep"), pp_sweep, szcore=self.szcore)
        if self.frozen is None:
            ops, counts, source, curve = self._choose(curve, all_infos, infos)
        else:
            ops = self.frozen
            counts, source = self._apply(ops, infos)
        ev = self.cfg.evaluate
        plan = export_plan(ops, self.cfg.detect.operating_point, ev.export_points, ev.threshold)
        for line in plan.skipped:
            log.warning(f"not exported: {line}")
        scored = ScoringPass(
            infos, self.pp_default, ops, plan, self.out.hypotheses, corpus_by_id(self.rows),
            szcore=self.szcore,
        ).run(self._traces(infos, "scoring"))  # fmt: skip
        scores = Scores(
            subject=Subject(self.split, self.checkpoint, sha256, self.meta, self.view.key,
                            self.view.path),
            windowing=self.windowing, failed=failed, pp_default=self.pp_default, ops=ops,
            source=source, counts=counts, curve=curve, plan=plan, scored=scored,
            corpus_selection=self.corpora, corpus_order=cache_corpora(self.view),
            szcore_pooling=self.cfg.scoring.szcore.pooling,
        ).document()  # fmt: skip
        return EvaluationResult(
            out=self.out.path,
            split=self.split,
            scores=scores,
            scores_path=atomic_write_json(self.out.scores, scores),
            operating_points_path=source.file,
            inferred=inferred,
            resumed=resumed,
            failed=failed,
        )

    def _infer(self, sha256: str) -> tuple[int, int, list[tuple[str, str]]]:
        """Probabilities for every recording to infer that has none yet (after refusing a
        directory holding another checkpoint's); returns (inferred, resumed, failed)."""
        w = self.windowing
        identity = {
            "checkpoint": str(self.checkpoint),
            "checkpoint_sha256": sha256,
            "cache_key": self.view.key,
            "split": self.split,
            "window": w.window,
            "hop": w.hop,
            "edge_pad": w.pad,
            "output_stride": w.stride,
        }
        check_identity(self.out, identity)
        return infer_split(
            self.view, self._infer_rows(), self.model, window=w.window, stride=w.stride,
            hop=w.hop, pad=w.pad, out=self.out, batch_size=self.cfg.evaluate.batch_size,
            device=self.device, live=self.live,
        )  # fmt: skip

    def _infer_rows(self) -> list[dict[str, Any]]:
        """Points chosen here are chosen over every corpus of the split: all are inferred."""
        return self.rows_all if self.frozen is None else self.rows

    def _infos(
        self, failed: list[tuple[str, str]]
    ) -> tuple[list[RecordingInfo], list[RecordingInfo]]:
        """The inferred recordings that did not fail, then those of them that are scored."""
        failed_ids = {rid for rid, _ in failed}
        stride = self.windowing.stride
        all_infos = [
            i for i in recording_infos(self.view, self._infer_rows(), stride)
            if i.id not in failed_ids
        ]  # fmt: skip
        selected = {r["id"] for r in self.rows}
        infos = [i for i in all_infos if i.id in selected]
        if not infos:
            raise UsageError(f"no recording of the {self.split} split could be evaluated")
        return all_infos, infos

    def _traces(self, infos: list[RecordingInfo], stage: str) -> Iterator[RecordingTrace]:
        """The recordings' traces streamed back from disk for one pass (``stage``)."""
        return stream_traces(infos, self.out, self.windowing.fs_out, self.live, stage)

    def _choose(
        self, curve: OperatingCurve, all_infos: list[RecordingInfo], infos: list[RecordingInfo]
    ) -> tuple[OperatingPoints, PointCounts, PointsSource, OperatingCurve]:
        """Choose the operating points on this split's sweep and save them; with only some
        corpora scored, their counts (and the reported sweep) are those corpora's own."""
        if self.split != "dev":
            log.warning(
                f"choosing operating points on {self.split}: optimistic; choose them on dev and "
                "pass --operating-points <dev eval dir>/operating_points.json"
            )
        ops = choose_operating_points(curve, self.cfg.evaluate.targets_fa_per_24h,
                                      split=self.split)  # fmt: skip
        ops = OperatingPoints(ops.postprocess, ops.points, ops.split,
                              {**ops.meta, "checkpoint": str(self.checkpoint)})  # fmt: skip
        save_operating_points(self.out.operating_points, ops)
        counts = {n: {t: p.counts for t, p in per.items()} for n, per in ops.points.items()}
        chosen_on: list[str] | None = None
        if len(infos) < len(all_infos):  # only some corpora scored: their own curve and counts
            ids = corpus_by_id(self.rows_all)
            chosen_on = sorted({ids[i.id] for i in all_infos})
            curve = sweep(self._traces(infos, "sweep"), self.pp_default, szcore=self.szcore)
            counts = counts_on_curve(curve, ops)
        source = PointsSource("chosen", self.split, self.out.operating_points, chosen_on)
        return ops, counts, source, curve

    def _apply(
        self, ops: OperatingPoints, infos: list[RecordingInfo]
    ) -> tuple[PointCounts, PointsSource]:
        """Apply frozen operating points (their thresholds and post-processing) unchanged."""
        assert self.frozen_file is not None
        if ops.postprocess != self.pp_default:
            log.warning("the operating points carry their own post-processing; it is applied")
        applied = apply_operating_points(self._traces(infos, "apply"), ops, self.szcore)
        counts = {n: {t: a.counts for t, a in per.items()} for n, per in applied.items()}
        return counts, PointsSource("applied", ops.split, Path(self.frozen_file))
