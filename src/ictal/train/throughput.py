"""`ictal bench`: time N real training batches (after warm-up) and project one epoch's time
and cost, so a machine and loader setting can be judged before a long run."""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from ictal.cache.manifest import CacheView
from ictal.cache.preflight import preflight
from ictal.config import Config
from ictal.data.loader import DataWaitMeter
from ictal.device import pick_device
from ictal.runs.meta import run_metadata
from ictal.runs.metrics import MetricsLog
from ictal.runs.session import RunSession
from ictal.train.distributed import Ranks, join, rank_device, wrap
from ictal.train.feed import check_window_fits, make_train_data
from ictal.train.setup import (
    apply_share,
    data_stride,
    deterministic,
    make_model,
    make_state,
    seed_everything,
)
from ictal.train.state import TrainState
from ictal.train.trainer import train_step
from ictal.ui import log, quiet_ranks

WARMUP_BATCHES = 2


@dataclass(frozen=True)
class RankSpeed:
    """One rank's timed batches: its step time and the share of it spent waiting for data."""

    rank: int
    s_per_batch: float
    data_wait: float


@dataclass(frozen=True)
class BenchResult:
    """Measured speed of the training step on this machine and the projection of an epoch
    (``batch_size`` is the global batch; with several ranks the slowest sets the pace)."""

    batches: int
    batch_size: int
    s_per_batch: float
    samples_per_s: float
    data_wait: float
    epoch_batches: int
    epoch_s: float
    epoch_cost: float | None
    price_per_hour: float | None  # the --price-per-hour the cost was projected at
    device: str
    workers: int
    ranks: list[RankSpeed] = field(default_factory=list)
    rank: int = 0  # the rank that made this result (only rank 0 prints)


def run_bench(
    cfg: Config, batches: int, price_per_hour: float | None, console: Console
) -> BenchResult:
    """Preflight, then ``batches`` timed training steps after warm-up; print and return.

    Under torchrun (``ictal bench --nproc N``) every rank times its own steps of the global
    batch through DistributedDataParallel, and rank 0 prints one row per rank.
    """
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    pre = preflight(cfg, split="train")
    device = pick_device(cfg.train.device)
    ranks = join(device, cfg.train.dist_timeout_s)
    try:
        if not ranks.main:
            quiet_ranks()
        result = _timed(cfg, pre.view, rank_device(device, ranks), ranks, batches, price_per_hour)
    finally:
        ranks.close()
    if ranks.main:
        print_bench(result, cfg, console)
    return result


def _timed(
    cfg: Config,
    view: CacheView,
    device: torch.device,
    ranks: Ranks,
    batches: int,
    price_per_hour: float | None,
) -> BenchResult:
    """The warm-up and timed batches of this rank, and every rank's speed."""
    check_window_fits(cfg, view.split("train"), view.fs)  # before a trial batch of it
    apply_share(cfg, device)  # the process a training run has
    with deterministic(device):
        seed_everything(cfg.train.seed)
        model = make_model(cfg, view).to(device)
        data = make_train_data(cfg, view, device, data_stride(model), validation=False,
                               rank=ranks.rank, world=ranks.world)  # fmt: skip
        state = make_state(cfg, model, data, "bench", view, device)
        state.world_size = ranks.world
        state.ddp = wrap(model, device, ranks)
        pos_weight = torch.tensor(data.sampler.pos_weight(0), device=device)
        meter = DataWaitMeter()
        sink = _SinkLoad.open(cfg, view, device) if ranks.main else None  # a pushed run's I/O
        done, t0 = 0, time.perf_counter()
        with sink if sink is not None else contextlib.nullcontext():
            for epoch in itertools.count():  # a short draw is cycled until enough batches ran
                data.sampler.set_epoch(epoch)
                for x, y in meter.wrap(data.train_loader):
                    loss, _ = train_step(state, x, y, pos_weight, cfg, device, ranks)
                    done += 1
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    if sink is not None:
                        sink.step(done, loss, len(x))
                    if done == WARMUP_BATCHES:
                        meter.reset()  # worker start-up and first-step costs are not the rate
                        if sink is not None:
                            sink.checkpoint(state)  # its upload overlaps the timed batches
                        t0 = time.perf_counter()
                    if done >= WARMUP_BATCHES + batches:
                        break
                if done >= WARMUP_BATCHES + batches:
                    break
            elapsed = time.perf_counter() - t0
    mine = RankSpeed(ranks.rank, elapsed / batches, meter.fraction())
    speeds = sorted(ranks.gather(mine), key=lambda r: r.rank)
    s_per_batch = max(r.s_per_batch for r in speeds)  # a step ends when the slowest rank's does
    global_batch = data.batch_size * ranks.world
    epoch_batches = math.ceil(len(data.sampler) / data.batch_size)
    epoch_s = epoch_batches * s_per_batch
    return BenchResult(
        batches=batches,
        batch_size=global_batch,
        s_per_batch=s_per_batch,
        samples_per_s=global_batch / s_per_batch,
        data_wait=max(r.data_wait for r in speeds),
        epoch_batches=epoch_batches,
        epoch_s=epoch_s,
        epoch_cost=None if price_per_hour is None else epoch_s / 3600 * price_per_hour,
        price_per_hour=price_per_hour,
        device=str(device) if not ranks.active else f"{ranks.world} x {device.type}",
        workers=data.workers,
        ranks=speeds if ranks.active else [],
        rank=ranks.rank,
    )


