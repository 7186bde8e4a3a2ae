"""DataLoader with defaults that keep the model fed, and a meter of time spent waiting for data.

Starved loaders (``num_workers=0``, no prefetch) were a measured failure (DESIGN.md); the
defaults here use the CPUs, prefetch, keep workers alive across epochs and pin memory on CUDA.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch
import torch.utils.data

from ictal.data.dataset import collate_batch

T = TypeVar("T")


def default_num_workers() -> int:
    """One worker per CPU but one (for the training process), at least 1, at most 8."""
    return min(8, max(1, (os.cpu_count() or 1) - 1))


def make_loader(
    dataset: torch.utils.data.Dataset,
    sampler: torch.utils.data.Sampler[int],
    *,
    batch_size: int,
    num_workers: int | None = None,
    prefetch_factor: int = 4,
    persistent_workers: bool = True,
    pin_memory: bool | None = None,
    timeout_s: float = 120,
    drop_last: bool = False,
    multiprocessing_context: str | None = None,
) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` in the order of ``sampler`` (which yields window ids).

    ``num_workers=None`` picks ``default_num_workers()``; ``pin_memory=None`` pins when CUDA
    is available. With ``num_workers=0`` the worker-only options are dropped.
    """
    workers = default_num_workers() if num_workers is None else num_workers
    if workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {workers}")
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
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
