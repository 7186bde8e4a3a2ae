"""Command line: parse, load config, call the library, print, exit with a code scripts trust."""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ictal import __version__
from ictal.config import Config, ConfigError, load_config
from ictal.errors import EXIT_CODES_HELP, ExitCode, IctalError
from ictal.io.redact import redact
from ictal.ui import log, make_console, setup_logging

if TYPE_CHECKING:
    from ictal.cache.remote import Transfer

app = typer.Typer(
    name="ictal",
    help="Train seizure detectors on scalp EEG: synth -> census -> build -> train -> evaluate.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (defaults are built in)."),
]
AllowMismatchOpt = Annotated[
    bool,
    typer.Option(
        "--allow-version-mismatch",
        help="Go on when the model's package is installed at another version than the "
        "checkpoint was trained with.",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray cluster to join (auto, host:port); default: a local Ray instance."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field: section.key=value (repeatable, in order)."),
]


# ictal synth --difficulty (ictal.corpus.synth.difficulty.DIFFICULTIES; a test keeps them equal,
# this one avoids importing the generator for every command).
Difficulty = StrEnum("Difficulty", ["easy", "realistic", "hard"])
# ictal synth --format and --line-freq (writer.FORMATS and LINE_FREQS; kept equal by a test).
CorpusFormat = StrEnum("CorpusFormat", ["tusz", "bids"])
LineFreq = StrEnum("LineFreq", [("hz50", "50"), ("hz60", "60")])

# The config of the running command, so a storage error can name the setting it came from.
_CURRENT: list[Config] = []
# What a command that was interrupted says to resume it (default: run it again).
_INTERRUPT_HINT: list[str] = []


def _config(config: Path | None, sets: list[str] | None) -> Config:
    """Load the config or exit 2 with the message naming the field."""
    try:
        cfg = load_config(config, sets or [])
    except ConfigError as exc:
        _error(str(exc))
        raise typer.Exit(ExitCode.USAGE) from exc
    _CURRENT[:] = [cfg]
    return cfg


