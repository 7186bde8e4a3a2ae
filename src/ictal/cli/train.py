"""Commands of training: train, sweep, bench."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ictal.cli import render
from ictal.cli.app import ConfigOpt, SetOpt, TrustOpt, fix_command, load
from ictal.cli.exits import command
from ictal.errors import Ending

NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc", min=1, help="Train on N processes (DDP via torchrun: gloo on CPU, NCCL)."
    ),
]


def _on_ranks(nproc: int) -> int:
    """This command line again, on ``nproc`` ranks under torchrun: its exit code."""
    from ictal.orchestrate.launch import torchrun

    return torchrun(nproc, sys.argv[1:])


@command()
def train(
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the most recent unfinished run exactly.")
    ] = False,
    run: Annotated[
        Path | None, typer.Option("--run", help="Resume this run directory (implies --resume).")
    ] = None,
    nproc: NprocOpt = None,
    trust_model_code: TrustOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Preflight the cache, then train (never preprocesses; kill -9 safe; SIGTERM saves)."""
    if nproc is not None and nproc > 1:
        return _on_ranks(nproc)
    cfg = load(config, set_)
    from ictal.train.loop import train as run_training

    trusted = " --trust-model-code" if trust_model_code else ""
    result = run_training(
        cfg,
        resume=run if run is not None else resume,
        fix_hint=fix_command("build", config, set_),
        command=fix_command("train", config, set_) + trusted,
        trust_model_code=trust_model_code,
    )
    if result.rank == 0:  # rank 0 speaks for a distributed run
        render.trained(result)
    return result


@command()
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
    evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate",
            help="Then score each run on dev and on eval (dev's points) and compare them.",
        ),
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Many training runs on one machine inside a resource budget: a grid of ordinary
    `ictal train` runs admitted by measured usage (the capacity ramp), never freezing it."""
    cfg = load(config, set_)
    from ictal.orchestrate.budget import default_budget
    from ictal.orchestrate.sweep import open_sweep, run_sweep

    budget = default_budget(cfg, cpus, memory_gb, gpu_memory_gb, parallel)
    plan = open_sweep(cfg, budget, name=name, resume=resume, base_config=config,
                      base_sets=list(set_ or []), varies=list(vary or []), seeds=seeds)  # fmt: skip
    plan = run_sweep(plan, cfg, resume=resume is not None)
    if evaluate:
        from ictal.orchestrate.compare import compare

        rows, problems = compare(plan)
        render.swept(plan)
        render.compared(rows, problems, plan.directory)
        if problems:
            return Ending.PARTIAL  # a run without its scores: the table says which and why
        return plan
    render.swept(plan)
    return plan


@command()
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
) -> object:
    """Time N training batches: s/batch, data-wait %, projected epoch time and cost."""
    if nproc is not None and nproc > 1:
        return _on_ranks(nproc)
    cfg = load(config, set_)
    from ictal.train.throughput import run_bench

    run_bench(cfg, batches, price_per_hour, render.show())
    return None
