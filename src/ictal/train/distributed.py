"""Training on several processes (``torchrun --nproc-per-node N -m ictal train``, or
``ictal train --nproc N``): DistributedDataParallel over gloo on the CPU and NCCL on CUDA.

One small object, ``Ranks``, is what the loop knows of it: which rank this is, and the few
agreements the ranks must make together (a step's loss and flags, validation sums, the RNG
states for a checkpoint). With one process every call is a no-op, so the CPU test path and
the GPU path are the same code. Rank 0 alone writes the run directory.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ictal.errors import UsageError
from ictal.parallel.supervisor import signal_on_parent_death


@dataclass
class Ranks:
    """This process's place among the ranks of one training run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes checkpoints, metrics, heartbeat and pushes."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def agree(self, values: Sequence[float]) -> list[float]:
        """The sums over the ranks of ``values`` (float64), the same on every rank."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]

    def agree_counts(self, counts: np.ndarray) -> np.ndarray:
        """Integer arrays (histograms) summed over the ranks."""
        if not self.active:
            return counts
        t = torch.from_numpy(np.ascontiguousarray(counts, dtype=np.int64)).to(self._device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().numpy()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def launched() -> bool:
    """True under torchrun (or any launcher that sets WORLD_SIZE above 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device, timeout_s: float) -> Ranks:
    """This process's rank, after joining the group when launched on several (gloo on the
    CPU, NCCL on CUDA; a rank that does not answer within ``timeout_s`` ends the job with an
    error instead of a hang)."""
    if not launched():
        return Ranks()
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError) as exc:
        raise UsageError(f"WORLD_SIZE is set but RANK is not usable ({exc}): use torchrun") from exc
    _stop_with_launcher()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout_s))
    return Ranks(rank, world, local)


def _stop_with_launcher() -> None:
    """SIGTERM to this rank when its launcher dies (it then checkpoints with the others and
    stops), so no rank trains on as an orphan."""
    signal_on_parent_death(signal.SIGTERM)


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """The device of this rank (its own GPU on CUDA)."""
    return torch.device("cuda", ranks.local_rank) if device.type == "cuda" else device


def wrap(model: torch.nn.Module, device: torch.device, ranks: Ranks) -> torch.nn.Module | None:
    """The DistributedDataParallel wrapper of ``model`` when several ranks train, else None."""
    if not ranks.active:
        return None
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def window_hash(ids: np.ndarray) -> int:
    """An order-free hash of a set of window ids (sum of splitmix64 mod 2**48): the hashes
    of disjoint shares add up to the hash of their union, so the windows the ranks trained
    can be compared with one process's."""
    x = ids.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return int(np.sum(x & np.uint64((1 << 48) - 1), dtype=np.uint64)) % (1 << 48)
