"""Building a run's parts from the config: model, optimiser state, seeds, determinism.

Shared by ``ictal train`` and ``ictal bench`` so both measure the same thing.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ictal.cache.manifest import CacheView
from ictal.config import Config, TrainConfig
from ictal.data.windows import window_samples
from ictal.models.checkpoint import ModelSpec
from ictal.models.contract import check_contract
from ictal.models.registry import Builder, ModelSource, construct, resolve
from ictal.models.trust import ModelTrust
from ictal.train.feed import TrainData
from ictal.train.optimizer import EagerAdamW
from ictal.train.state import TrainState
from ictal.ui import log


def _resolve(cfg: Config) -> tuple[Builder, ModelSource]:
    """The configured model's builder and source. The config a run trains with is the user's
    own, or a resumed run's frozen one that ``resume_config`` allowed: it names its code."""
    return resolve(cfg.model.name, ModelTrust(named=cfg.model.name))


def make_model(cfg: Config, view: CacheView) -> nn.Module:
    """The configured model for the cache's channels and rate, checked against the model
    contract on a trial batch of one training window before anything trains (exit 3)."""
    builder, _ = _resolve(cfg)
    n_channels = len(view.channels)
    model = construct(builder, cfg.model.name, n_channels, view.fs, cfg.model.params)
    window, _ = window_samples(cfg.windows.length_s, cfg.windows.stride_s, view.fs)
    check_contract(model, cfg.model.name, n_channels, window)
    return model


def data_stride(model: nn.Module) -> int:
    """Input samples per output step of a model."""
    return int(model.output_stride)  # type: ignore[arg-type]


def warmup_length(train: TrainConfig, total: int) -> int:
    """Warm-up steps of a run of ``total`` steps: ``train.warmup_steps`` when set, else
    ``train.warmup_fraction`` of the run; a warm-up longer than the run is warned about (its
    peak learning rate is never reached)."""
    if train.warmup_steps is None:
        return round(train.warmup_fraction * total)
    if train.warmup_steps > total:
        log.warning(
            f"train.warmup_steps={train.warmup_steps} exceeds the run's {total} steps: the "
            f"learning rate reaches {total / train.warmup_steps:.0%} of train.lr; lower it or "
            f"set it to null to warm up over train.warmup_fraction={train.warmup_fraction:g}"
        )
    return train.warmup_steps


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """LR factor: linear warmup over ``warmup`` steps, then cosine decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_)))

    return factor


def make_state(
    cfg: Config,
    model: nn.Module,
    data: TrainData,
    run_id: str,
    view: CacheView,
    device: torch.device,
) -> TrainState:
    """TrainState at step 0: eager AdamW, warmup + cosine over all steps, a scaler for CUDA AMP."""
    optimizer = EagerAdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(warmup_length(cfg.train, data.total_steps), data.total_steps)
    )
    amp = device.type == "cuda" and cfg.train.amp
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    spec = ModelSpec(
        name=cfg.model.name,
        params=dict(cfg.model.params),
        n_channels=len(view.channels),
        fs=view.fs,
        output_stride=data_stride(model),
        window=data.window,
        source=_resolve(cfg)[1].as_dict(),
    )
    return TrainState(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        sampler=data.sampler,
        spec=spec,
        batch_size=data.batch_size,
        run_id=run_id,
        config=cfg.stored(),
        cache_key=view.key,
    )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) from train.seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def apply_share(cfg: Config, device: torch.device) -> None:
    """Take only this run's share of a shared machine: its torch threads and, on CUDA, its
    fraction of the GPU's memory (train.threads, train.gpu_memory_fraction)."""
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.gpu_memory_fraction is not None and device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(cfg.train.gpu_memory_fraction, device)


def _set_deterministic(mode: bool, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms`` without loading torch's compiler for its own
    flag (``torch._inductor``: 1.5-4 s of every training's start-up, for code Ictal never
    compiles); torch's own call once the compiler is loaded anyway, or if the hook is gone."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels on the CPU (exact resume); restored afterwards."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cpu":
        _set_deterministic(True, warn_only=True)
    try:
        yield
    finally:
        _set_deterministic(enabled, warn_only=warn_only)