def _error(message: str) -> None:
    """One error message on stderr, credentials redacted."""
    typer.echo(f"error: {redact(message)}", err=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Ictal command line."""
    setup_logging()


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Directory to write the corpus into.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 12,
    hours: Annotated[float, typer.Option(min=0.01, help="Total recording hours.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    quirks: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of files with a real-world defect.")
    ] = 0.0,
    difficulty: Annotated[
        Difficulty,
        typer.Option(
            help="easy: one clear seizure template; realistic: seizures drawn from TUSZ-like "
            "distributions among artifacts and look-alikes; hard: fainter, more focal, more "
            "look-alikes (docs/corpora.md)."
        ),
    ] = Difficulty.easy,
    format_: Annotated[
        CorpusFormat,
        typer.Option(
            "--format",
            help="tusz: the exact TUSZ layout and formats; bids: the same recordings as a "
            "BIDS-EEG dataset in the SzCORE convention (docs/corpora.md).",
        ),
    ] = CorpusFormat.tusz,
    line_freq: Annotated[
        LineFreq,
        typer.Option(
            "--line-freq",
            help="Mains frequency (Hz) of the interference in the signals (and the BIDS "
            "sidecars' PowerLineFrequency).",
        ),
    ] = LineFreq.hz60,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a directory that is not empty.")
    ] = False,
) -> None:
    """Write a synthetic corpus in the exact TUSZ layout and formats, or as BIDS-EEG (its
    options are all here: synth takes no config)."""
    from ictal.corpus.synth import synthesize

    if format_ is CorpusFormat.bids and quirks > 0:
        _error(
            "--quirks writes TUSZ-layout defects (header bytes, .csv_bi rows); --format bids "
            "writes clean recordings only: drop --quirks, or use --format tusz"
        )
        raise typer.Exit(ExitCode.USAGE)
    if out.exists() and not out.is_dir():
        _error(f"{out} is a file; synth writes a corpus directory: choose another OUT")
        raise typer.Exit(ExitCode.USAGE)
    if out.is_dir() and any(out.iterdir()) and not force:
        _error(
            f"{out} is not empty: synth writes a corpus into an empty directory; choose another "
            "OUT, or pass --force to write over the files of the same names"
        )
        raise typer.Exit(ExitCode.USAGE)

    from ictal.ui import progress

    with progress(f"synth ({difficulty.value}, {format_.value})", total=None) as tick:

        def advance(done: int, total: int) -> None:
            tick.set_total(total)
            tick.advance(done - tick.done)

        truth = synthesize(
            out, patients=patients, hours=hours, seed=seed, quirks=quirks,
            difficulty=difficulty.value, format=format_.value, line_freq=int(line_freq.value),
            progress=advance,
        )  # fmt: skip
    files = truth.get("files", [])
    log.info(f"wrote {len(files)} recordings for {patients} patients to {out}")


@app.command()
def census(
    corpus: Annotated[
        str | None, typer.Argument(help="Corpus root (path or fsspec URL); default corpus.root.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Inventory and checks of a corpus (TUSZ or BIDS; each corpus of a mixture) from
    headers and annotations only."""
    cfg = _config(config, set_)
    from ictal.corpus.census import census_to_dict, print_census, run_census
    from ictal.corpus.sources import sources
    from ictal.io.atomic import atomic_write_json

    found = sources(cfg.corpus, corpus)
    if json_out is not None:
        from ictal.io.paths import writable_dir

        writable_dir(json_out.parent, "--json")
    from ictal.ui import progress

    results = []
    console = make_console()
    for source in found:
        with progress(f"census {source.name}".strip(), total=None) as tick:

            def advance(done: int, total: int) -> None:
                tick.set_total(total)
                tick.advance(done - tick.done)

            result = run_census(
                source.root, window_s=cfg.windows.length_s, label_source=cfg.labels.source,
                progress=advance, source=source, split_rule=cfg.corpus.split,
                montage=cfg.signal.montage,
            )  # fmt: skip
        results.append(result)
        print_census(results[-1], console)
    code = max(r.exit_code for r in results)
    if json_out is not None:
        docs = [census_to_dict(r) for r in results]
        doc = docs[0] if len(docs) == 1 else {"corpora": docs, "exit_code": code}
        atomic_write_json(json_out, doc)
    raise typer.Exit(code)


def _fix_command(command: str, config: Path | None, sets: list[str] | None) -> str:
    """The exact command line that repeats this invocation's config for another command."""
    parts = ["ictal", command]
    if config is not None:
        parts += ["-c", str(config)]
    for s in sets or []:
        parts += ["--set", s]
    return " ".join(parts)


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for k, v in rows:
        table.add_row(k, v)
    return table


@app.command()
def build(
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel worker processes.")] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="process (default), serial or ray; the same bytes either way."),
    ] = None,
    address: AddressOpt = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Retry recordings that failed before.")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Build the cache for the config, in parallel and resumable."""
    extra = [*([f"cache.executor={executor}"] if executor else []),
             *([f"ray.address={address}"] if address else [])]  # fmt: skip
    cfg = _config(config, [*(set_ or []), *extra])
    from ictal.cache.build import build_cache

    report = build_cache(cfg, workers=workers, retry_failed=retry_failed or None)
    console = make_console()
    rate = report.built_hours / report.wall_s if report.wall_s > 0 else 0.0
    state = "already built (nothing to do)" if report.up_to_date else "built"
    rows = [
        ("cache", str(report.path)),
        ("state", state),
        ("recordings", f"{report.built} built, {report.reused} reused, {report.skipped} "
                       f"skipped, {len(report.failed)} failed of {report.planned}"),
        ("EEG hours", f"{report.hours:.2f}"),
        ("size on disk", f"{report.bytes_on_disk / 1e6:.1f} MB"),
        ("seizure events", str(report.seizure_events)),
        ("wall time", f"{report.wall_s:.1f} s"),
        ("EEG-hours per second", f"{rate:.2f}"),
    ]  # fmt: skip
    console.print(_table("ictal build", rows))
    if report.failed:
        failed = Table(title=f"{len(report.failed)} recordings failed", title_justify="left")
        failed.add_column("file")
        failed.add_column("reason")
        for rel, reason in report.failed:
            failed.add_row(rel, reason.removeprefix(rel).lstrip(": ") or reason)
        console.print(failed)
        if not cfg.cache.retry_failed and not retry_failed:
            console.print("known failures are not retried; use --retry-failed after fixing them")
    if report.exit_code == ExitCode.PREFLIGHT:
        _error(
            f"{report.failed_fraction:.1%} of recordings failed, more than "
            f"cache.max_failed_fraction={cfg.cache.max_failed_fraction}"
        )
    raise typer.Exit(report.exit_code)


@app.command()
def verify(
    full: Annotated[bool, typer.Option("--full", help="Also check content hashes (L1).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check the cache for this config: L0 always, content hashes with --full."""
    cfg = _config(config, set_)
    from ictal.cache.locate import locate
    from ictal.cache.manifest import open_cache
    from ictal.cache.verify import format_problems, verify_l0, verify_l1
    from ictal.parallel.engines import cache_workers
    from ictal.ui import progress

    fix = _fix_command("build", config, set_)
    located = locate(cfg)
    if not located.committed or located.path is None:
        _error(f"no committed cache for this config under {cfg.cache.root}")
        typer.echo(redact(f"  fix: run `{fix}` (`ictal explain` says why)"), err=True)
        raise typer.Exit(ExitCode.PREFLIGHT)
    if located.note:
        log.warning(located.note)
    problems = verify_l0(located.path, cfg, located.key)
    level = "L0"
    if not problems and full:
        n = len(open_cache(located.path).recordings)
        with progress("verify --full", total=n) as tick:
            problems = verify_l1(
                located.path, workers=cache_workers(cfg.cache.workers), progress=tick
            )
        level = "L0 + L1"
    console = make_console()
    if problems:
        for line in format_problems(problems):
            typer.echo(redact(line), err=True)
        _error(f"{len(problems)} problem(s) in {located.path}")
        raise typer.Exit(ExitCode.PREFLIGHT)
    view = open_cache(located.path)
    totals = view.manifest["totals"]
    rows = [
        ("cache", str(located.path)),
        ("checks", f"{level} passed"),
        ("recordings", f"{totals['recordings']} ({totals['failed']} failed at build)"),
        ("hours", f"{totals['hours']:.2f}"),
        ("size on disk", f"{totals['bytes'] / 1e6:.1f} MB"),
    ]
    console.print(_table("ictal verify", rows))
    failed = view.manifest.get("failed", [])
    if failed:
        t = Table(title="recordings that failed at build time", title_justify="left")
        t.add_column("file")
        t.add_column("reason")
        for f in failed:
            t.add_row(f["rel"], f["reason"])
        console.print(t)


@app.command()
def explain(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Say why the cache for this config is or is not there, with a config diff."""
    cfg = _config(config, set_)
    from ictal.cache.explain import explain as explain_cache

    result = explain_cache(cfg)
    console = make_console()
    console.print(result.verdict)
    if not result.located.committed:
        console.print(f"to build it: {_fix_command('build', config, set_)}")
        if cfg.cache.remote:
            stage_cmd = _fix_command("stage", config, set_)
            console.print(f"or, if it is published at {cfg.cache.remote}: {stage_cmd}")
    if result.entries:
        t = Table(title=f"directories under {cfg.cache.root}", title_justify="left")
        t.add_column("directory")
        t.add_column("state")
        t.add_column("differs from this config in")
        for e in result.entries:
            state = e.state + (f", {e.progress}" if e.progress else "")
            t.add_row(e.path.name, state, "\n".join(e.differences) or "-")
        console.print(t)
    raise typer.Exit(ExitCode.OK if result.located.committed else ExitCode.PREFLIGHT)


@app.command()
def gc(
    yes: Annotated[bool, typer.Option("--yes", help="Really remove (default: list only).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Remove caches other than the current one, only when asked explicitly."""
    cfg = _config(config, set_)
    from ictal.cache.gc import plan_gc, remove

    plan = plan_gc(cfg)
    removals = plan.removals
    console = make_console()
    if plan.left_alone:
        t = Table(title="not Ictal caches, left alone", title_justify="left")
        t.add_column("directory")
        t.add_column("why")
        for a in plan.left_alone:
            t.add_row(str(a.path), a.reason)
        console.print(t)
    if not removals:
        console.print(f"nothing to remove under {cfg.cache.root}")
        return
    t = Table(title="would remove" if not yes else "removing", title_justify="left")
    t.add_column("directory")
    t.add_column("why")
    t.add_column("frees", justify="right")
    for r in removals:
        t.add_row(str(r.path), r.reason, f"{r.bytes / 1e6:.1f} MB")
    console.print(t)
    if not yes:
        console.print("nothing removed: run again with --yes to remove these")
        return
    remove(removals)
    console.print(f"removed {len(removals)} director{'y' if len(removals) == 1 else 'ies'}")


def _torchrun(nproc: int, command: str) -> int:
    """Run this same command on ``nproc`` processes under torchrun (one machine) and return
    its exit code; SIGINT/SIGTERM reach every rank, which checkpoints and stops."""
    import subprocess

    from ictal.train.distributed import launched

    if launched():
        _error("--nproc under torchrun: give --nproc-per-node to torchrun, not --nproc")
        return ExitCode.USAGE
    argv = sys.argv[1:]
    rest, skip = [], False
    for a in argv:  # the same command line, without --nproc N
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "ictal", *rest]  # fmt: skip
    from ictal.machine import usable_cpus

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cpus() // nproc)))  # a share per rank
    proc = subprocess.Popen(args, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        return ExitCode.INTERRUPTED


def _print_transfer(t: Transfer, title: str, already: str) -> None:
    """The summary of a publish or stage, or one line when there was nothing to copy."""
    console = make_console()
    if t.already:
        console.print(f"{already}: nothing to do")
        return
    rows = [
        ("cache", t.key16),
        ("local", str(t.local)),
        ("remote", t.remote),
        ("copied", f"{t.files} files, {t.bytes / 1e6:.1f} MB"),
        ("already there", f"{t.skipped} files"),
    ]
    console.print(_table(title, rows))


@app.command()
def publish(
    to: Annotated[
        str | None, typer.Option("--to", help="fsspec URL to publish to (default cache.remote).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a damaged or different remote copy (every file again)."
        ),
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Upload this config's verified cache to <URL>/<key16>/ (resumable, manifest last)."""
    cfg = _config(config, set_)
    from ictal.cache.remote import publish as run_publish
    from ictal.parallel.engines import cache_workers

    result = run_publish(cfg, to, workers=cache_workers(cfg.cache.workers), force=force)
    _print_transfer(result, "published", f"{result.remote} is already published (same manifest)")


@app.command()
def stage(
    from_: Annotated[
        str | None,
        typer.Option("--from", help="fsspec URL to stage from (default cache.remote)."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Cache key (16+ hex digits) when the corpus is unreachable."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fetch a published cache into cache.root, verify every byte (L1), then commit it."""
    cfg = _config(config, set_)
    from ictal.cache.remote import stage as run_stage
    from ictal.parallel.engines import cache_workers

    result = run_stage(cfg, from_, key=key, workers=cache_workers(cfg.cache.workers))
    _print_transfer(result, "staged (L0 + L1 verified)", f"{result.local} is already staged")


@app.command()
def train(
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the most recent unfinished run exactly.")
    ] = False,
    run: Annotated[
        Path | None, typer.Option("--run", help="Resume this run directory (implies --resume).")
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc", min=1, help="Train on N processes (DDP via torchrun: gloo on CPU, NCCL)."
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Preflight the cache, then train (never preprocesses; kill -9 safe; SIGTERM saves)."""
    if nproc is not None and nproc > 1:
        raise typer.Exit(_torchrun(nproc, "train"))
    cfg = _config(config, set_)
    from ictal.train.loop import train as run_training

    result = run_training(
        cfg,
        resume=run if run is not None else resume,
        fix_hint=_fix_command("build", config, set_),
        command=_fix_command("train", config, set_),
    )
    if result.rank != 0:  # rank 0 speaks for a distributed run
        raise typer.Exit(ExitCode.INTERRUPTED if result.state == "stopped" else ExitCode.OK)
    console = make_console()
    best = "-" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
    rows = [
        ("run", str(result.run_dir)),
        ("state", result.state + (" (early stop)" if result.stopped_early else "")),
        ("epochs done", str(result.epochs_done)),
        ("steps", str(result.step)),
        ("best val loss", f"{best} (epoch {(result.best_epoch or 0) + 1})"),
        ("best checkpoint", str(result.best_checkpoint)),
        ("last checkpoint", str(result.last_checkpoint)),
    ]
    if result.pushed_to or result.push_error:
        retried = f"; {result.push_failures} failed pushes retried" if result.push_failures else ""
        where = result.pushed_to or "final push FAILED (the run is intact locally)"
        rows.append(("pushed to", where + retried))
    if result.tracker_errors:
        rows.append(("tracker errors", f"{result.tracker_errors} (last: {result.tracker_error})"))
    console.print(_table("ictal train", rows))
    if result.push_error:
        _error(result.push_error)
    if result.state == "stopped":
        _INTERRUPT_HINT[:] = [f"continue with `{result.resume_hint}`"]
        raise typer.Exit(ExitCode.INTERRUPTED)
    if result.push_error:
        raise typer.Exit(ExitCode.PARTIAL)


@app.command()
def sweep(
    vary: Annotated[
        list[str] | None,
        typer.Option("--vary", help="section.key=v1,v2,... (repeatable: every combination)."),
    ] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="Seeds 0..N-1 of every run.")] = None,
    parallel: Annotated[
        str, typer.Option(help="auto (as many as the budget admits) or at most N runs at once.")
    ] = "auto",
    cpus: Annotated[int | None, typer.Option(min=1, help="CPUs (default: all usable).")] = None,
    memory_gb: Annotated[
        float | None, typer.Option(min=0.01, help="Host memory (default 80 % of available).")
    ] = None,
    gpu_memory_gb: Annotated[
        float | None, typer.Option(min=0.01, help="GPU memory (default 90 %; CUDA only).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The sweep's directory under runs.root (default: a date).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue the sweep NAME (finished runs kept).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Many training runs on one machine inside a resource budget: a grid of ordinary
    `ictal train` runs admitted by measured usage (the capacity ramp), never freezing it."""
    cfg = _config(config, set_)
    import re

    from ictal.io.paths import writable_dir
    from ictal.orchestrate.sweep import default_budget, load_plan, plan_sweep, run_sweep
    from ictal.runs.directory import new_run_id

    budget = default_budget(cfg, cpus, memory_gb, gpu_memory_gb, parallel)
    root = writable_dir(cfg.runs.root, "runs.root")
    if resume is not None:
        if vary or seeds:
            _error("--resume continues a sweep as it was planned: drop --vary and --seeds")
            raise typer.Exit(ExitCode.USAGE)
        plan = load_plan(root, resume, budget)
    else:
        label = name or f"sweep-{new_run_id()}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", label):
            _error(f"--name {label!r}: use letters, digits, '_', '-' and '.'")
            raise typer.Exit(ExitCode.USAGE)
        plan = plan_sweep(cfg, root, label, config, list(set_ or []), list(vary or []), seeds,
                          budget)  # fmt: skip
    plan = run_sweep(plan, cfg, resume=resume is not None)
    t = Table(title=f"sweep {plan.directory.name}: runs by validation loss", title_justify="left")
    for col in ("rank", "run", "values", "status", "best val loss", "AUROC", "steps",
                "peak RSS", "note"):  # fmt: skip
        t.add_column(col)

    def key(m: object) -> tuple[int, float]:
        loss = (getattr(m, "metrics", None) or {}).get("best_val_loss")
        return (0 if isinstance(loss, float) else 1, loss if isinstance(loss, float) else 0.0)

    for rank, m in enumerate(sorted(plan.members, key=key), start=1):
        metrics = m.metrics or {}
        loss, auroc = metrics.get("best_val_loss"), metrics.get("val_auroc")
        t.add_row(
            str(rank), m.name, " ".join(m.overrides) or "(base)", m.status,
            "-" if loss is None else f"{loss:.4f}", "-" if auroc is None else f"{auroc:.3f}",
            str(metrics.get("steps", "-")),
            "-" if m.peak_rss_gb is None else f"{m.peak_rss_gb:.2f} GB", (m.error or "")[:70],
        )  # fmt: skip
    console = make_console()
    console.print(t)
    console.print(f"sweep.json: {plan.directory / 'sweep.json'}")
    failed = [m for m in plan.members if m.status != "done"]
    if failed:
        _error(f"{len(failed)} of {len(plan.members)} runs did not finish (see the table)")
        raise typer.Exit(ExitCode.PARTIAL)


@app.command()
def bench(
    batches: Annotated[int, typer.Option(min=1, help="Training batches to time.")] = 20,
    price_per_hour: Annotated[
        float | None, typer.Option(help="Machine price per hour, to project epoch cost.")
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option("--nproc", min=1, help="Time N ranks (torchrun): per-rank step and wait."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Time N training batches: s/batch, data-wait %, projected epoch time and cost."""
    if nproc is not None and nproc > 1:
        raise typer.Exit(_torchrun(nproc, "bench"))
    cfg = _config(config, set_)
    from ictal.train.throughput import run_bench

    run_bench(cfg, batches, price_per_hour, make_console())


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file to evaluate.")],
    split: Annotated[
        str | None, typer.Option(help="dev, eval or train (default evaluate.split).")
    ] = None,
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
    allow_version_mismatch: AllowMismatchOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Score a checkpoint on dev or eval with NEDC-style and SzCORE scorers.

    Without -c, a checkpoint inside a run directory is evaluated with that run's frozen
    config (runs/<id>/config.yaml), so the cache and post-processing match the training.
    A mixture cache is also scored per corpus, side by side; --corpus scores only some.
    """
    from ictal.runs.directory import run_of_checkpoint

    owner = run_of_checkpoint(checkpoint)
    if config is None and owner is not None:
        config = owner.config
    cfg = _config(config, set_)
    if split is not None and split not in ("dev", "eval", "train"):
        _error(f"--split must be dev, eval or train, got {split!r}")
        raise typer.Exit(ExitCode.USAGE)
    from ictal.evaluate.corpora import parse_corpus_names
    from ictal.evaluate.evaluation import evaluate as run_evaluate
    from ictal.evaluate.summary import corpus_table, summary_table

    corpora = parse_corpus_names(corpus)
    if corpus is not None and not corpora:
        _error("--corpus needs a corpus name")
        raise typer.Exit(ExitCode.USAGE)
    result = run_evaluate(
        cfg,
        checkpoint,
        split=split or cfg.evaluate.split,
        out=out,
        operating_points=operating_points,
        fix_hint=_fix_command("build", config, set_),
        allow_version_mismatch=allow_version_mismatch,
        corpora=corpora,
    )
    console = make_console()
    console.print(summary_table(result))
    by_corpus = corpus_table(result)
    if by_corpus is not None:
        console.print(by_corpus)
    console.print(f"scores: {result.scores_path}")
    if result.operating_points_path is not None:
        console.print(f"operating points: {result.operating_points_path}")
    if result.pushed_to:
        console.print(f"pushed to: {result.pushed_to}")
    if result.push_error:
        _error(result.push_error)
    if result.failed:
        _error(f"{len(result.failed)} recording(s) failed; see the log")
    if result.failed or result.push_error:
        raise typer.Exit(ExitCode.PARTIAL)


@app.command()
def detect(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="CKPT then INPUT... (EDF files, directories, list files, URLs); with "
            "--collect: detect output directories or sink URLs to merge."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output directory (resumable).")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="An ONNX export (`ictal export`) run with onnxruntime instead of a CKPT; "
            "PATHS are then all INPUTs.",
        ),
    ] = None,
    operating_points: Annotated[
        Path | None, typer.Option(help="Frozen operating points (default: the run's dev ones).")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Threshold instead of an operating point."),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel worker processes.")] = None,
    executor: Annotated[
        str | None, typer.Option(help="process (default), serial or ray; same results either way.")
    ] = None,
    address: AddressOpt = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep running: detect new files as they complete.")
    ] = False,
    save_probs: Annotated[
        bool, typer.Option("--save-probs", help="Also keep per-recording probabilities.")
    ] = False,
    redo: Annotated[
        bool, typer.Option("--redo", help="Recompute recordings already in the log.")
    ] = False,
    collect: Annotated[
        bool, typer.Option("--collect", help="Only merge the logs of PATHS into --out.")
    ] = False,
    prune_after_push: Annotated[
        bool,
        typer.Option(
            "--prune-after-push", help="Delete local sealed segments verified in the sink."
        ),
    ] = False,
    allow_version_mismatch: AllowMismatchOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run a trained detector over EDF archives (any layout): a durable record log (kill -9
    safe, resumable by default), then events.csv, NEDC and SzCORE files and summary.json."""
    cfg = _config(config, [*(set_ or []), *([f"ray.address={address}"] if address else [])])
    from ictal.detect.archive import collect as run_collect
    from ictal.detect.archive import detect as run_detect

    if operating_points is not None and threshold is not None:
        _error("give --operating-points or --threshold, not both")
        raise typer.Exit(ExitCode.USAGE)
    if collect:
        result = run_collect(paths, out)
    else:
        detector, inputs = (model, paths) if model else (Path(paths[0]), paths[1:])
        if not inputs:
            _error("detect needs CKPT (or --model DIR) and at least one INPUT (or --collect)")
            raise typer.Exit(ExitCode.USAGE)
        result = run_detect(
            cfg, detector, inputs, out, operating_points=operating_points,
            threshold=threshold, workers=workers, executor=executor, watch=watch,
            save_probs=save_probs, redo=redo, prune_after_push=prune_after_push,
            allow_version_mismatch=allow_version_mismatch,
        )  # fmt: skip
    summary = result.summary
    rows = [
        ("output", str(result.out)),
        ("recordings", f"{summary.recordings} ({summary.done} done, {len(summary.failed)} failed)"),
        ("this run", f"{result.detected} detected, {result.skipped} already in the log"),
        ("hours", f"{summary.hours:.2f}"),
        ("events", str(summary.events)),
    ]
    if result.postprocess:
        rows.append(("operating point", result.postprocess))
    if result.pushed_to or result.push_error:
        rows.append(("pushed to", result.pushed_to or "final push FAILED (results are local)"))
    console = make_console()
    console.print(_table("ictal detect" if not collect else "ictal detect --collect", rows))
    if summary.failed:
        t = Table(title=f"{len(summary.failed)} recordings failed", title_justify="left")
        t.add_column("recording")
        t.add_column("error")
        for key, reason in summary.failed:
            t.add_row(key, reason)
        console.print(t)
    if result.push_error:
        _error(result.push_error)
    raise typer.Exit(result.exit_code)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file to export.")],
    out: Annotated[
        Path, typer.Option("--out", help="New or empty directory: the model and its sidecar.")
    ],
    format_: Annotated[
        str, typer.Option("--format", help="onnx (runs in `ictal detect --model`) or torchscript.")
    ] = "onnx",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Export a checkpoint as ONNX or TorchScript with a JSON sidecar (preprocessing, windows,
    output rate, operating point), checked against torch on real windows of its cache.

    Without -c, the run's frozen config (else the checkpoint's own) finds the cache and the
    run's dev operating points.
    """
    from ictal.export.bundle import export_model

    result = export_model(checkpoint, format_, out, config=config, sets=set_ or [])
    point = ("dev-tuned: " if result.tuned else "NOT tuned: ") + result.operating_point
    rows = [
        ("model", str(result.model)),
        ("sidecar", str(result.sidecar)),
        ("check", f"max |logit diff| {result.max_diff:.2e} on {result.windows} cache windows"),
        ("operating point", point),
    ]
    make_console().print(_table("ictal export", rows))


@app.command()
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
        typer.Option(help="Comma-separated: ovlp,taes,epoch,dpalign,szcore (default: all)."),
    ] = None,
    missing_hyp: Annotated[
        str,
        typer.Option(
            "--missing-hyp", help="error (default), or empty: score a missing hypothesis as empty."
        ),
    ] = "error",
) -> None:
    """Score any system's annotations against a reference: NEDC v6.0.0 OVLP, TAES, EPOCH and
    DPALIGN, SzCORE events and samples, pooled over files (.csv_bi, .csv, .tsv)."""
    from ictal.events.scorers import LABELS
    from ictal.score.scoring import score as run_score

    result = run_score(
        ref, hyp, scorers=scorers, missing_hyp=missing_hyp, json_out=json_out, per_file=per_file
    )
    hours = next(iter(result.totals.values())).duration_s / 3600.0
    table = Table(
        title=f"ictal score: {result.files} files, {hours:.2f} h, pooled over files",
        title_justify="left",
    )
    for column in ("scorer", "sensitivity", "precision", "F1", "FA/24h", "hits", "misses",
                   "false alarms", "targets"):  # fmt: skip
        table.add_column(column, justify="left" if column == "scorer" else "right")

    def pct(v: float) -> str:
        return "n/a" if v != v else f"{100 * v:.2f}%"

    def num(v: float) -> str:
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"

    for name in result.scorers:
        c = result.totals[name]
        fa = "n/a" if c.fa_per_24h != c.fa_per_24h else f"{c.fa_per_24h:.2f}"
        f1 = "n/a" if c.f1 != c.f1 else f"{c.f1:.4f}"
        table.add_row(LABELS[name], pct(c.sensitivity), pct(c.precision), f1, fa,
                      num(c.hits), num(c.misses), num(c.false_alarms), str(c.n_ref))  # fmt: skip
    console = make_console()
    console.print(table)
    if "epoch" in result.scorers or "szcore_samples" in result.scorers:
        console.print("EPOCH counts 0.25 s epochs, SzCORE samples count seconds (1 Hz).")
    for note, n in sorted(result.notes.items()):
        typer.echo(f"note: {n} file(s): {note}", err=True)
    for path in (json_out, per_file):
        if path is not None:
            console.print(f"wrote {path}")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run or evaluation directory.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write a self-contained HTML report (training curves, scores, traces).

    An evaluation directory is reported with its run (its parent, or the run its scores
    name when that run lies under runs.root).
    """
    cfg = _config(config, set_)
    from ictal.evaluate.report import write_report

    path = write_report(run, Path(cfg.runs.root))
    make_console().print(f"report: {path}")


@app.command()
def status(
    where: Annotated[
        list[str] | None,
        typer.Argument(
            help="Runs directories and sink URLs (default runs.root, and sink.url when set)."
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON array of objects instead of a table.")
    ] = False,
    watch: Annotated[
        float | None, typer.Option("--watch", min=0.5, help="Refresh every S seconds.")
    ] = None,
    stalled_after: Annotated[
        float | None,
        typer.Option(
            "--stalled-after",
            min=1.0,
            help="Seconds without progress that make a live run stalled (default 5 beats).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Runs from every machine, from run directories and sinks alike: running, stale,
    stalled, done, failed, stopped. Exit 0 whatever their states, 2 when a WHERE cannot be
    read."""
    cfg = _config(config, set_)
    import json
    import time

    from rich.live import Live

    from ictal.runs.status import as_json, gather, status_table

    wheres = list(where or [cfg.runs.root, *([cfg.sink.url] if cfg.sink.url else [])])
    console = make_console()

    def once() -> tuple[object, list[str]]:
        rows, errors = gather(wheres, stalled_after_s=stalled_after, missing_ok=not where)
        if json_out:
            return json.dumps(as_json(rows), indent=2), errors
        return (status_table(rows) if rows else "no runs"), errors

    def show_errors(errors: list[str]) -> None:
        for line in errors:
            _error(line)

    if watch is None:
        shown, errors = once()
        if json_out:
            typer.echo(shown)
        else:
            console.print(shown)
        show_errors(errors)
        raise typer.Exit(ExitCode.USAGE if errors else ExitCode.OK)
    if console.is_terminal and not json_out:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                shown, errors = once()
                live.update(shown, refresh=True)  # type: ignore[arg-type]
                show_errors(errors)
                time.sleep(watch)
    while True:  # plain periodic output for logs and pipes
        shown, errors = once()
        if json_out:
            typer.echo(shown)
        else:
            console.print(f"-- {time.strftime('%Y-%m-%dT%H:%M:%S')}")
            console.print(shown)
        show_errors(errors)
        sys.stdout.flush()
        time.sleep(watch)


@app.command()
def doctor(
    for_: Annotated[
        str,
        typer.Option(
            "--for", help="The command to check for: build, stage, train, evaluate or detect."
        ),
    ] = "train",
    env_only: Annotated[
        bool, typer.Option("--env-only", help="Only the environment and device (image builds).")
    ] = False,
    lock: Annotated[
        Path | None,
        typer.Option(
            "--lock",
            help="Lock file to compare with (default: the project's requirements/runtime.lock).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check this machine for a command: the environment against the lock, the device, disk,
    corpus, cache and storage; exit 3 only for what would make the command fail."""
    from ictal.doctor import COMMANDS, failed

    if for_ not in COMMANDS:
        _error(f"--for must be one of {', '.join(COMMANDS)}, got {for_!r}")
        raise typer.Exit(ExitCode.USAGE)
    cfg = _config(config, set_)
    from ictal.doctor.diagnosis import diagnose, table

    checks = diagnose(cfg, for_, env_only=env_only, lock=lock)
    console = make_console()
    console.print(table(checks, for_, env_only))
    for c in checks:
        if c.fix and c.status in ("fail", "warn"):
            console.print(f"{c.status} {c.name}: fix: {c.fix}")
    bad = failed(checks)
    if bad:
        _error(f"not ready: {len(bad)} check(s) failed ({', '.join(c.name for c in bad)})")
        raise typer.Exit(ExitCode.PREFLIGHT)


@app.command()
def pull(
    run_url: Annotated[str, typer.Argument(help="URL of a pushed run (<sink.url>/<run id>).")],
    dest: Annotated[
        Path | None, typer.Argument(help="Local directory (default <runs.root>/<run id>).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fetch a pushed run (complete and verified once its final push is done, else what is
    there now), so `ictal report` and `ictal evaluate` work on it here."""
    cfg = _config(config, set_)
    from ictal.runs.sink import pull as run_pull

    name = run_url.rstrip("/").rsplit("/", 1)[-1]
    target = dest if dest is not None else Path(cfg.runs.root) / name
    result = run_pull(run_url, target)
    state = (
        "complete (verified against _PUSHED.json)"
        if result.complete
        else ("in progress: the run has not finished its final push; pull again for more")
    )
    rows = [
        ("from", result.source),
        ("into", str(result.dest)),
        ("copied", f"{result.files} files, {result.bytes / 1e6:.1f} MB"),
        ("unchanged", f"{result.unchanged} files"),
        ("state", state),
    ]
    make_console().print(_table("ictal pull", rows))


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like SIGINT's KeyboardInterrupt so every command unwinds the same way:
    workers are ended, partial work stays resumable, the exit code is 130."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"received {signal.Signals(signum).name}")


def _storage_setting(filename: str | None) -> str:
    """The config setting whose directory holds ``filename`` (cache.root, runs.root...)."""
    if not filename or not _CURRENT:
        return ""
    cfg = _CURRENT[0]
    target = os.path.abspath(filename)
    for name, root in (("cache.root", cfg.cache.root), ("runs.root", cfg.runs.root)):
        base = os.path.abspath(root)
        if target == base or target.startswith(base + os.sep):
            return name
    return ""


def _os_error(exc: OSError) -> int:
    """A storage error as one line naming the file, what the system said and the fix."""
    where = exc.filename or "a file"
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    setting = _storage_setting(exc.filename)
    named = f" (under {setting})" if setting else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        _error(f"disk full writing {where}{named}: {why}")
        typer.echo(
            "  fix: free space (or point the setting at a larger disk) and run the same "
            "command again: what was finished is kept",
            err=True,
        )
        return ExitCode.PREFLIGHT
    _error(f"cannot use {where}{named}: {why}")
    typer.echo(
        "  fix: point " + (setting or "the path") + " at a directory this process can read and "
        "write, or fix its permissions",
        err=True,
    )
    return ExitCode.USAGE


def run(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code: library errors, storage errors and
    interrupts become their documented codes with one redacted message (typer itself turns
    usage errors into 2 and KeyboardInterrupt into 130)."""
    try:
        app(args=argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except IctalError as exc:
        _error(str(exc))
        return int(exc.exit_code)
    except KeyboardInterrupt:  # raised outside a command (while parsing)
        code = ExitCode.INTERRUPTED
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                         errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT):  # fmt: skip
            return _os_error(exc)
        typer.echo(redact(traceback.format_exc()), err=True)
        _error(f"unexpected storage error: {exc}")
        return ExitCode.UNEXPECTED
    except Exception as exc:  # a bug: its traceback, credentials redacted, and exit 1
        typer.echo(redact(traceback.format_exc()), err=True)
        _error(f"unexpected {type(exc).__name__}: {exc}")
        return ExitCode.UNEXPECTED
    if code == ExitCode.INTERRUPTED:
        hint = _INTERRUPT_HINT[0] if _INTERRUPT_HINT else "run the same command again"
        typer.echo(redact(f"interrupted, resumable: {hint}"), err=True)
    return int(code)


def main() -> None:
    """Console-script entry point: SIGTERM unwinds like Ctrl-C; exit codes scripts trust."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)
    sys.exit(run())


if __name__ == "__main__":
    main()
