"""Commands that use a trained detector or score one: evaluate, detect, export, score, report."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ictal.cli import render
from ictal.cli.app import (
    AddressOpt,
    AllowMismatchOpt,
    ConfigOpt,
    SetOpt,
    TrustOpt,
    fix_command,
    load,
    model_trust,
    overrides,
    remember,
)
from ictal.cli.exits import command
from ictal.config import EVALUATE_SPLITS
from ictal.errors import UsageError
from ictal.ui import echo

if TYPE_CHECKING:
    from ictal.events.deployed import Wanted

OperatingPointsOpt = Annotated[
    Path | None, typer.Option(help="Frozen operating points (default: the run's dev ones).")
]
PointOpt = Annotated[
    str | None,
    typer.Option(
        "--operating-point",
        metavar="SCORER@BUDGET",
        help="The dev-tuned point to use, e.g. ovlp@10: OVLP's threshold for at most 10 "
        "FA/24h (default detect.operating_point).",
    ),
]
DetectPaths = Annotated[
    list[str],
    typer.Argument(
        help="CKPT then INPUT... (EDF files, directories, list files, URLs); with "
        "--collect: detect output directories or sink URLs to merge."
    ),
]
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="An ONNX export (`ictal export`) run with onnxruntime instead of a CKPT; "
        "PATHS are then all INPUTs.",
    ),
]
ThresholdOpt = Annotated[
    float | None, typer.Option(min=0.0, max=1.0, help="Threshold instead of an operating point.")
]


def wanted_point(point: str | None, threshold: float | None, points_file: Path | None) -> Wanted:
    """What the user asked for; ``--threshold`` excludes the other two."""
    from ictal.events.deployed import Wanted, parse_point

    if threshold is not None and (point is not None or points_file is not None):
        raise UsageError("give --threshold or an operating point (--operating-point, "
                         "--operating-points), not both")  # fmt: skip
    if point is not None:
        parse_point(point, "--operating-point")
    return Wanted(point, threshold, points_file)


DetectWorkersOpt = Annotated[
    int | None, typer.Option(min=1, help="Parallel worker processes (detect.workers).")
]
DetectExecutorOpt = Annotated[
    str | None, typer.Option(help="process (default), serial or ray; same results either way.")
]
WatchOpt = Annotated[
    bool, typer.Option("--watch", help="Keep running: detect new files as they complete.")
]
SaveProbsOpt = Annotated[
    bool, typer.Option("--save-probs", help="Also keep per-recording probabilities.")
]
RedoOpt = Annotated[bool, typer.Option("--redo", help="Recompute recordings already in the log.")]
CollectOpt = Annotated[
    bool, typer.Option("--collect", help="Only merge the logs of PATHS into --out.")
]
PruneOpt = Annotated[
    bool,
    typer.Option("--prune-after-push", help="Delete local sealed segments verified in the sink."),
]
# `--split`: the choices of evaluate.split, from the config.
Split = StrEnum("Split", list(EVALUATE_SPLITS))
SplitOpt = Annotated[
    Split | None, typer.Option(help="dev, eval or train (default evaluate.split).")
]


@command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file to evaluate.")],
    split: SplitOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    operating_points: Annotated[
        Path | None, typer.Option(help="Frozen operating points chosen on dev.")
    ] = None,
    corpus: Annotated[
        list[str] | None,
        typer.Option(
            help="Score only this corpus of a mixture cache (repeatable, or a comma list); "
            "operating points are still chosen over every corpus."
        ),
    ] = None,
    export_point: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SCORER[@BUDGET]",
            help="Export hypotheses at this operating point (repeatable, or a comma list; "
            "SCORER alone: all its budgets); default evaluate.export_points (ovlp).",
        ),
    ] = None,
    allow_version_mismatch: AllowMismatchOpt = False,
    trust_model_code: TrustOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Score a checkpoint on dev or eval with NEDC-style and SzCORE scorers.

    Without -c, a checkpoint inside a run directory is evaluated with that run's frozen
    config (runs/<id>/config.yaml), so the cache and post-processing match the training;
    its results are pushed only to the sink.url given now (-c, --set), never to the frozen
    one. A mixture cache is also scored per corpus, side by side; --corpus scores only some.
    """
    from ictal.runs.checkpoints import checkpoint_config, frozen_config

    trust = model_trust(config, set_, trust_code=trust_model_code,
                        allow_mismatch=allow_version_mismatch)  # fmt: skip
    from ictal.evaluate.corpora import parse_corpus_names

    # --export-point takes the list syntax of --corpus: repeated, or comma lists
    points = parse_corpus_names(export_point) if export_point is not None else None
    options = {"evaluate.split": split.value if split else None, "evaluate.export_points": points}
    cfg = remember(checkpoint_config(checkpoint, config, [*(set_ or []), *overrides(options)]))
    from ictal.evaluate.evaluation import evaluate as run_evaluate
    from ictal.evaluate.summary import corpus_table, summary_table

    corpora = parse_corpus_names(corpus)
    if corpus is not None and not corpora:
        raise UsageError("--corpus needs a corpus name")
    result = run_evaluate(
        cfg, checkpoint, split=cfg.evaluate.split, out=out, operating_points=operating_points,
        fix_hint=fix_command("build", frozen_config(checkpoint, config), set_),
        trust=trust, corpora=corpora,
    )  # fmt: skip
    lines: list[object] = [summary_table(result), corpus_table(result),
                           f"scores: {result.scores_path}"]  # fmt: skip
    if result.operating_points_path is not None:
        lines.append(f"operating points: {result.operating_points_path}")
    folders = [p["dir"] for p in result.scores["exports"]["points"]]
    lines.append(f"hypotheses: {', '.join(folders) or 'none'} (in {result.out})")
    if result.push is not None and result.push.complete:
        lines.append(f"pushed to: {result.push.url}")
    render.show(*lines)  # type: ignore[arg-type]
    if result.push is not None and result.push.error:
        render.error(result.push.error)
    if result.failed:
        render.error(f"{len(result.failed)} recording(s) failed; see the log")
    return result


