"""What a sweep may use of this machine, and each run's share of the CPUs: the budget is
checked against the config's own limits before any run starts."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from ictal.config import Config
from ictal.errors import UsageError
from ictal.machine import torch_may_see_a_gpu, usable_cpus

GB = 1e9


@dataclass
class Budget:
    """What the sweep may use of this machine."""

    cpus: int
    memory_gb: float
    gpu_memory_gb: float | None  # None on a machine without CUDA
    parallel: int | None  # None: as many as the budget admits
    cpus_given: bool = True  # --cpus was given (else: every usable CPU of this machine)


def default_budget(cfg: Config, cpus: int | None, memory_gb: float | None,
                   gpu_memory_gb: float | None, parallel: str) -> Budget:  # fmt: skip
    """The budget from the flags, else all usable CPUs, ``sweep.memory_fraction`` of the
    available memory and ``sweep.gpu_memory_fraction`` of the GPU's."""
    if parallel != "auto" and (not parallel.isdigit() or int(parallel) < 1):
        raise UsageError(f"--parallel {parallel!r}: use auto or a number of runs (1 or more)")
    available = psutil.virtual_memory().available / GB
    gpu = None
    try:
        if torch_may_see_a_gpu():  # a CPU build is not imported just to say so (1-2 s)
            import torch

            if torch.cuda.is_available():
                total = torch.cuda.get_device_properties(0).total_memory / GB
                gpu = gpu_memory_gb or total * cfg.sweep.gpu_memory_fraction
    except ImportError:
        gpu = None
    return Budget(
        cpus=cpus or usable_cpus(),
        memory_gb=memory_gb or available * cfg.sweep.memory_fraction,
        gpu_memory_gb=gpu,
        parallel=None if parallel == "auto" else int(parallel),
        cpus_given=cpus is not None,
    )


def _largest(section: str, name: str) -> int:
    """The largest value the config allows for ``section.name`` (its ``le`` bound)."""
    model = Config.model_fields[section].annotation
    info = model.model_fields[name]  # type: ignore[union-attr]
    return min(int(m.le) for m in info.metadata if getattr(m, "le", None) is not None)


def split_share(share: int) -> tuple[int, int]:
    """A run's CPUs as (torch threads, loader workers): half each, the odd one to torch."""
    loader = max(1, share // 2)
    return max(1, share - loader), loader


def run_share(budget: Budget, runs: int) -> int:
    """The CPUs of one run: the budget over the runs at once (``--parallel``, or as many as
    there are runs and CPUs). ``train.threads`` and ``loader.num_workers`` have limits: a
    share over what one run can take is refused (exit 2) before anything starts when
    ``--cpus`` asked for it, and is that most when the budget is the whole machine."""
    targets = budget.parallel or min(runs, budget.cpus)
    share = max(1, budget.cpus // max(1, targets))
    most_threads, most_loader = _largest("train", "threads"), _largest("loader", "num_workers")
    most = min(2 * most_loader + 1, 2 * most_threads)  # the largest share split_share keeps in
    if share > most and not budget.cpus_given:
        return most
    if share > most:
        threads, loader = split_share(share)
        raise UsageError(
            f"--cpus {budget.cpus} gives each of {targets} run(s) at once {share} CPUs "
            f"(train.threads={threads}, loader.num_workers={loader}), more than one run takes "
            f"(train.threads at most {most_threads}, loader.num_workers at most {most_loader}): "
            f"give --cpus at most {most * targets}, or a larger --parallel"
        )
    return share