class _SinkLoad:
    """With ``sink.url`` set, bench does what a pushed training run does besides its steps (a
    run session: directory, heartbeat, a metrics line per step, a checkpoint, the continuous
    push), so its timing shows what pushing costs a training step."""

    def __init__(self, session: RunSession) -> None:
        self.session = session
        self.run = session.run
        self.metrics = MetricsLog(self.run.metrics)

    def __enter__(self) -> _SinkLoad:
        self.session.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.metrics.close()
        self.session.__exit__(*exc)
        if self.session.push is not None and self.session.push.error:
            log.warning(self.session.push.error)

    @classmethod
    def open(cls, cfg: Config, view: CacheView, device: torch.device) -> _SinkLoad | None:
        if not cfg.sink.url:
            return None
        meta = {
            **run_metadata(str(device), cache_key=view.key, cache_path=view.path),
            "kind": "bench",
        }
        return cls(RunSession.new(cfg, meta, {"command": "bench"}))

    def step(self, step: int, loss: float, n: int) -> None:
        self.metrics.write({"phase": "train", "epoch": 0, "step": step, "time": time.time(),
                            "loss": loss})  # fmt: skip
        live = self.session.live
        live.update(phase="bench", step=step, loss=loss, samples=live.samples + n)

    def checkpoint(self, state: TrainState) -> None:
        self.metrics.sync()
        state.save(self.run.last)
        self.session.checkpointed()


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def print_bench(result: BenchResult, cfg: Config, console: Console) -> None:
    """The bench table: speed, input wait, projected epoch time and cost."""
    table = Table(
        title="bench",
        caption=f"{result.batches} batches of {result.batch_size} on {result.device}",
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("s/batch", f"{result.s_per_batch:.4f}")
    table.add_row("samples/s", f"{result.samples_per_s:.1f}")
    table.add_row("data wait" + (" (worst rank)" if result.ranks else ""),
                  f"{result.data_wait:.1%}")  # fmt: skip
    table.add_row("loader", f"{result.workers} {cfg.loader.backend}")
    table.add_row("batches per epoch", str(result.epoch_batches))
    table.add_row("projected epoch time", _duration(result.epoch_s))
    if cfg.train.steps_per_epoch is not None and cfg.train.steps_per_epoch < result.epoch_batches:
        capped = cfg.train.steps_per_epoch * result.s_per_batch
        table.add_row(f"epoch capped at {cfg.train.steps_per_epoch} steps", _duration(capped))
    if result.epoch_cost is not None:
        # The price's currency is the user's: the cost is in it, per epoch, at that price.
        table.add_row("projected epoch cost",
                      f"{result.epoch_cost:.4g} per epoch at {result.price_per_hour:g} per "
                      "machine-hour")  # fmt: skip
    console.print(table)
    if result.ranks:
        per = Table(title="per rank", title_justify="left")
        per.add_column("rank", justify="right")
        per.add_column("s/batch", justify="right")
        per.add_column("data wait", justify="right")
        for r in result.ranks:
            per.add_row(str(r.rank), f"{r.s_per_batch:.4f}", f"{r.data_wait:.1%}")
        console.print(per)
    if result.data_wait > cfg.train.data_wait_warn:
        console.print(
            f"input-bound: {result.data_wait:.0%} of the time waiting for data; raise "
            f"loader.num_workers (now {result.workers})"
        )
