"""Commands of the cache: build, verify, explain, gc, publish, stage."""

from __future__ import annotations

from typing import Annotated

import typer

from ictal.cli import render
from ictal.cli.app import AddressOpt, ConfigOpt, SetOpt, fix_command, load
from ictal.cli.exits import command
from ictal.errors import Ending, PreflightError
from ictal.ui import log

WorkersOpt = Annotated[
    int | None, typer.Option(min=1, help="Parallel worker processes (cache.workers).")
]


@command()
def build(
    workers: WorkersOpt = None,
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
) -> object:
    """Build the cache for the config, in parallel and resumable."""
    cfg = load(config, set_, {"cache.workers": workers, "cache.executor": executor,
                              "ray.address": address,
                              "cache.retry_failed": True if retry_failed else None})  # fmt: skip
    from ictal.cache.build import build_cache

    report = build_cache(cfg)
    render.build(report, cfg.cache.max_failed_fraction, cfg.cache.retry_failed)
    return report


@command()
def verify(
    full: Annotated[bool, typer.Option("--full", help="Also check content hashes (L1).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Check the cache for this config: L0 always, content hashes with --full."""
    cfg = load(config, set_)
    from ictal.cache.locate import locate
    from ictal.cache.manifest import open_cache
    from ictal.cache.verify import format_problems, verify_l0, verify_l1
    from ictal.parallel.engines import cache_workers
    from ictal.ui import progress

    located = locate(cfg)
    if not located.committed or located.path is None:
        raise PreflightError(
            f"no committed cache for this config under {cfg.cache.root}",
            f"run `{fix_command('build', config, set_)}` (`ictal explain` says why)",
        )
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
    if problems:
        render.problems(format_problems(problems))
        raise PreflightError(f"{len(problems)} problem(s) in {located.path}")
    render.verified(str(located.path), level, open_cache(located.path).manifest)
    return None


@command()
def explain(config: ConfigOpt = None, set_: SetOpt = None) -> object:
    """Say why the cache for this config is or is not there, with a config diff."""
    cfg = load(config, set_)
    from ictal.cache.explain import explain as explain_cache

    result = explain_cache(cfg)
    stage = None
    if cfg.cache.remote:
        stage_cmd = fix_command("stage", config, set_)
        stage = f"or, if it is published at {cfg.cache.remote}: {stage_cmd}"
    render.explained(result, cfg.cache.root, fix_command("build", config, set_), stage)
    return Ending.DONE if result.located.committed else Ending.REFUSED


@command()
def gc(
    yes: Annotated[bool, typer.Option("--yes", help="Really remove (default: list only).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Remove caches other than the current one, only when asked explicitly."""
    cfg = load(config, set_)
    from ictal.cache.gc import plan_gc, remove

    plan = plan_gc(cfg)
    render.gc_plan(plan, cfg.cache.root, removing=yes)
    if yes and plan.removals:
        remove(plan.removals)
        render.gc_done(len(plan.removals))
    return None


@command()
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
) -> object:
    """Upload this config's verified cache to <URL>/<key16>/ (resumable, manifest last)."""
    cfg = load(config, set_)
    from ictal.cache.remote import publish as run_publish
    from ictal.parallel.engines import cache_workers

    result = run_publish(cfg, to, workers=cache_workers(cfg.cache.workers), force=force)
    render.transfer(result, "published", f"{result.remote} is already published (same manifest)")
    return None


@command()
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
) -> object:
    """Fetch a published cache into cache.root, verify every byte (L1), then commit it."""
    cfg = load(config, set_)
    from ictal.cache.remote import stage as run_stage
    from ictal.parallel.engines import cache_workers

    result = run_stage(cfg, from_, key=key, workers=cache_workers(cfg.cache.workers))
    render.transfer(result, "staged (L0 + L1 verified)", f"{result.local} is already staged")
    return None
