"""``ictal sweep --evaluate``: each finished run of a sweep scored on dev (where its operating
points are chosen) and on eval (with dev's points, unchanged), then one comparison table,
one row per detector (a run at one false-alarm budget), from the runs' own scores.json.

Everything read here is the sweep's own output, found from the sweep's directory (never from
a path sweep.json names) and read through the bounded readers; a run directory that is a
link, or whose files cannot be read, is left out with its reason."""

from __future__ import annotations

import hashlib
import math
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ictal.io.atomic import atomic_write_json
from ictal.io.untrusted import UnreadableInput, read_json
from ictal.parallel import supervisor
from ictal.runs.directory import RunDir
from ictal.runs.meta import read_run_json
from ictal.runs.metrics import read_metrics
from ictal.ui import log

COMPARISON_JSON = "comparison.json"
EVAL_LOG = "evaluate.out"
MAX_SCORES_BYTES = 256 << 20  # a scores.json of thousands of recordings
CHECKPOINT = "best.pt"


@dataclass
class Detector:
    """One row: a run's model at one false-alarm budget, on dev and eval."""

    run: str
    values: str
    model: str
    budget_fa24h: float
    threshold: float | None
    dev: dict[str, Any]  # ovlp: counts and ci95 at dev's threshold
    eval: dict[str, Any]  # ovlp and szcore: counts and ci95 at dev's threshold, unchanged
    auroc_dev: float | None
    auroc_eval: float | None
    parameters: int | None
    samples_per_s: float | None
    peak_rss_gb: float | None
    notes: list[str] = field(default_factory=list)


def run_directory(slot: Path) -> RunDir | None:
    """The run a sweep slot holds (its newest), only a real directory inside the slot."""
    if not slot.is_dir() or slot.is_symlink():
        return None
    runs = sorted(
        p for p in slot.iterdir()
        if not p.is_symlink() and p.is_dir() and RunDir(p).config.is_file()
    )  # fmt: skip
    return RunDir(runs[-1]) if runs else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _scores(run: RunDir, split: str) -> dict[str, Any] | None:
    """The run's scores.json of ``split`` for its best checkpoint, or None when missing or
    unreadable."""
    try:
        doc = read_json(run.path / f"eval-best-{split}" / "scores.json", "scores.json",
                        MAX_SCORES_BYTES)  # fmt: skip
    except (FileNotFoundError, UnreadableInput):
        return None
    return doc if isinstance(doc, dict) else None


def _current(run: RunDir, split: str, sha: str) -> bool:
    doc = _scores(run, split)
    return doc is not None and doc.get("checkpoint_sha256") == sha


