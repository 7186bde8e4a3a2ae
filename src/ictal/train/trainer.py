"""The Trainer: the parts of a run declared once (config, state, data, session, device, ranks,
recorder, checkpointer), and the epochs of steps and validation that use them.

Resume is exact on CPU with a fixed seed: the checkpoint holds the samples actually trained in
the epoch (not the loader's read-ahead), every RNG state and the optimizer/scheduler state, and
creating a loader iterator never touches the global RNG. SIGTERM/SIGINT set a flag; the loop
checkpoints at the next step boundary and ends with state "stopped".
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ictal.config import Config
from ictal.data.dataset import model_input
from ictal.data.loader import DataWaitMeter
from ictal.errors import Ending, IctalError, UsageError
from ictal.models.checkpoint import CheckpointError, load_checkpoint
from ictal.parallel.executors import require_visible
from ictal.runs.directory import RunDir, RunState
from ictal.runs.heartbeat import LiveStatus
from ictal.runs.metrics import keep_until
from ictal.runs.pusher import PushOutcome
from ictal.runs.session import RunSession
from ictal.runs.trackers import Trackers, run_params
from ictal.train.distributed import Ranks, window_hash
from ictal.train.feed import TrainData
from ictal.train.loss import seizure_bce, step_targets
from ictal.train.monitor import QuietRecorder, Recorder, StopRequest, WaitWatch
from ictal.train.setup import data_stride
from ictal.train.state import TrainState, capture_rng, is_better
from ictal.train.validate import Validation, validate
from ictal.ui import log, pairs_text, progress

RANK_REPORT_STEPS = 20  # how often the ranks tell rank 0's heartbeat where they are


class TrainingError(IctalError):
    """Training cannot go on (for example the loss stayed non-finite); the run is 'failed'."""


@dataclass
class TrainResult:
    """How a call to train() ended and where its files are."""

    run_id: str
    run_dir: Path
    state: RunState  # done or stopped
    epochs_done: int
    step: int
    best_val_loss: float | None
    best_epoch: int | None
    stopped_early: bool
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    resume_hint: str
    push: PushOutcome | None = None  # the final push, with a sink
    rank: int = 0  # with several ranks, only rank 0's result is printed
    tracker_errors: int = 0  # events an experiment tracker failed to take (training went on)
    tracker_error: str | None = None

    @property
    def ending(self) -> Ending:
        """Stopped runs are resumable; a run whose results were not pushed is partial."""
        if self.state == RunState.STOPPED:
            return Ending.INTERRUPTED
        if self.rank == 0 and self.push is not None and self.push.error:
            return Ending.PARTIAL
        return Ending.DONE


def train_step(
    state: TrainState,
    x: torch.Tensor,
    y: torch.Tensor,
    pos_weight: torch.Tensor,
    cfg: Config,
    device: torch.device,
    ranks: Ranks | None = None,
) -> tuple[float, float | None]:
    """One optimizer step on a batch; a non-finite loss or gradient skips the update (on
    every rank, when any rank's loss is not finite: they all reduce gradients together)."""
    ranks = ranks or Ranks()
    model, opt, scaler = state.model, state.optimizer, state.scaler
    model.train()
    x = model_input(x, device)
    y = y.to(device, non_blocking=True)
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        logits = state.forward_model(x)
    target = step_targets(y, data_stride(model), logits.shape[1])
    loss = seizure_bce(logits, target, pos_weight)
    loss_value = float(loss.detach())
    grad_norm: float | None = None
    all_finite = math.isfinite(loss_value)
    if ranks.active:
        all_finite = ranks.agree([float(not all_finite)])[0] == 0
    if all_finite:
        scaler.scale(loss).backward()
        if cfg.train.grad_clip is not None:
            scaler.unscale_(opt)
            grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip))
        if scaler.is_enabled() or grad_norm is None or math.isfinite(grad_norm):
            scaler.step(opt)  # with AMP the scaler itself skips steps with inf gradients
            scaler.update()
        opt.zero_grad(set_to_none=True)
    with warnings.catch_warnings():  # a skipped first update makes torch warn about order
        warnings.simplefilter("ignore", UserWarning)
        state.scheduler.step()  # the schedule follows batches, skipped ones included
    return loss_value, grad_norm


