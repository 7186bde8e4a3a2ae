"""Which engine runs a command's tasks: the caller itself (serial), local worker processes
(the default), or a Ray cluster; and how many workers by default."""

from __future__ import annotations

from typing import Any

from ictal.machine import usable_cpus
from ictal.parallel.cluster import RayExecutor
from ictal.parallel.executors import Executor, ProcessExecutor, SerialExecutor


def cache_workers(requested: int | None) -> int:
    """Workers of cache work (build, verify --full, publish, stage): the number asked for
    (``--workers`` or ``cache.workers``), else one per usable CPU."""
    return requested or usable_cpus()


def pool_workers(requested: int | None, tasks: int) -> int:
    """Workers of a local pool for ``tasks`` tasks: the number asked for, else the default
    count of ``cache_workers`` but no more than there are tasks (a worker with nothing to do
    still pays its start: for detect, torch's import, 1-2 s)."""
    return requested or max(1, min(cache_workers(None), tasks))


def make_executor(
    kind: str, workers: int | None, ray: Any = None, *, coordinator_works: bool = False
) -> Executor:
    """The executor named in the config, with ``cache_workers(workers)`` workers; ``ray`` is
    the config's ray section (address, CPUs and memory per task, retries). With
    ``coordinator_works`` the local executor counts the calling process as one worker."""
    n = cache_workers(workers)
    if kind == "serial":
        return SerialExecutor()
    if kind == "ray":
        return RayExecutor(
            workers,
            getattr(ray, "address", None),
            cpus_per_task=getattr(ray, "cpus_per_task", 1.0),
            memory_gb_per_task=getattr(ray, "memory_gb_per_task", None),
            max_retries=getattr(ray, "max_retries", 3),
        )
    return ProcessExecutor(n, coordinator_works=coordinator_works)