def evaluate_run(run: RunDir, log_path: Path) -> str | None:
    """Score the run's best checkpoint on dev, then on eval with dev's points (each skipped
    when its scores.json is of this very checkpoint); the error, or None."""
    ckpt = run.path / "checkpoints" / CHECKPOINT
    if not ckpt.is_file() or ckpt.is_symlink():
        return f"no {CHECKPOINT} in {run.path / 'checkpoints'}"
    sha = _sha256(ckpt)
    points = run.path / "eval-best-dev" / "operating_points.json"
    steps = (("dev", []), ("eval", ["--operating-points", str(points)]))
    for split, extra in steps:
        if _current(run, split, sha):
            continue
        log.info(f"sweep: evaluating {run.path.parent.name} on {split}")
        argv = [sys.executable, "-m", "ictal.cli", "evaluate", str(ckpt), "--split", split,
                *extra]  # fmt: skip
        with open(log_path, "ab") as out:  # the one way children start (and stop with us)
            proc = supervisor.start(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        try:
            code = proc.wait()
        except BaseException:
            supervisor.stop(proc)
            raise
        if code != 0:
            return f"ictal evaluate --split {split} exited {code} (see {log_path})"
    return None


def _throughput(run: RunDir) -> float | None:
    """Median training samples/s over the run's steps, each epoch's first step left out (it
    carries the loader's start)."""
    rates = [
        r["samples_per_s"] for r in read_metrics(run.metrics)
        if r.get("phase") == "train" and _number(r.get("step_in_epoch")) and r["step_in_epoch"] > 1
        and _number(r.get("samples_per_s"))
    ]  # fmt: skip
    return float(statistics.median(rates)) if rates else None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _cell(point: dict[str, Any] | None, counts: str, ci: str) -> dict[str, Any]:
    """A scorer's counts and 95 % intervals at one point, numbers only (a scores.json is a
    file like any other: what is not a number is left out, never shown or crashed on)."""
    if not isinstance(point, dict):
        return {}
    got, spans = point.get(counts), point.get(ci)
    got = {k: v for k, v in got.items() if _number(v)} if isinstance(got, dict) else {}
    spans = {k: v for k, v in spans.items()
             if isinstance(v, list) and len(v) == 2 and all(map(_number, v))
             } if isinstance(spans, dict) else {}  # fmt: skip
    return {"counts": got, "ci95": spans}


def _by_budget(scores: dict[str, Any], scorer: str) -> dict[float, dict[str, Any]]:
    points = ((scores.get("operating_points") or {}).get("points") or {}).get(scorer) or []
    key = "target_fa_per_24h"
    return {float(p[key]): p for p in points
            if isinstance(p, dict) and isinstance(p.get(key), int | float)}  # fmt: skip


def detectors(name: str, values: str, slot: Path, peak_rss_gb: float | None) -> list[Detector]:
    """The rows of one run: one per false-alarm budget its dev scores tuned."""
    run = run_directory(slot)
    if run is None:
        return []
    dev, ev = _scores(run, "dev"), _scores(run, "eval")
    if dev is None or ev is None:
        return []
    try:
        meta = read_run_json(run.run_json)
    except (OSError, UnreadableInput, ValueError):
        meta = {}
    params = meta.get("model_parameters")
    model = meta.get("model_name") or dev.get("model_name") or "?"
    rows = []
    dev_ovlp, ev_ovlp, ev_sz = (_by_budget(dev, "ovlp"), _by_budget(ev, "ovlp"),
                                _by_budget(ev, "szcore"))  # fmt: skip
    for budget in sorted(dev_ovlp, reverse=True):
        point = dev_ovlp[budget]
        rows.append(Detector(
            run=name, values=values, model=str(model)[:80], budget_fa24h=budget,
            threshold=point.get("threshold") if _number(point.get("threshold")) else None,
            dev={"ovlp": _cell(point, "counts", "ci95")},
            eval={"ovlp": _cell(ev_ovlp.get(budget), "counts", "ci95"),
                  "szcore": _cell(ev_sz.get(budget), "counts", "ci95")},
            auroc_dev=dev.get("auroc") if _number(dev.get("auroc")) else None,
            auroc_eval=ev.get("auroc") if _number(ev.get("auroc")) else None,
            parameters=params if _number(params) and isinstance(params, int) else None,
            samples_per_s=_throughput(run),
            peak_rss_gb=peak_rss_gb if _number(peak_rss_gb) else None,
        ))  # fmt: skip
    return rows


def write_comparison(directory: Path, rows: list[Detector]) -> Path:
    """comparison.json beside sweep.json: every row, as the table shows it and more."""
    path = directory / COMPARISON_JSON
    atomic_write_json(path, {"rows": [asdict(r) for r in rows]})
    return path


def compare(plan: Any) -> tuple[list[Detector], list[str]]:
    """Evaluate every finished run of a sweep plan (dev, then eval at dev's points) and
    gather the comparison rows; the problems, one line each (the other runs go on)."""
    rows: list[Detector] = []
    problems: list[str] = []
    for m in plan.members:
        if m.status != "done":
            continue
        slot = plan.directory / m.name
        run = run_directory(slot)
        if run is None:
            problems.append(f"{m.name}: no run directory in {slot}")
            continue
        failed = evaluate_run(run, slot / EVAL_LOG)
        if failed is not None:
            problems.append(f"{m.name}: {failed}")
            continue
        found = detectors(m.name, " ".join(m.overrides) or "(base)", slot, m.peak_rss_gb)
        if not found:
            problems.append(f"{m.name}: its scores.json could not be read")
        rows.extend(found)
    write_comparison(plan.directory, rows)
    return rows, problems