class Checkpointer:
    """When a checkpoint is due (rank 0's clock, ``train.checkpoint_every_s``) and writing it:
    the metrics up to the step synced first (a resume keeps lines up to the checkpoint), every
    rank's RNG states gathered, rank 0 writing atomically, then its push nudged."""

    def __init__(self, state: TrainState, session: RunSession, rec: Recorder | QuietRecorder,
                 ranks: Ranks, every_s: float) -> None:  # fmt: skip
        self.state = state
        self.session = session
        self.rec = rec
        self.ranks = ranks
        self.every_s = every_s
        self.last = time.monotonic()

    def due(self) -> bool:
        """Rank 0's clock says the periodic checkpoint is due (the ranks then agree)."""
        return self.ranks.main and time.monotonic() - self.last >= self.every_s

    def save(self, path: Path) -> None:
        """Checkpoint to ``path`` now (every rank takes part; rank 0 writes)."""
        rngs = self.ranks.gather(capture_rng()) if self.ranks.active else None
        if isinstance(self.rec, Recorder):
            self.rec.metrics.sync()
            self.state.save(path, rngs)
            self.session.checkpointed()  # its time in the heartbeat, and pushed soon
        self.last = time.monotonic()


def _fresh_sums() -> dict[str, float]:
    return {"loss": 0.0, "loss_samples": 0, "pos": 0.0, "samples": 0}


def _loss(value: float | None) -> str:
    """A validation loss for a log line: four decimals, ``-`` before the first validation."""
    return "-" if value is None else f"{value:.4f}"


