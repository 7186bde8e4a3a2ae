"""Command line: parse, load config, call the library, print, exit with a code scripts trust."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ictal import __version__
from ictal.config import Config, ConfigError, load_config
from ictal.errors import ExitCode, IctalError
from ictal.ui import log, make_console, setup_logging

app = typer.Typer(
    name="ictal",
    help="Train seizure detectors on scalp EEG: synth -> census -> build -> train -> evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (defaults are built in)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field: section.key=value (repeatable, in order)."),
]


def _config(config: Path | None, sets: list[str] | None) -> Config:
    """Load the config or exit 2 with the message naming the field."""
    try:
        return load_config(config, sets or [])
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from exc


def _not_yet(command: str) -> None:
    typer.echo(f"error: `ictal {command}` is not available in this version yet", err=True)
    raise typer.Exit(ExitCode.USAGE)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Ictal command line."""
    setup_logging()
    if version:
        typer.echo(__version__)
        raise typer.Exit(ExitCode.OK)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Directory to write the corpus into.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 12,
    hours: Annotated[float, typer.Option(min=0.01, help="Total recording hours.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    quirks: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of files with a real-world defect.")
    ] = 0.0,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write a synthetic corpus in the exact TUSZ layout and formats."""
    _config(config, set_)
    from ictal.corpus.synth import synthesize

    truth = synthesize(out, patients=patients, hours=hours, seed=seed, quirks=quirks)
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
    """Inventory and checks of a corpus from headers and annotations only."""
    cfg = _config(config, set_)
    from ictal.corpus.census import census_to_dict, print_census, run_census
    from ictal.io.atomic import atomic_write_json

    root = corpus or cfg.corpus.root
    result = run_census(root, window_s=cfg.windows.length_s, label_source=cfg.labels.source)
    print_census(result, make_console())
    if json_out is not None:
        atomic_write_json(json_out, census_to_dict(result))
    raise typer.Exit(result.exit_code)


@app.command()
def build(
    workers: Annotated[int | None, typer.Option(help="Parallel worker processes.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Build the cache for the config, in parallel and resumable."""
    _config(config, set_)
    _not_yet("build")


@app.command()
def verify(
    full: Annotated[bool, typer.Option("--full", help="Also check content hashes (L1).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check the cache for this config: L0 always, content hashes with --full."""
    _config(config, set_)
    _not_yet("verify")


@app.command()
def explain(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Say why the cache for this config is or is not there, with a config diff."""
    _config(config, set_)
    _not_yet("explain")


@app.command()
def gc(
    yes: Annotated[bool, typer.Option("--yes", help="Really remove (default: list only).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Remove caches other than the current one, only when asked explicitly."""
    _config(config, set_)
    _not_yet("gc")


@app.command()
def train(
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last run exactly.")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Preflight the cache, then train."""
    _config(config, set_)
    _not_yet("train")


@app.command()
def bench(
    batches: Annotated[int, typer.Option(min=1, help="Training batches to time.")] = 20,
    price_per_hour: Annotated[
        float | None, typer.Option(help="Machine price per hour, to project epoch cost.")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Time N training batches: s/batch, data-wait %, projected epoch time."""
    _config(config, set_)
    _not_yet("bench")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file to evaluate.")],
    split: Annotated[str | None, typer.Option(help="dev or eval.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    operating_points: Annotated[
        Path | None, typer.Option(help="Frozen operating points chosen on dev.")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Score a checkpoint on dev or eval with NEDC-style and SzCORE scorers."""
    _config(config, set_)
    _not_yet("evaluate")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run or evaluation directory.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write a self-contained HTML report."""
    _config(config, set_)
    _not_yet("report")


@app.command()
def status(
    where: Annotated[str | None, typer.Argument(help="Runs root (default runs.root).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Runs and their heartbeats: running, stale, stalled, done, failed."""
    _config(config, set_)
    _not_yet("status")


def main() -> None:
    """Console-script entry point: library errors become their exit codes."""
    try:
        app()
    except IctalError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(int(exc.exit_code))


if __name__ == "__main__":
    main()
