"""Loaders with defaults that keep the model fed, and a meter of time spent waiting for data.

Starved loaders (``num_workers=0``, no prefetch) were a measured failure of earlier pipelines.
Reading a cached window is one memcpy from the page cache, which numpy does without the GIL,
so the default backend is a pool of reader threads in the training process
(``ThreadLoader``): no batch crosses a process boundary. ``bench/loader.py`` measures it
against a sequential read (docs/benchmarks.md has the latest figures). The torch
``DataLoader`` with worker processes stays available (``loader.backend: processes``) for
datasets whose items cost Python time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal, TypeVar

import torch
import torch.utils.data

from ictal.data.dataset import collate_batch
from ictal.machine import usable_cpus

T = TypeVar("T")


def default_num_workers() -> int:
    """One worker per CPU but one (for the training process), at least 1, at most 8."""
    return min(8, max(1, usable_cpus() - 1))


Backend = Literal["threads", "processes"]


def default_num_threads() -> int:
    """Reader threads: one per CPU but one, at least 2 (reads overlap compute), at most 8."""
    return min(8, max(2, usable_cpus() - 1))


class ThreadLoader:
    """Batches of a batched dataset (``__getitems__``) read ahead by a pool of threads.

    Batches come in sampler order whatever the thread count; ``prefetch`` batches per thread
    are in flight. The sampler is iterated in the calling thread when an epoch starts, like
    the torch DataLoader does, so a resumable sampler behaves the same with either backend.
    A read error is raised in the training thread with its original traceback.
    """

    def __init__(
        self,
        dataset: Any,
        sampler: Iterable[int],
        *,
        batch_size: int,
        num_threads: int,
        prefetch_factor: int = 4,
        pin_memory: bool = False,
        timeout_s: float = 120,
        drop_last: bool = False,
    ) -> None:
        self._pool: ThreadPoolExecutor | None = None  # first: __del__ runs even if init fails
        if num_threads < 1:
            raise ValueError(f"a ThreadLoader needs at least one thread, got {num_threads}")
        if not hasattr(dataset, "__getitems__"):
            raise TypeError(
                "loader.backend=threads needs a dataset that reads whole batches "
                "(__getitems__); use loader.backend=processes for this one"
            )
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = batch_size
        self.num_workers = num_threads  # same name as the DataLoader's, for logs and checks
        self.prefetch = num_threads * prefetch_factor
        self.pin_memory = pin_memory
        self.timeout = timeout_s
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.sampler) if isinstance(self.sampler, Sized) else 0
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _read(self, ids: list[int]) -> Any:
        batch = self.dataset.__getitems__(ids)
        if self.pin_memory:
            batch = tuple(t.pin_memory() for t in batch)
        return batch

    def _batches(self) -> Iterator[list[int]]:
        ids: list[int] = []
        for i in self.sampler:
            ids.append(int(i))
            if len(ids) == self.batch_size:
                yield ids
                ids = []
        if ids and not self.drop_last:
            yield ids

    def __iter__(self) -> Iterator[Any]:
        if self._pool is None:  # threads live as long as the loader (persistent workers)
            self._pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="ictal-read")
        return self._epoch(self._pool, self._batches())

    def _epoch(self, pool: ThreadPoolExecutor, batches: Iterator[list[int]]) -> Iterator[Any]:
        pending: deque[Future[Any]] = deque()
        try:
            for ids in batches:
                pending.append(pool.submit(self._read, ids))
                if len(pending) >= self.prefetch:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
        finally:  # an abandoned epoch (stop, error) drops the reads not started yet
            for fut in pending:
                fut.cancel()

    def _result(self, fut: Future[Any]) -> Any:
        try:
            return fut.result(timeout=self.timeout or None)
        except FutureTimeout:
            raise TimeoutError(
                f"no batch from the reader threads in {self.timeout:g} s (loader.timeout_s): "
                "is the cache on a hung network mount?"
            ) from None

    def close(self) -> None:
        """Stop the reader threads (they finish the reads in progress)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __del__(self) -> None:
        self.close()


def make_loader(
    dataset: torch.utils.data.Dataset,
    sampler: Iterable[int],
    *,
    batch_size: int,
    num_workers: int | None = None,
    backend: Backend = "threads",
    prefetch_factor: int = 4,
    persistent_workers: bool = True,
    pin_memory: bool | None = None,
    timeout_s: float = 120,
    drop_last: bool = False,
    multiprocessing_context: str | None = None,
) -> torch.utils.data.DataLoader | ThreadLoader:
    """Batches of ``dataset`` in the order of ``sampler`` (which yields window ids).

    ``backend="threads"`` (for datasets that read whole batches) uses ``num_workers`` reader
    threads, ``"processes"`` a torch DataLoader with that many worker processes;
    ``num_workers=None`` picks the backend's default, 0 reads in the calling thread.
    ``pin_memory=None`` pins when CUDA is available.
    """
    if backend not in ("threads", "processes"):
        raise ValueError(f"loader backend must be 'threads' or 'processes', got {backend!r}")
    threads = backend == "threads"  # with workers: ThreadLoader, which needs __getitems__
    if num_workers is None:
        workers = default_num_threads() if threads else default_num_workers()
    else:
        workers = num_workers
    if workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {workers}")
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    if threads and workers > 0:
        return ThreadLoader(
            dataset,
            sampler,
            batch_size=batch_size,
            num_threads=workers,
            prefetch_factor=prefetch_factor,
            pin_memory=pin,
            timeout_s=timeout_s,
            drop_last=drop_last,
        )
    kwargs: dict = {}
    if workers > 0:
        kwargs = {
            "prefetch_factor": prefetch_factor,
            "persistent_workers": persistent_workers,
            "timeout": timeout_s,
            "multiprocessing_context": multiprocessing_context,
        }
    if getattr(dataset, "batched", False):
        kwargs["collate_fn"] = collate_batch  # the dataset fills whole batches itself
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=drop_last,
        **kwargs,
    )


class DataWaitMeter:
    """Fraction of wall time the training loop spends waiting for its next batch.

    Wrap the loader (``for batch in meter.wrap(loader)``); ``fraction()`` is wait time over
    total time since the last ``reset()`` (the heartbeat resets it each interval).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start a new measuring interval."""
        self.wait_s = 0.0
        self.batches = 0
        self._t0 = time.perf_counter()

    @property
    def total_s(self) -> float:
        """Wall time since the last reset."""
        return time.perf_counter() - self._t0

    def fraction(self) -> float:
        """Waiting time over total time in this interval (0.0 before any time has passed)."""
        total = self.total_s
        return min(1.0, self.wait_s / total) if total > 0 else 0.0

    def wrap(self, batches: Iterable[T]) -> Iterator[T]:
        """Yield from ``batches``, timing each wait for the next one (worker start included)."""
        t = time.perf_counter()
        it = iter(batches)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            self.wait_s += time.perf_counter() - t
            self.batches += 1
            yield batch
            t = time.perf_counter()