class Trainer:
    """One run's training: ``fit`` runs the remaining epochs; everything it needs is here."""

    def __init__(
        self,
        cfg: Config,
        state: TrainState,
        data: TrainData,
        session: RunSession,
        device: torch.device,
        ranks: Ranks,
        trackers: list[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.state = state
        self.data = data
        self.session = session
        self.run: RunDir = session.run
        self.live: LiveStatus = session.live
        self.device = device
        self.ranks = ranks
        self.stop = StopRequest()
        self.trackers = list(cfg.logging.loggers if trackers is None else trackers)
        # opened by fit, after a resume has trimmed the metrics to the checkpoint
        self.fan: Trackers | None = None
        self.rec: Recorder | QuietRecorder = QuietRecorder(self.live)
        self.ckpt = Checkpointer(state, session, self.rec, ranks, cfg.train.checkpoint_every_s)
        # the current epoch's step context (set by train_epoch)
        self.pos_weight = torch.tensor(0.0)
        self.meter = DataWaitMeter()
        self.clock = _StepClock()

    # ------------------------------------------------------------------ the story

    def fit(self, resume_hint: str) -> TrainResult:
        """Epochs of training and validation, reported to the run's metrics, its experiment
        trackers (rank 0) and its live status; a stop request checkpoints and ends it."""
        state = self.state
        self.live.update(epoch=state.epoch, step=state.step, total_steps=self.data.total_steps)
        if self.session.owner:  # rank 0 records the run; the others keep a live status
            self.fan = Trackers(self.trackers, self.cfg, self.live)
            self.fan.start(self.run, run_params(self.cfg, self.run.run_id), state.step)
            if state.step and (resent := self.fan.resend(self.run, state.step)):
                log.info(f"trackers: {resent} event(s) a kill left undelivered, sent again")
            self.rec = self.ckpt.rec = Recorder(self.run, self.live, self.fan)
        final = RunState.FAILED
        try:
            with self.stop:
                final, stopped_early = self.epochs()
        finally:
            self.rec.close(final)
        if final == RunState.STOPPED:
            log.warning(
                f"stopped at epoch {state.epoch + 1}, step {state.step}; checkpoint "
                f"{self.run.last}; continue with `{resume_hint}`"
            )
        return TrainResult(
            run_id=self.run.run_id, run_dir=self.run.path, state=final, epochs_done=state.epoch,
            step=state.step, best_val_loss=state.best_metric, best_epoch=state.best_epoch,
            stopped_early=stopped_early,
            last_checkpoint=self.run.last if self.run.last.exists() else None,
            best_checkpoint=self.run.best if self.run.best.exists() else None,
            resume_hint=resume_hint, rank=self.ranks.rank,
            tracker_errors=self.fan.errors if self.fan is not None else 0,
            tracker_error=self.fan.last_error if self.fan is not None else None,
        )  # fmt: skip

    def epochs(self) -> tuple[RunState, bool]:
        """Train and validate each remaining epoch; return (final state, stopped early)."""
        state, patience = self.state, self.cfg.train.patience
        for _ in range(state.epoch, self.cfg.train.epochs):
            if patience is not None and state.bad_epochs >= patience:
                log.info(
                    f"early stopping after epoch {state.epoch}: no validation gain for "
                    f"{state.bad_epochs} epochs (train.patience={patience}); best epoch "
                    f"{(state.best_epoch or 0) + 1}, val loss {_loss(state.best_metric)}"
                )
                return RunState.DONE, True
            state.sampler.set_epoch(state.epoch)
            if not self.train_epoch():
                return RunState.STOPPED, False
            val = None
            if self.data.val_loader is not None and self.cfg.train.validate_each_epoch:
                val = self.validate()
                if val is None:  # stop requested during validation: resume re-validates
                    self.ckpt.save(self.run.last)
                    return RunState.STOPPED, False
            self.end_epoch(val)
        stopped_early = patience is not None and state.bad_epochs >= patience
        log.info(
            f"training done: {state.epoch} epochs, {state.step} steps, best val loss "
            f"{_loss(state.best_metric)}"
        )
        return RunState.DONE, stopped_early

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch; False when a stop was requested (checkpointed).

        After each step the ranks agree on the step's loss (over the global batch), on a stop
        and on a checkpoint (rank 0's clock decides), so they always act together.
        """
        state, data = self.state, self.data
        epoch = state.epoch
        pos_weight = torch.tensor(data.sampler.pos_weight(epoch), device=self.device)
        if state.step_in_epoch == 0:
            log.info(
                f"epoch {epoch + 1}/{self.cfg.train.epochs}: {data.steps_per_epoch} steps, draw ("
                f"{pairs_text(data.sampler.class_counts(epoch))}), expected positive fraction "
                f"{data.sampler.expected_positive_fraction(epoch):.4f}, "
                f"pos_weight {pos_weight.item():.3f}"
            )
        if state.step_in_epoch >= data.steps_per_epoch:
            return True
        self.live.update(phase="train", epoch=epoch, val_batches=None, val_total=None)
        meter = DataWaitMeter()
        waits = WaitWatch(self.cfg, data.workers, epoch)
        with torch.random.fork_rng(devices=[]):  # a new iterator draws a seed; keep RNG exact
            batches = iter(data.train_loader)
        self.pos_weight, self.meter, self.clock = pos_weight, meter, _StepClock()
        desc = f"epoch {epoch + 1}/{self.cfg.train.epochs}"
        with progress(desc, data.steps_per_epoch - state.step_in_epoch, unit="steps") as ticker:
            try:
                for x, y in meter.wrap(batches):
                    loss, stopping, saving = self.step(x, y)
                    ticker.advance(note=f"loss {loss:.4f}")
                    if self.ranks.active and state.step % RANK_REPORT_STEPS == 0:
                        self.report_ranks(meter)
                    waits.check(meter)
                    if stopping:
                        self.ckpt.save(self.run.last)
                        return False
                    if saving:
                        self.ckpt.save(self.run.last)
                    if state.step_in_epoch >= data.steps_per_epoch:
                        break
            except RuntimeError:  # loader workers die with the process group on a stop
                if not self.stop.requested or self.ranks.active:
                    raise
                self.ckpt.save(self.run.last)
                return False
        waits.check(meter, final=True)
        state.extra.setdefault("epoch_sums", _fresh_sums())["data_wait"] = meter.fraction()
        return True

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, bool, bool]:
        """One step of the epoch and what the ranks agree on after it: (global loss, stop,
        checkpoint due); its metrics line and live status."""
        state, ranks, pos_weight = self.state, self.ranks, self.pos_weight
        sums = state.extra.setdefault("epoch_sums", _fresh_sums())
        lr = state.optimizer.param_groups[0]["lr"]
        local_pos = float(y.float().mean())
        local_loss, grad_norm = train_step(state, x, y, pos_weight, self.cfg, self.device, ranks)
        state.step += 1
        state.step_in_epoch += 1
        dt, wait = self.clock.lap(self.meter)
        finite = math.isfinite(local_loss)
        total, finite_n, n, pos, bad, stopping, saving = ranks.agree([
            local_loss * len(x) if finite else 0.0, len(x) if finite else 0, len(x),
            local_pos * len(x), float(not finite), float(self.stop.requested),
            float(self.ckpt.due()),
        ])  # fmt: skip
        loss = total / finite_n if finite_n and not bad else math.nan
        state.samples_seen += int(n)
        if not bad:
            sums["loss"] += total
            sums["loss_samples"] += finite_n
        sums["pos"] += pos
        sums["samples"] += n
        self.rec.write({
            "phase": "train", "epoch": state.epoch, "step": state.step,
            "step_in_epoch": state.step_in_epoch, "loss": loss, "lr": lr,
            "grad_norm": grad_norm, "pos_weight": float(pos_weight), "pos_fraction": pos / n,
            "samples_per_s": n / dt if dt > 0 else None,
            "data_wait": wait / dt if dt > 0 else None,
        })  # fmt: skip
        self.live.update(step=state.step, loss=loss, lr=lr,
                         samples=self.live.samples + int(n),
                         wait_s=self.live.wait_s + wait)  # fmt: skip
        self.count_nonfinite(loss, grad_norm)
        return loss, bool(stopping), bool(saving)

    def validate(self) -> Validation | None:
        """The validation pass at the epoch's training weight (so its loss compares with the
        train loss); None when a stop was requested during it."""
        assert self.data.val_loader is not None
        self.live.update(phase="validate", val_batches=0, val_total=len(self.data.val_loader))
        pos_weight = torch.tensor(self.data.sampler.pos_weight(self.state.epoch),
                                  device=self.device)  # fmt: skip
        return validate(self.state.model, self.data.val_loader, self.data.stride_out,
                        self.device, self.cfg, self.stop, self.rec, pos_weight,
                        self.ranks)  # fmt: skip

    def end_epoch(self, val: Validation | None) -> None:
        """Record the epoch, update early stopping, save best.pt on improvement and last.pt."""
        state = self.state
        improved = self.record_validation(val) if val is not None else False
        self.record_epoch()
        state.epoch += 1
        state.step_in_epoch = 0
        state.extra["epoch_sums"] = _fresh_sums()
        state.sampler.set_epoch(state.epoch)
        if self.ranks.active:
            self.report_ranks(DataWaitMeter())
        if improved:
            self.ckpt.save(self.run.best)
        self.ckpt.save(self.run.last)

    def record_validation(self, val: Validation) -> bool:
        """The validation line and early stopping's bookkeeping; True when it improved."""
        state = self.state
        self.rec.write({
            "phase": "validate", "epoch": state.epoch, "step": state.step,
            "val_loss": val.loss, "val_loss_weighted": val.loss_weighted,
            "val_auroc": val.auroc, "val_windows": val.windows, "val_s": val.seconds,
        })  # fmt: skip
        improved = is_better(val.loss, state.best_metric)
        if improved:
            state.best_metric, state.best_epoch, state.bad_epochs = val.loss, state.epoch, 0
        else:
            state.bad_epochs += 1
        log.info(
            f"epoch {state.epoch + 1} validation: loss {val.loss:.4f}, AUROC {val.auroc:.4f} "
            f"({val.windows} windows, {val.seconds:.1f}s)"
            + (" - best so far" if improved else f" - {state.bad_epochs} epoch(s) without gain")
        )
        return improved

    def record_epoch(self) -> None:
        """The epoch's line: its loss, realised positive fraction, and which windows every
        rank together trained (count and an order-free hash)."""
        state, data = self.state, self.data
        epoch = state.epoch
        trained = data.sampler.rank_indices(epoch)[: state.step_in_epoch * data.batch_size]
        count, digest = self.ranks.agree_counts(np.array([len(trained), window_hash(trained)]))
        sums = state.extra.get("epoch_sums") or _fresh_sums()
        self.rec.write({
            "phase": "epoch", "epoch": epoch, "step": state.step,
            "loss": sums["loss"] / sums["loss_samples"] if sums["loss_samples"] else None,
            "pos_fraction_expected": state.sampler.expected_positive_fraction(epoch),
            "pos_fraction_realised": sums["pos"] / sums["samples"] if sums["samples"] else None,
            "pos_weight": state.sampler.pos_weight(epoch), "data_wait": sums.get("data_wait"),
            "nonfinite": state.nonfinite_total, "best_val_loss": state.best_metric,
            "bad_epochs": state.bad_epochs, "windows": int(count),
            "windows_hash": int(digest) % (1 << 48),
        })  # fmt: skip

    # ------------------------------------------------------------------ the parts

    def count_nonfinite(self, loss: float, grad_norm: float | None) -> None:
        """Count skipped steps; raise after ``train.max_nonfinite_in_a_row`` in a row."""
        state = self.state
        bad = not math.isfinite(loss) or (
            grad_norm is not None and not math.isfinite(grad_norm) and not state.scaler.is_enabled()
        )
        if not bad:
            state.nonfinite_in_a_row = 0
            return
        state.nonfinite_total += 1
        state.nonfinite_in_a_row += 1
        log.warning(
            f"step {state.step}: non-finite loss/gradient (loss {loss:.4g}, grad norm "
            f"{'-' if grad_norm is None else format(grad_norm, '.4g')}); "
            f"update skipped ({state.nonfinite_in_a_row} in a row, {state.nonfinite_total} total)"
        )
        limit = self.cfg.train.max_nonfinite_in_a_row
        if state.nonfinite_in_a_row >= limit:
            raise TrainingError(
                f"the loss or gradient was not finite for {limit} steps in a row (step "
                f"{state.step}, lr {state.optimizer.param_groups[0]['lr']:.3g}); lower train.lr, "
                "keep train.grad_clip set, or check the cache with `ictal verify --full`"
            )

    def report_ranks(self, meter: DataWaitMeter) -> None:
        """Every rank's step and data wait into rank 0's heartbeat (``ranks`` field)."""
        seen = self.ranks.gather({"rank": self.ranks.rank, "step": self.state.step,
                                  "data_wait": meter.fraction(), "time": time.time()})  # fmt: skip
        if self.ranks.main:
            self.live.update(detail={**self.live.snapshot()["detail"], "ranks": seen})

    def restore(self) -> None:
        """Load last.pt into the state (every rank; each its own RNG states) and drop metrics
        lines written after it (rank 0)."""
        run, state, ranks = self.run, self.state, self.ranks
        if ranks.broadcast(run.last.exists()):  # rank 0's view decides: none starts afresh alone
            require_visible(run.last, "runs.root")
            ckpt = load_checkpoint(run.last)
            key = ckpt.get("cache_key")
            if key != state.cache_key:
                raise UsageError(
                    f"run {run.run_id} trained on cache {str(key)[:16]}, the config now "
                    f"opens {state.cache_key[:16]}; resume needs the same cache"
                )
            try:
                state.restore(ckpt, ranks.rank)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError,
                    RuntimeError) as exc:  # fmt: skip
                raise CheckpointError(
                    f"checkpoint {run.last} does not hold what training writes "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})",
                    "restore it from a copy (the sink holds one when sink.url is set), or move "
                    "it aside: a resumed run without last.pt starts again from step 0",
                ) from None
            log.info(
                f"resuming run {run.run_id} at epoch {state.epoch + 1}, step {state.step} "
                f"({state.step_in_epoch} steps into the epoch)"
            )
        else:
            log.info(f"run {run.run_id} has no checkpoint yet; starting it from step 0")
        dropped = keep_until(run.metrics, state.step, state.epoch) if ranks.main else 0
        if dropped:
            log.info(f"dropped {dropped} metrics lines written after the checkpoint")


class _StepClock:
    """Wall time and data-wait time of each step, from one lap to the next."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.wait = 0.0

    def lap(self, meter: DataWaitMeter) -> tuple[float, float]:
        now = time.perf_counter()
        dt, wait = now - self.t, meter.wait_s - self.wait
        self.t, self.wait = now, meter.wait_s
        return dt, wait