@command()
def detect(
    paths: DetectPaths,
    out: Annotated[Path, typer.Option("--out", help="Output directory (resumable).")],
    model: ModelOpt = None,
    operating_point: PointOpt = None,
    operating_points: OperatingPointsOpt = None,
    threshold: ThresholdOpt = None,
    workers: DetectWorkersOpt = None,
    executor: DetectExecutorOpt = None,
    address: AddressOpt = None,
    watch: WatchOpt = False,
    save_probs: SaveProbsOpt = False,
    redo: RedoOpt = False,
    collect: CollectOpt = False,
    prune_after_push: PruneOpt = False,
    allow_version_mismatch: AllowMismatchOpt = False,
    trust_model_code: TrustOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Run a trained detector over EDF archives (any layout): a durable record log (kill -9
    safe, resumable by default), then events.csv, NEDC and SzCORE files and summary.json."""
    cfg = load(config, set_, {"ray.address": address, "detect.workers": workers,
                              "detect.executor": executor})  # fmt: skip
    from ictal.detect.archive import collect as run_collect
    from ictal.detect.archive import detect as run_detect

    wanted = wanted_point(operating_point, threshold, operating_points)
    if collect:
        result = run_collect(paths, out, cfg.sink.url)
    else:
        detector, inputs = (model, paths) if model else (Path(paths[0]), paths[1:])
        if not inputs:
            raise UsageError(
                "detect needs CKPT (or --model DIR) and at least one INPUT (or --collect)"
            )
        result = run_detect(
            cfg, detector, inputs, out, wanted=wanted, watch=watch, save_probs=save_probs,
            redo=redo, prune_after_push=prune_after_push,
            trust=model_trust(config, set_, trust_code=trust_model_code,
                              allow_mismatch=allow_version_mismatch),
        )  # fmt: skip
    render.detected(result, collect)
    return result


@command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file to export.")],
    out: Annotated[
        Path, typer.Option("--out", help="New or empty directory: the model and its sidecar.")
    ],
    format_: Annotated[
        str, typer.Option("--format", help="onnx (runs in `ictal detect --model`) or torchscript.")
    ] = "onnx",
    operating_point: PointOpt = None,
    operating_points: OperatingPointsOpt = None,
    threshold: ThresholdOpt = None,
    allow_version_mismatch: AllowMismatchOpt = False,
    trust_model_code: TrustOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Export a checkpoint as ONNX or TorchScript with a JSON sidecar (preprocessing, windows,
    output rate, operating point), checked against torch on real windows of its cache.

    Without -c, the run's frozen config (else the checkpoint's own) finds the cache and the
    run's dev operating points.
    """
    from ictal.export.bundle import export_model

    trust = model_trust(config, set_, trust_code=trust_model_code,
                        allow_mismatch=allow_version_mismatch)  # fmt: skip
    wanted = wanted_point(operating_point, threshold, operating_points)
    result = export_model(checkpoint, format_, out, config=config, sets=set_ or [], trust=trust,
                          point=wanted.point, threshold=wanted.threshold,
                          points_file=wanted.file)  # fmt: skip
    render.exported(result)
    return result


@command()
def score(
    ref: Annotated[str, typer.Argument(help="Reference: a directory, a list file or one file.")],
    hyp: Annotated[str, typer.Argument(help="Hypothesis: a directory, a list file or one file.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the pooled scores as JSON here.")
    ] = None,
    per_file: Annotated[
        Path | None, typer.Option("--per-file", help="Write one CSV row of counts per pair.")
    ] = None,
    scorers: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: ovlp,taes,epoch,dpalign,szcore (both SzCORE ones), "
            "szcore_samples (default: all)."
        ),
    ] = None,
    missing_hyp: Annotated[
        str,
        typer.Option(
            "--missing-hyp", help="error (default), or empty: score a missing hypothesis as empty."
        ),
    ] = "error",
    subset: Annotated[
        bool,
        typer.Option(
            "--subset", help="Score only the references that have a hypothesis (a partial set)."
        ),
    ] = False,
    pooling: Annotated[
        str | None,
        typer.Option(
            help="SzCORE pooling: recording (summed counts) or subject (mean of each "
            "subject's rates, SzCORE's default); default scoring.szcore.pooling."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes scoring 1,000 pairs or more (default: the CPUs the load "
            "leaves idle); same output either way.",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Score any system's annotations against a reference: NEDC v6.0.0 OVLP, TAES, EPOCH and
    DPALIGN pooled over files, SzCORE events and samples exactly as SzCORE's evaluator scores
    them (parameters and pooling: scoring.szcore), from .csv_bi, .csv and .tsv files."""
    from ictal.events.scorers import LABELS
    from ictal.events.szcore import SzcoreParams
    from ictal.score.scoring import score as run_score

    cfg = load(config, set_, {"scoring.szcore.pooling": pooling})
    result = run_score(
        ref, hyp, scorers=scorers, missing_hyp=missing_hyp, subset=subset, json_out=json_out,
        per_file=per_file, params=SzcoreParams.of(cfg.scoring.szcore),
        pooling=cfg.scoring.szcore.pooling, workers=workers,
    )  # fmt: skip
    console = render.scored(result, LABELS)
    for note, n in sorted(result.notes.items()):
        echo(f"note: {n} file(s): {note}", err=True)
    for path in (json_out, per_file):
        if path is not None:
            console.print(f"wrote {path}")
    return result


@command()
def report(
    run: Annotated[Path, typer.Argument(help="Run or evaluation directory.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Write a self-contained HTML report (training curves, scores, traces).

    An evaluation directory is reported with its run (its parent, or the run its scores
    name when that run lies under runs.root).
    """
    cfg = load(config, set_)
    from ictal.evaluate.report import write_report

    path = write_report(run, Path(cfg.runs.root))
    render.show(f"report: {path}")
    return None
