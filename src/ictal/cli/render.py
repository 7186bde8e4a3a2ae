"""What the commands print: one table per result, read in five seconds (plain text off a
terminal). The library returns results; this module only shows them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ictal.cli.exits import error
from ictal.errors import Ending
from ictal.ui import echo, make_console

if TYPE_CHECKING:
    from pathlib import Path

    from ictal.cache.build import BuildReport
    from ictal.cache.explain import Explanation
    from ictal.cache.gc import GcPlan
    from ictal.cache.remote import Transfer
    from ictal.detect.archive import DetectResult
    from ictal.export.bundle import ExportResult
    from ictal.orchestrate.compare import Detector
    from ictal.orchestrate.sweep import Plan
    from ictal.runs.pusher import PushOutcome
    from ictal.runs.sink import Pulled
    from ictal.score.scoring import ScoreResult
    from ictal.train.catalog import ModelInfo
    from ictal.train.loop import TrainResult


def pairs(title: str, rows: list[tuple[str, str]]) -> Table:
    """A two-column table of what and value."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for k, v in rows:
        table.add_row(k, v)
    return table


def listing(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    """A titled table with one row per item."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def show(*tables: Table | str | None) -> Console:
    """Print each table (or line) that is there; return the console."""
    console = make_console()
    for t in tables:
        if t is not None:
            console.print(t)
    return console


def pushed_row(push: PushOutcome | None, where_failed: str) -> list[tuple[str, str]]:
    """The "pushed to" row of a command that pushed its directory (none when no sink)."""
    if push is None or not (push.complete or push.error):
        return []
    retried = f"; {push.failures} failed pushes retried" if push.failures else ""
    return [("pushed to", (push.url if push.complete else where_failed) + retried)]


# ----------------------------------------------------------------------------- cache


def build(report: BuildReport, max_failed_fraction: float, retry_failed: bool) -> None:
    # A rate of what this build preprocessed: none when it built nothing (not 0.00).
    rate = (
        f"{report.built_hours / report.wall_s:.2f} EEG-h/s"
        if report.built and report.wall_s > 0
        else "- (nothing built)"
    )
    state = "already built (nothing to do)" if report.up_to_date else "built"
    rows = [
        ("cache", str(report.path)),
        ("state", state),
        ("recordings", f"{report.built} built, {report.reused} reused, {report.skipped} "
                       f"skipped, {len(report.failed)} failed of {report.planned}"),
        ("EEG hours", f"{report.hours:.2f} h"),
        ("size on disk", f"{report.bytes_on_disk / 1e6:.1f} MB"),
        ("seizure events", str(report.seizure_events)),
        ("wall time", f"{report.wall_s:.1f} s"),
        ("build rate", rate),
    ]  # fmt: skip
    console = show(pairs("ictal build", rows))
    if report.failed:
        console.print(failures(f"{len(report.failed)} recordings failed", report.failed))
        if not retry_failed:
            console.print("known failures are not retried; use --retry-failed after fixing them")
    if report.ending is Ending.REFUSED:
        error(
            f"{report.failed_fraction:.1%} of recordings failed, more than "
            f"cache.max_failed_fraction={max_failed_fraction}"
        )


def failures(title: str, failed: list[tuple[str, str]]) -> Table:
    """Files and their reasons (the file's name is not repeated in its reason)."""
    rows = [(rel, reason.removeprefix(rel).lstrip(": ") or reason) for rel, reason in failed]
    return listing(title, ("file", "reason"), rows)


def problems(lines: list[str]) -> None:
    """Problems found by a check, one per line on stderr (credentials redacted)."""
    for line in lines:
        echo(line, err=True)


def verified(path: str, level: str, manifest: dict[str, Any]) -> None:
    totals = manifest["totals"]
    rows = [
        ("cache", path),
        ("checks", f"{level} passed"),
        ("recordings", f"{totals['recordings']} ({totals['failed']} failed at build)"),
        ("EEG hours", f"{totals['hours']:.2f} h"),
        ("size on disk", f"{totals['bytes'] / 1e6:.1f} MB"),
    ]
    failed = manifest.get("failed", [])
    table = None
    if failed:
        table = listing("recordings that failed at build time", ("file", "reason"),
                        [(f["rel"], f["reason"]) for f in failed])  # fmt: skip
    show(pairs("ictal verify", rows), table)


def explained(result: Explanation, root: str, build_cmd: str, stage_cmd: str | None) -> None:
    lines: list[Table | str | None] = [result.verdict]
    if result.located.key is None and not result.located.committed:
        # Without the corpus there is no key: neither build nor stage can work yet.
        lines.append("to fix: make the corpus readable here (corpus.root or corpus.roots, the "
                     "mount or the storage credentials), then `ictal explain` again")  # fmt: skip
    elif not result.located.committed:
        lines.append(f"to build it: {build_cmd}")
        if stage_cmd:
            lines.append(stage_cmd)
    if result.entries:
        rows = [
            (e.path.name, e.state + (f", {e.progress}" if e.progress else ""),
             "\n".join(e.differences) or "-")
            for e in result.entries
        ]  # fmt: skip
        columns = ("directory", "state", "differs from this config in")
        lines.append(listing(f"directories under {root}", columns, rows))
    show(*lines)


def gc_plan(plan: GcPlan, root: str, removing: bool) -> None:
    alone = None
    if plan.left_alone:
        alone = listing("not Ictal caches, left alone", ("directory", "why"),
                        [(str(a.path), a.reason) for a in plan.left_alone])  # fmt: skip
    if not plan.removals:
        show(alone, f"nothing to remove under {root}")
        return
    table = Table(title="would remove" if not removing else "removing", title_justify="left")
    table.add_column("directory")
    table.add_column("why")
    table.add_column("frees", justify="right")
    for r in plan.removals:
        table.add_row(str(r.path), r.reason, f"{r.bytes / 1e6:.1f} MB")
    show(
        alone, table, None if removing else "nothing removed: run again with --yes to remove these"
    )


def gc_done(n: int) -> None:
    show(f"removed {n} director{'y' if n == 1 else 'ies'}")


def transfer(t: Transfer, title: str, already: str) -> None:
    """The summary of a publish or stage, or one line when there was nothing to copy."""
    if t.already:
        show(f"{already}: nothing to do")
        return
    rows = [
        ("cache", t.key16),
        ("local", str(t.local)),
        ("remote", t.remote),
        ("copied", f"{t.files} files, {t.bytes / 1e6:.1f} MB"),
        ("already there", f"{t.skipped} files"),
    ]
    show(pairs(title, rows))


# ----------------------------------------------------------------------------- runs


def trained(result: TrainResult) -> None:
    best = "-" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    rows = [
        ("run", str(result.run_dir)),
        ("state", result.state + (" (early stop)" if result.stopped_early else "")),
        ("epochs done", str(result.epochs_done)),
        ("steps", str(result.step)),
        ("best val loss", f"{best} (epoch {(result.best_epoch or 0) + 1})"),
        ("best checkpoint", str(result.best_checkpoint)),
        ("last checkpoint", str(result.last_checkpoint)),
        *pushed_row(result.push, "final push FAILED (the run is intact locally)"),
    ]
    if result.tracker_errors:
        rows.append(("tracker errors", f"{result.tracker_errors} (last: {result.tracker_error})"))
    show(pairs("ictal train", rows))
    if result.push is not None and result.push.error:
        error(result.push.error)


def swept(plan: Plan) -> None:
    """The sweep's runs by validation loss, best first."""
    table = Table(title=f"sweep {plan.directory.name}: runs by validation loss",
                  title_justify="left")  # fmt: skip
    noted = any(m.error for m in plan.members)  # no empty note column
    for col in ("rank", "run", "values", "status", "best val loss", "AUROC", "steps",
                "peak RSS", *(["note"] if noted else [])):  # fmt: skip
        table.add_column(col)

    def key(m: Any) -> tuple[int, float]:
        loss = (m.metrics or {}).get("best_val_loss")
        return (0 if isinstance(loss, float) else 1, loss if isinstance(loss, float) else 0.0)

    for rank, m in enumerate(sorted(plan.members, key=key), start=1):
        metrics = m.metrics or {}
        loss, auroc = metrics.get("best_val_loss"), metrics.get("val_auroc")
        table.add_row(
            str(rank), m.name, " ".join(m.overrides) or "(base)", m.status,
            "-" if loss is None else f"{loss:.4f}", "-" if auroc is None else f"{auroc:.3f}",
            str(metrics.get("steps", "-")),
            "-" if m.peak_rss_gb is None else f"{m.peak_rss_gb:.2f} GB",
            *([(m.error or "")[:70]] if noted else []),
        )  # fmt: skip
    show(table, f"sweep.json: {plan.directory / 'sweep.json'}")
    failed = [m for m in plan.members if m.status != "done"]
    if failed:
        error(f"{len(failed)} of {len(plan.members)} runs did not finish (see the table)")


def pulled(result: Pulled) -> None:
    state = (
        "complete (verified against _PUSHED.json)"
        if result.complete
        else f"{len(result.skipped)} object(s) not pulled (named above)"
        if result.skipped
        else ("in progress: the run has not finished its final push; pull again for more")
    )
    rows = [
        ("from", result.source),
        ("into", str(result.dest)),
        ("copied", f"{result.files} files, {result.bytes / 1e6:.1f} MB"),
        ("unchanged", f"{result.unchanged} files"),
        ("state", state),
    ]
    show(pairs("ictal pull", rows))


# ----------------------------------------------------------------------------- results


def detected(result: DetectResult, collect: bool) -> None:
    summary = result.summary
    rows = [
        ("output", str(result.out)),
        ("recordings", f"{summary.recordings} ({summary.done} done, {len(summary.failed)} failed)"),
        ("this run", f"{result.detected} detected, {result.skipped} already in the log"),
        ("EEG hours", f"{summary.hours:.2f} h"),
        ("events", str(summary.events)),
    ]
    if result.postprocess:
        rows.append(("operating point", result.postprocess))
    rows += pushed_row(result.push, "final push FAILED (results are local)")
    table = None
    if summary.failed:
        table = listing(f"{len(summary.failed)} recordings failed", ("recording", "error"),
                        list(summary.failed))  # fmt: skip
    show(pairs("ictal detect" if not collect else "ictal detect --collect", rows), table)
    if result.push is not None and result.push.error:
        error(result.push.error)


def exported(result: ExportResult) -> None:
    point = ("dev-tuned: " if result.tuned else "NOT tuned: ") + result.operating_point
    rows = [
        ("model", str(result.model)),
        ("sidecar", str(result.sidecar)),
        ("check", f"max |logit diff| {result.max_diff:.2e} on {result.windows} cache windows"),
        ("operating point", point),
    ]
    show(pairs("ictal export", rows))


def scored(result: ScoreResult, labels: dict[str, str]) -> Console:
    """The pooled scores of ``ictal score``: one row per scorer, counts and rates."""
    hours = next(iter(result.totals.values())).duration_s / 3600.0
    table = Table(
        title=f"ictal score: {result.files} files, {hours:.2f} h, {result.pooled_how()}",
        title_justify="left",
    )
    for column in ("scorer", "sensitivity", "precision", "F1", "FA/24h", "hits", "misses",
                   "false alarms", "targets"):  # fmt: skip
        table.add_column(column, justify="left" if column == "scorer" else "right")

    def pct(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{100 * v:.2f}%"

    def num(v: float) -> str:
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"

    for name in result.scorers:
        c, r = result.totals[name], result.rates(name)
        fa = "n/a" if math.isnan(r["fa_per_24h"]) else f"{r['fa_per_24h']:.2f}"
        f1 = "n/a" if math.isnan(r["f1"]) else f"{r['f1']:.4f}"
        table.add_row(labels[name], pct(r["sensitivity"]), pct(r["precision"]), f1, fa,
                      num(c.hits), num(c.misses), num(c.false_alarms), str(c.n_ref))  # fmt: skip
    console = show(table)
    for line in result.legend():
        console.print(line)
    return console


def _count(n: int) -> str:
    """A parameter count people read: 41.1 M, 18.5 k."""
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)


def stride_text(stride: int, hz: float) -> str:
    """'256 samples (1 Hz)': input samples per output step and the output rate."""
    return f"{stride} sample{'s' if stride != 1 else ''} ({hz:g} Hz)"


def model_catalog(infos: list[ModelInfo]) -> Table:
    """``ictal models``: one row per model, built at the config's shape."""
    rows = []
    for i in infos:
        if i.error is not None:
            rows.append((i.name, "-", "-", "-", i.source, f"cannot be built: {i.error}"))
            continue
        assert i.output_stride is not None and i.output_hz is not None
        assert i.receptive_field_s is not None and i.parameters is not None
        field = f"{i.receptive_field_s:.3g} s" + (" (whole window)" if i.whole_window else "")
        rows.append((i.name, _count(i.parameters),
                     stride_text(i.output_stride, i.output_hz), field, i.source,
                     i.description))  # fmt: skip
    window = next((i.window_s for i in infos if i.window_s is not None), None)
    title = "models" + (f" (built for one {window:g} s window of the config)" if window else "")
    return listing(title, ("model", "parameters", "output stride", "receptive field",
                           "source", "description"), rows)  # fmt: skip


def compared(rows: list[Detector], problems: list[str], where: Path) -> None:
    """``ictal sweep --evaluate``: one row per detector (a run at one dev-tuned false-alarm
    budget), dev and eval side by side, each number with its unit and 95 % interval."""
    from ictal.evaluate.cells import fa_text, sens_text

    def cell(c: dict[str, Any], unit: str = "FA") -> str:
        counts, ci = c.get("counts") or {}, c.get("ci95") or {}
        if not counts:
            return "-"
        return (f"{sens_text(counts.get('sensitivity'), ci.get('sensitivity'))} @ "
                f"{fa_text(counts.get('fa_per_24h'), ci.get('fa_per_24h'), unit)}")  # fmt: skip

    table = Table(title="sweep comparison: one row per detector (threshold chosen on dev for "
                  "a budget, applied unchanged on eval)", title_justify="left")  # fmt: skip
    for col in ("run and model", "budget", "dev OVLP", "eval OVLP", "eval SzCORE events",
                "AUROC dev/eval", "parameters", "samples/s", "peak RSS"):  # fmt: skip
        table.add_column(col)
    for r in rows:
        auroc = "/".join("-" if a is None else f"{a:.3f}" for a in (r.auroc_dev, r.auroc_eval))
        table.add_row(
            f"{r.run.split('-', 1)[0]} {r.model}", f"<= {r.budget_fa24h:g} FA/24h",
            cell(r.dev["ovlp"]),
            cell(r.eval["ovlp"]), cell(r.eval["szcore"]), auroc,
            "-" if r.parameters is None else _count(r.parameters),
            "-" if r.samples_per_s is None else f"{r.samples_per_s:.0f}",
            "-" if r.peak_rss_gb is None else f"{r.peak_rss_gb:.2f} GB",
        )  # fmt: skip
    notes = ["sensitivity @ FA: false-alarm events per 24 h, 95 % intervals in brackets; "
             "samples/s: training, median step; peak RSS: the run's process tree.",
             f"comparison.json: {where / 'comparison.json'}"]  # fmt: skip
    show(table, *notes)
    for line in problems:
        error(line)
