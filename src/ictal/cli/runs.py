"""Commands about runs wherever they are: status, pull."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ictal.cli import render
from ictal.cli.app import ConfigOpt, SetOpt, load
from ictal.cli.exits import command
from ictal.errors import UsageError
from ictal.ui import echo


@command()
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
) -> object:
    """Runs from every machine, from run directories and sinks alike: running, stale,
    stalled, done, failed, stopped. Exit 0 whatever their states, 2 when a WHERE cannot be
    read."""
    cfg = load(config, set_)
    from rich.live import Live

    from ictal.runs.status import as_json, gather, status_view

    wheres = list(where or [cfg.runs.root, *([cfg.sink.url] if cfg.sink.url else [])])
    console = render.show()

    def once() -> tuple[object, list[str]]:
        rows, errors = gather(wheres, stalled_after_s=stalled_after, missing_ok=not where)
        if json_out:
            return json.dumps(as_json(rows), indent=2), errors
        return status_view(rows), errors

    def show_errors(errors: list[str]) -> None:
        for line in errors:
            render.error(line)

    if watch is None:
        shown, errors = once()
        if json_out:
            echo(shown)
        else:
            console.print(shown)
        if errors:
            show_errors(errors[:-1])
            raise UsageError(errors[-1])
        return None
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
            echo(shown)
        else:
            console.print(f"-- {time.strftime('%Y-%m-%dT%H:%M:%S')}")
            console.print(shown)
        show_errors(errors)
        sys.stdout.flush()
        time.sleep(watch)


@command()
def pull(
    run_url: Annotated[str, typer.Argument(help="URL of a pushed run (<sink.url>/<run id>).")],
    dest: Annotated[
        Path | None, typer.Argument(help="Local directory (default <runs.root>/<run id>).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Fetch a pushed run (complete and verified once its final push is done, else what is
    there now), so `ictal report` and `ictal evaluate` work on it here. RUN_URL's last part
    must be a plain run name; objects that are not the run's own files are named and skipped
    (exit 4)."""
    cfg = load(config, set_)
    from ictal.runs.sink import pull as run_pull
    from ictal.runs.sink import run_url as checked_url

    url, name = checked_url(run_url)
    target = dest if dest is not None else Path(cfg.runs.root) / name
    result = run_pull(url, target)
    render.pulled(result)
    return result
