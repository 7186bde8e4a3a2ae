"""Executors run one function over many build tasks; a cluster engine can be added later.

The interface is deliberately tiny (`map_unordered`) so a Ray or Dask executor only has to
ship the same task function; the output bytes never depend on which executor ran it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Single-threaded math libraries in workers: parallelism comes from processes, and results
# must not depend on how a BLAS splits work between threads.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


class Executor(Protocol):
    """Runs fn over items and yields results as they finish (any order)."""

    workers: int

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...


class SerialExecutor:
    """Runs tasks in this process, one after another (debugging, tiny corpora)."""

    workers = 1

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)


def _init_worker() -> None:
    os.environ.update(SINGLE_THREAD_ENV)


class ProcessExecutor:
    """Local worker processes (spawned, so BLAS reads the single-thread settings at import)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
        os.environ.update(SINGLE_THREAD_ENV)  # inherited by spawned children
        try:
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker
            ) as pool:
                yield from _bounded(pool, fn, iter(items), 2 * self.workers)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _bounded(
    pool: ProcessPoolExecutor, fn: Callable[[T], R], items: Iterator[T], limit: int
) -> Iterator[R]:
    """Keep at most `limit` tasks in flight so a kill loses little and memory stays flat."""
    pending: set[Future[R]] = set()
    for item in items:
        pending.add(pool.submit(fn, item))
        if len(pending) >= limit:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            yield f.result()


def make_executor(kind: str, workers: int | None) -> Executor:
    """The executor named in the config; workers default to the CPU count."""
    n = workers or os.cpu_count() or 1
    if kind == "serial":
        return SerialExecutor()
    return ProcessExecutor(n)
