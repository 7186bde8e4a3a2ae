"""One TrainState, saved atomically as a checkpoint that loads with ``weights_only=True``
(the format and its readers live in ``ictal.models.checkpoint``).

The checkpoint is a dict of tensors and plain containers (no pickled objects):
model identity (name, params, channels, rate, stride, window), weights, resolved config,
cache key, and the training state that makes resume exact (optimizer, scheduler, scaler,
sampler position as samples actually trained, RNG states, counters, early stopping).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from ictal import __version__
from ictal.data.sampler import BalancedSampler
from ictal.errors import UsageError
from ictal.io.atomic import atomic_write_with
from ictal.models.checkpoint import FORMAT, ModelSpec, check_format


def capture_rng() -> dict[str, Any]:
    """Python, numpy, torch CPU and CUDA generator states as tensors and plain values."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": list(mt), "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(rng: dict[str, Any]) -> None:
    """Inverse of capture_rng (CUDA states only when the same number of devices exists)."""
    py = rng["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = rng["numpy"]
    np.random.set_state(
        (
            n["kind"],
            np.asarray(n["keys"], dtype=np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(rng["torch"])
    cuda = rng.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _cpu(tree: Any) -> Any:
    """Copy every tensor in a nested state dict to the CPU (portable checkpoints)."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: _cpu(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_cpu(v) for v in tree)
    return tree


@dataclass
class TrainState:
    """Everything a run needs to continue exactly: the objects being trained and the counters."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: BalancedSampler
    spec: ModelSpec
    batch_size: int
    run_id: str
    config: dict[str, Any]
    cache_key: str
    epoch: int = 0  # epoch in progress (0-based); epochs before it are trained and validated
    step: int = 0  # optimizer steps done in the whole run (skipped non-finite ones included)
    step_in_epoch: int = 0  # batches trained in the current epoch
    best_metric: float | None = None  # best validation loss so far
    best_epoch: int | None = None
    bad_epochs: int = 0  # epochs since the best one (early stopping)
    nonfinite_total: int = 0
    nonfinite_in_a_row: int = 0
    samples_seen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1  # ranks training together (the checkpoint resumes with the same)
    ddp: nn.Module | None = None  # the DistributedDataParallel wrapper when world_size > 1

    @property
    def forward_model(self) -> nn.Module:
        """What a training step calls: the DDP wrapper on several ranks, else the model."""
        return self.ddp if self.ddp is not None else self.model

    def consumed(self) -> int:
        """Samples of this epoch's draw already trained (never the loader's read-ahead)."""
        return min(self.step_in_epoch * self.batch_size, len(self.sampler))

    def checkpoint(self, rngs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The checkpoint dict: tensors and plain values only (``rngs``: every rank's RNG
        states, when several ranks train)."""
        sampler = {"epoch": self.epoch, "position": self.consumed()}
        return {
            "format": FORMAT,
            "model_name": self.spec.name,
            "model_params": dict(self.spec.params),
            "model_source": self.spec.source,
            "n_channels": self.spec.n_channels,
            "fs": float(self.spec.fs),
            "output_stride": self.spec.output_stride,
            "window": self.spec.window,
            "model": _cpu(self.model.state_dict()),
            "config": self.config,
            "cache_key": self.cache_key,
            "run_id": self.run_id,
            "epoch": self.epoch,
            "step": self.step,
            "step_in_epoch": self.step_in_epoch,
            "batch_size": self.batch_size,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_in_a_row": self.nonfinite_in_a_row,
            "samples_seen": self.samples_seen,
            "optimizer": _cpu(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": sampler,
            "rng": capture_rng(),
            "rng_ranks": rngs or [],
            "world_size": self.world_size,
            "time": time.time(),
            "ictal_version": __version__,
            "torch_version": str(torch.__version__),
            "extra": self.extra,
        }

    def save(self, path: str | Path, rngs: list[dict[str, Any]] | None = None) -> Path:
        """Write the checkpoint atomically (temp file, fsync, rename, fsync dir)."""
        ckpt = self.checkpoint(rngs)

        def write(fh: IO[bytes]) -> None:
            torch.save(ckpt, fh)

        return atomic_write_with(path, write)

    def restore(self, ckpt: dict[str, Any], rank: int = 0) -> None:
        """Load a checkpoint of the same run into this state (weights, optimizer, RNG, ...);
        a run trained on N ranks resumes on N ranks, each with its own RNG states."""
        check_format(ckpt)
        trained_on = int(ckpt.get("world_size", 1))
        if trained_on != self.world_size:
            raise UsageError(
                f"this run was trained on {trained_on} process(es); resume it on the same "
                f"number (now {self.world_size}): exact resume needs the same ranks"
            )
        if ckpt["batch_size"] != self.batch_size:
            raise UsageError(
                f"checkpoint batch size {ckpt['batch_size']} differs from {self.batch_size}"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        for name in (
            "epoch", "step", "step_in_epoch", "best_metric", "best_epoch", "bad_epochs",
            "nonfinite_total", "nonfinite_in_a_row", "samples_seen",
        ):  # fmt: skip
            setattr(self, name, ckpt[name])
        self.extra = dict(ckpt.get("extra") or {})
        rngs = ckpt.get("rng_ranks") or []
        restore_rng(rngs[rank] if self.world_size > 1 and len(rngs) > rank else ckpt["rng"])


def is_better(value: float, best: float | None) -> bool:
    """True when a finite validation loss improves on the best so far."""
    return math.isfinite(value) and (best is None or value < best)
