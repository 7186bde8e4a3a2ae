"""The training loop, top to bottom: preflight, data, model, then epochs of steps and validation.

Resume is exact on CPU with a fixed seed: the checkpoint holds the samples actually trained in
the epoch (not the loader's read-ahead), every RNG state and the optimizer/scheduler state, and
creating a loader iterator never touches the global RNG. SIGTERM/SIGINT set a flag; the loop
checkpoints at the next step boundary and returns with state "stopped".
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.utils.data
from torch import nn

from ictal.cache.preflight import preflight
from ictal.config import Config
from ictal.data.dataset import model_input
from ictal.data.loader import DataWaitMeter
from ictal.device import pick_device
from ictal.errors import IctalError, UsageError
from ictal.io.paths import writable_dir
from ictal.models.checkpoint import load_checkpoint
from ictal.parallel.executors import require_visible
from ictal.runs.directory import (
    RunDir,
    create_run,
    is_evaluation,
    log_to_file,
    new_run_id,
    resolve_run_dir,
    run_lock,
)
from ictal.runs.heartbeat import LiveStatus
from ictal.runs.meta import record_resume, run_metadata
from ictal.runs.metrics import keep_until
from ictal.runs.resume import find_resumable, pull_resumable, resume_config
from ictal.runs.sink import check_sink
from ictal.runs.trackers import Trackers, run_params
from ictal.runs.trackers import check as check_trackers
from ictal.runs.watch import RunWatch
from ictal.train.distributed import Ranks, join, rank_device, window_hash, wrap
from ictal.train.feed import TrainData, check_window_fits, describe, make_train_data
from ictal.train.loss import seizure_bce, step_targets
from ictal.train.monitor import QuietRecorder, Recorder, StopRequest, WaitWatch
from ictal.train.setup import (
    apply_share,
    data_stride,
    deterministic,
    make_model,
    make_state,
    seed_everything,
)
from ictal.train.state import TrainState, capture_rng, is_better
from ictal.train.validate import Validation, validate
from ictal.ui import log, progress, quiet_ranks


class TrainingError(IctalError):
    """Training cannot go on (for example the loss stayed non-finite); the run is 'failed'."""


@dataclass
class TrainResult:
    """How a call to train() ended and where its files are."""

    run_id: str
    run_dir: Path
    state: str  # "done" or "stopped"
    epochs_done: int
    step: int
    best_val_loss: float | None
    best_epoch: int | None
    stopped_early: bool
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    resume_hint: str
    pushed_to: str | None = None
    push_error: str = ""
    push_failures: int = 0
    rank: int = 0  # with several ranks, only rank 0's result is printed
    tracker_errors: int = 0  # events an experiment tracker failed to take (training went on)
    tracker_error: str | None = None


# ----------------------------------------------------------------------------- the story


def train(
    cfg: Config,
    *,
    resume: bool | Path = False,
    fix_hint: str = "ictal build",
    command: str = "ictal train",
) -> TrainResult:
    """Preflight the cache, then train (or continue a run exactly) and record everything.

    ``resume=True`` continues the most recent unfinished run under ``runs.root`` (a new run
    starts when there is none, logged); a Path continues that run directory. ``command`` is
    the command line (with the user's config) that the resume hint extends.
    """
    device = pick_device(cfg.train.device)
    ranks = join(device, cfg.train.dist_timeout_s)  # one process, or one rank of torchrun's
    try:
        return _train(cfg, resume, fix_hint, command, rank_device(device, ranks), ranks)
    finally:
        ranks.close()


def _train(
    cfg: Config,
    resume: bool | Path,
    fix_hint: str,
    command: str,
    device: torch.device,
    ranks: Ranks,
) -> TrainResult:
    """``train`` on this rank: rank 0 owns the run directory, every rank trains its share."""
    if not ranks.main:
        quiet_ranks()
    chosen = _run_to_resume(cfg, resume) if ranks.main else None
    found = ranks.broadcast(None if chosen is None else str(chosen.path))
    previous = RunDir(Path(found)) if found else None
    if previous is not None:
        cfg = resume_config(cfg, previous)
    pre = preflight(cfg, split="train", fix=fix_hint)  # refuses before any expensive work
    trackers: list[str] = []
    if ranks.main:
        writable_dir(cfg.runs.root, "runs.root")
        trackers = check_trackers(cfg)  # a tracker that cannot start: now, not hours later
    apply_share(cfg, device)
    check_window_fits(cfg, pre.view.split("train"), pre.view.fs)
    with deterministic(device):
        seed_everything(cfg.train.seed)
        model = make_model(cfg, pre.view).to(device)  # the same first weights on every rank
        if ranks.active:
            seed_everything(cfg.train.seed + 7919 * ranks.rank)  # each rank its own dropout
        data = make_train_data(cfg, pre.view, device, data_stride(model),
                               rank=ranks.rank, world=ranks.world)  # fmt: skip
        run = previous
        if ranks.main and run is None:
            run_id = new_run_id()
            if cfg.sink.url:
                check_sink(cfg.sink.url, run_id)  # a sink that cannot take results: refuse now
            meta = run_metadata(str(device), cache_key=pre.view.key, cache_path=pre.view.path,
                                world_size=ranks.world)  # fmt: skip
            run = create_run(cfg, meta, run_id)
        elif ranks.main and cfg.sink.url:
            check_sink(cfg.sink.url, run.run_id)  # type: ignore[union-attr]
        run = RunDir(Path(ranks.broadcast(str(run.path) if run is not None else None)))
        state = make_state(cfg, model, data, run.run_id, pre.view, device)
        state.world_size = ranks.world
        state.ddp = wrap(model, device, ranks)
        owner = contextlib.ExitStack()
        if ranks.main:
            owner.enter_context(run_lock(run))
            owner.enter_context(log_to_file(run.log))
        with owner:
            live = LiveStatus(run.run_id, cfg.train.heartbeat_s, epochs=cfg.train.epochs)
            watch = None
            if ranks.main:  # first heartbeat and first push now: visible from anywhere
                watch = RunWatch(run.path, run.heartbeat, live, cfg.sink, run.run_id,
                                 exclude=is_evaluation).start()  # fmt: skip
            final, error = "failed", None
            try:
                for name, value in pre.rows:
                    log.info(f"{name}: {value}")
                log.info(describe(data) + (f"; {ranks.world} ranks" if ranks.active else ""))
                if previous is not None:
                    if ranks.main:
                        record_resume(run.run_json, str(device))
                    restore(run, state, ranks)
                log.info(f"run {run.run_id} in {run.path} on {device}")
                hint = f"{command} --run {run.path}"
                result = fit(cfg, state, data, run, device, watch or live, hint, ranks, trackers)
                final = result.state
            except KeyboardInterrupt:
                final, error = "stopped", "interrupted"
                raise
            except BaseException as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                live.update(phase="finished")
                if watch is not None:  # final heartbeat, then push, marker last
                    pushed = watch.finish(final, error)
    result.rank = ranks.rank
    if watch is not None:
        result.pushed_to = pushed.url if pushed.complete else None
        result.push_error = pushed.error
        result.push_failures = pushed.failures
    return result


def fit(
    cfg: Config,
    state: TrainState,
    data: TrainData,
    run: RunDir,
    device: torch.device,
    watch: RunWatch | LiveStatus,
    resume_hint: str = "ictal train --resume",
    ranks: Ranks | None = None,
    trackers: list[str] | None = None,
) -> TrainResult:
    """Epochs of training and validation, reported to the run's metrics, its experiment
    trackers (checked ones, rank 0 only) and live status (``watch``: rank 0's heartbeat and
    push; other ranks only keep a live status)."""
    ranks = ranks or Ranks()
    live = watch.live if isinstance(watch, RunWatch) else watch
    live.update(epoch=state.epoch, step=state.step, total_steps=data.total_steps)
    rec: Recorder | QuietRecorder
    fan: Trackers | None = None
    if isinstance(watch, RunWatch):
        fan = Trackers(list(cfg.logging.loggers if trackers is None else trackers), cfg, live)
        fan.start(run, run_params(cfg, run.run_id), state.step)
        rec = Recorder(run, watch, fan)
    else:
        rec = QuietRecorder(live)
    final = "failed"
    try:
        with StopRequest() as stop:
            final, stopped_early = run_epochs(cfg, state, data, run, rec, stop, device, ranks)
    finally:
        rec.close(final)
    if final == "stopped":
        log.warning(
            f"stopped at epoch {state.epoch + 1}, step {state.step}; checkpoint {run.last}; "
            f"continue with `{resume_hint}`"
        )
    return TrainResult(
        run_id=run.run_id,
        run_dir=run.path,
        state=final,
        epochs_done=state.epoch,
        step=state.step,
        best_val_loss=state.best_metric,
        best_epoch=state.best_epoch,
        stopped_early=stopped_early,
        last_checkpoint=run.last if run.last.exists() else None,
        best_checkpoint=run.best if run.best.exists() else None,
        resume_hint=resume_hint,
        tracker_errors=fan.errors if fan is not None else 0,
        tracker_error=fan.last_error if fan is not None else None,
    )


def run_epochs(
    cfg: Config,
    state: TrainState,
    data: TrainData,
    run: RunDir,
    rec: Recorder | QuietRecorder,
    stop: StopRequest,
    device: torch.device,
    ranks: Ranks,
) -> tuple[str, bool]:
    """Train and validate each remaining epoch; return (final state, stopped early)."""
    patience = cfg.train.patience
    for _ in range(state.epoch, cfg.train.epochs):
        if patience is not None and state.bad_epochs >= patience:
            log.info(
                f"early stopping after epoch {state.epoch}: no validation gain for "
                f"{state.bad_epochs} epochs (train.patience={patience}); best epoch "
                f"{(state.best_epoch or 0) + 1}, loss {state.best_metric}"
            )
            return "done", True
        state.sampler.set_epoch(state.epoch)
        if not train_epoch(cfg, state, data, run, rec, stop, device, ranks):
            return "stopped", False
        val = None
        if data.val_loader is not None and cfg.train.validate_each_epoch:
            rec.live.update(phase="validate", val_batches=0, val_total=len(data.val_loader))
            # the epoch's training weight, so this loss compares with the train loss
            pos_weight = torch.tensor(data.sampler.pos_weight(state.epoch), device=device)
            val = validate(state.model, data.val_loader, data.stride_out, device, cfg, stop, rec,
                           pos_weight, ranks)  # fmt: skip
            if val is None:  # stop requested during validation: resume re-validates
                save(state, run.last, rec, ranks)
                return "stopped", False
        end_epoch(cfg, state, data, run, rec, val, ranks)
    stopped_early = patience is not None and state.bad_epochs >= patience
    log.info(f"training done: {state.epoch} epochs, {state.step} steps, best {state.best_metric}")
    return "done", stopped_early


def train_epoch(
    cfg: Config,
    state: TrainState,
    data: TrainData,
    run: RunDir,
    rec: Recorder | QuietRecorder,
    stop: StopRequest,
    device: torch.device,
    ranks: Ranks | None = None,
) -> bool:
    """Train the rest of the current epoch; False when a stop was requested (checkpointed).

    After each step the ranks agree on the step's loss (over the global batch), on a stop
    and on a checkpoint (rank 0's clock decides), so they always act together.
    """
    ranks = ranks or Ranks()
    epoch = state.epoch
    p = data.sampler.expected_positive_fraction(epoch)
    pos_weight = torch.tensor(data.sampler.pos_weight(epoch), device=device)
    sums = state.extra.setdefault("epoch_sums", _fresh_sums())
    if state.step_in_epoch == 0:
        log.info(
            f"epoch {epoch + 1}/{cfg.train.epochs}: {data.steps_per_epoch} steps, draw "
            f"{data.sampler.class_counts(epoch)}, expected positive fraction {p:.4f}, "
            f"pos_weight {pos_weight.item():.3f}"
        )
    if state.step_in_epoch >= data.steps_per_epoch:
        return True
    rec.live.update(phase="train", epoch=epoch, val_batches=None, val_total=None)
    meter = DataWaitMeter()
    watch = WaitWatch(cfg, data.workers, epoch)
    with torch.random.fork_rng(devices=[]):  # a new iterator draws a seed; keep RNG exact
        batches = iter(data.train_loader)
    t_prev, wait_prev = time.perf_counter(), 0.0
    desc = f"epoch {epoch + 1}/{cfg.train.epochs}"
    with progress(desc, data.steps_per_epoch - state.step_in_epoch) as ticker:
        try:
            for x, y in meter.wrap(batches):
                lr = state.optimizer.param_groups[0]["lr"]
                local_pos = float(y.float().mean())
                local_loss, grad_norm = train_step(state, x, y, pos_weight, cfg, device, ranks)
                state.step += 1
                state.step_in_epoch += 1
                now = time.perf_counter()
                wait = meter.wait_s - wait_prev
                dt, t_prev, wait_prev = now - t_prev, now, meter.wait_s
                finite = math.isfinite(local_loss)
                due = (
                    ranks.main and time.monotonic() - rec.last_save >= cfg.train.checkpoint_every_s
                )
                total, finite_n, n, pos, bad, stopping, saving = ranks.agree([
                    local_loss * len(x) if finite else 0.0, len(x) if finite else 0, len(x),
                    local_pos * len(x), float(not finite), float(stop.requested), float(due),
                ])  # fmt: skip
                loss = total / finite_n if finite_n and not bad else math.nan
                pos_fraction = pos / n
                state.samples_seen += int(n)
                if not bad:
                    sums["loss"] += total
                    sums["loss_samples"] += finite_n
                sums["pos"] += pos
                sums["samples"] += n
                rec.write(
                    {
                        "phase": "train",
                        "epoch": epoch,
                        "step": state.step,
                        "step_in_epoch": state.step_in_epoch,
                        "loss": loss,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "pos_weight": float(pos_weight),
                        "pos_fraction": pos_fraction,
                        "samples_per_s": n / dt if dt > 0 else None,
                        "data_wait": wait / dt if dt > 0 else None,
                    }
                )
                rec.live.update(
                    step=state.step,
                    loss=loss,
                    lr=lr,
                    samples=rec.live.samples + int(n),
                    wait_s=rec.live.wait_s + wait,
                )
                if ranks.active and state.step % RANK_REPORT_STEPS == 0:
                    report_ranks(rec.live, ranks, state.step, meter)
                ticker.advance(note=f"loss {loss:.4f}")
                count_nonfinite(state, loss, grad_norm, cfg)
                watch.check(meter)
                if stopping:
                    save(state, run.last, rec, ranks)
                    return False
                if saving:
                    save(state, run.last, rec, ranks)
                if state.step_in_epoch >= data.steps_per_epoch:
                    break
        except RuntimeError:
            if not stop.requested or ranks.active:  # loader workers die with the process group
                raise
            save(state, run.last, rec, ranks)
            return False
    watch.check(meter, final=True)
    sums["data_wait"] = meter.fraction()
    return True


RANK_REPORT_STEPS = 20  # how often the ranks tell rank 0's heartbeat where they are


def report_ranks(live: LiveStatus, ranks: Ranks, step: int, meter: DataWaitMeter) -> None:
    """Every rank's step and data wait into rank 0's heartbeat (``ranks`` field)."""
    seen = ranks.gather({"rank": ranks.rank, "step": step, "data_wait": meter.fraction(),
                         "time": time.time()})  # fmt: skip
    if ranks.main:
        live.update(detail={**live.snapshot()["detail"], "ranks": seen})


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


def count_nonfinite(state: TrainState, loss: float, grad_norm: float | None, cfg: Config) -> None:
    """Count skipped steps; raise after ``train.max_nonfinite_in_a_row`` in a row."""
    bad = not math.isfinite(loss) or (
        grad_norm is not None and not math.isfinite(grad_norm) and not state.scaler.is_enabled()
    )
    if not bad:
        state.nonfinite_in_a_row = 0
        return
    state.nonfinite_total += 1
    state.nonfinite_in_a_row += 1
    log.warning(
        f"step {state.step}: non-finite loss/gradient (loss {loss}, grad norm {grad_norm}); "
        f"update skipped ({state.nonfinite_in_a_row} in a row, {state.nonfinite_total} total)"
    )
    limit = cfg.train.max_nonfinite_in_a_row
    if state.nonfinite_in_a_row >= limit:
        raise TrainingError(
            f"the loss or gradient was not finite for {limit} steps in a row (step "
            f"{state.step}, lr {state.optimizer.param_groups[0]['lr']:.3g}); lower train.lr, "
            "keep train.grad_clip set, or check the cache with `ictal verify --full`"
        )


def end_epoch(
    cfg: Config,
    state: TrainState,
    data: TrainData,
    run: RunDir,
    rec: Recorder | QuietRecorder,
    val: Validation | None,
    ranks: Ranks | None = None,
) -> None:
    """Record the epoch, update early stopping, save best.pt on improvement and last.pt."""
    ranks = ranks or Ranks()
    epoch = state.epoch
    trained = data.sampler.rank_indices(epoch)[: state.step_in_epoch * data.batch_size]
    count, digest = ranks.agree_counts(np.array([len(trained), window_hash(trained)]))
    sums = state.extra.get("epoch_sums") or _fresh_sums()
    improved = False
    if val is not None:
        rec.write(
            {
                "phase": "validate",
                "epoch": epoch,
                "step": state.step,
                "val_loss": val.loss,
                "val_loss_weighted": val.loss_weighted,
                "val_auroc": val.auroc,
                "val_windows": val.windows,
                "val_s": val.seconds,
            }
        )
        improved = is_better(val.loss, state.best_metric)
        if improved:
            state.best_metric, state.best_epoch, state.bad_epochs = val.loss, epoch, 0
        else:
            state.bad_epochs += 1
        log.info(
            f"epoch {epoch + 1} validation: loss {val.loss:.4f}, AUROC {val.auroc:.4f} "
            f"({val.windows} windows, {val.seconds:.1f}s)"
            + (" - best so far" if improved else f" - {state.bad_epochs} epoch(s) without gain")
        )
    p = state.sampler.expected_positive_fraction(epoch)
    rec.write(
        {
            "phase": "epoch",
            "epoch": epoch,
            "step": state.step,
            "loss": sums["loss"] / sums["loss_samples"] if sums["loss_samples"] else None,
            "pos_fraction_expected": p,
            "pos_fraction_realised": sums["pos"] / sums["samples"] if sums["samples"] else None,
            "pos_weight": state.sampler.pos_weight(epoch),
            "data_wait": sums.get("data_wait"),
            "nonfinite": state.nonfinite_total,
            "best_val_loss": state.best_metric,
            "bad_epochs": state.bad_epochs,
            "windows": int(count),
            "windows_hash": int(digest) % (1 << 48),
        }
    )
    state.epoch += 1
    state.step_in_epoch = 0
    state.extra["epoch_sums"] = _fresh_sums()
    state.sampler.set_epoch(state.epoch)
    if ranks.active:
        report_ranks(rec.live, ranks, state.step, DataWaitMeter())
    if improved:
        save(state, run.best, rec, ranks)
    save(state, run.last, rec, ranks)


# ----------------------------------------------------------------------------- the parts


def restore(run: RunDir, state: TrainState, ranks: Ranks | None = None) -> None:
    """Load last.pt into the state (every rank; each its own RNG states) and drop metrics
    lines written after it (rank 0)."""
    ranks = ranks or Ranks()
    if ranks.broadcast(run.last.exists()):  # rank 0's view decides: no rank starts afresh alone
        require_visible(run.last, "runs.root")
        ckpt = load_checkpoint(run.last)
        if ckpt["cache_key"] != state.cache_key:
            raise UsageError(
                f"run {run.run_id} trained on cache {ckpt['cache_key'][:16]}, the config now "
                f"opens {state.cache_key[:16]}; resume needs the same cache"
            )
        try:
            state.restore(ckpt, ranks.rank)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        log.info(
            f"resuming run {run.run_id} at epoch {state.epoch + 1}, step {state.step} "
            f"({state.step_in_epoch} steps into the epoch)"
        )
    else:
        log.info(f"run {run.run_id} has no checkpoint yet; starting it from step 0")
    dropped = keep_until(run.metrics, state.step, state.epoch) if ranks.main else 0
    if dropped:
        log.info(f"dropped {dropped} metrics lines written after the checkpoint")


def save(
    state: TrainState, path: Path, rec: Recorder | QuietRecorder, ranks: Ranks | None = None
) -> None:
    """Checkpoint atomically and note the time (heartbeat shows its age); with several
    ranks every rank gives its RNG states and rank 0 alone writes.

    The metrics lines up to this step are synced first: a resume keeps lines up to the
    checkpoint, so they must be on disk whenever the checkpoint is.
    """
    ranks = ranks or Ranks()
    rngs = ranks.gather(capture_rng()) if ranks.active else None
    if isinstance(rec, Recorder):
        rec.metrics.sync()
        state.save(path, rngs)
        rec.watch.checkpointed()  # its time in the heartbeat, and pushed soon
    rec.last_save = time.monotonic()


def _fresh_sums() -> dict[str, float]:
    return {"loss": 0.0, "loss_samples": 0, "pos": 0.0, "samples": 0}


def _run_to_resume(cfg: Config, resume: bool | Path) -> RunDir | None:
    if resume is False:
        return None
    if resume is True:
        found = find_resumable(cfg.runs.root) or pull_resumable(cfg)
        if found is None:
            log.info(f"no unfinished run under {cfg.runs.root} to resume; starting a new run")
            return None
        return RunDir(found)
    return RunDir(resolve_run_dir(Path(resume)))
