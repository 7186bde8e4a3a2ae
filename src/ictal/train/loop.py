"""The training loop, top to bottom: preflight, data, model, then epochs of steps and validation.

Resume is exact on CPU with a fixed seed: the checkpoint holds the samples actually trained in
the epoch (not the loader's read-ahead), every RNG state and the optimizer/scheduler state, and
creating a loader iterator never touches the global RNG. SIGTERM/SIGINT set a flag; the loop
checkpoints at the next step boundary and returns with state "stopped".
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

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
from ictal.runs.resume import find_resumable, resume_config
from ictal.runs.sink import check_sink
from ictal.runs.watch import RunWatch
from ictal.train.feed import TrainData, describe, make_train_data
from ictal.train.loss import seizure_bce, step_targets
from ictal.train.monitor import Recorder, StopRequest, WaitWatch
from ictal.train.setup import (
    apply_share,
    data_stride,
    deterministic,
    make_model,
    make_state,
    seed_everything,
)
from ictal.train.state import TrainState, is_better
from ictal.train.validate import Validation, validate
from ictal.ui import log, progress


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
    previous = _run_to_resume(cfg, resume)
    if previous is not None:
        cfg = resume_config(cfg, previous)
    pre = preflight(cfg, split="train", fix=fix_hint)  # refuses before any expensive work
    writable_dir(cfg.runs.root, "runs.root")
    device = pick_device(cfg.train.device)
    apply_share(cfg, device)
    with deterministic(device):
        seed_everything(cfg.train.seed)
        model = make_model(cfg, pre.view).to(device)
        data = make_train_data(cfg, pre.view, device, data_stride(model))
        run_id = previous.run_id if previous is not None else new_run_id()
        if cfg.sink.url:
            check_sink(cfg.sink.url, run_id)  # a sink that cannot take results: refuse now
        run = previous or create_run(
            cfg, run_metadata(str(device), cache_key=pre.view.key, cache_path=pre.view.path), run_id
        )
        state = make_state(cfg, model, data, run.run_id, pre.view, device)
        with run_lock(run), log_to_file(run.log):
            live = LiveStatus(run.run_id, cfg.train.heartbeat_s, epochs=cfg.train.epochs)
            watch = RunWatch(
                run.path, run.heartbeat, live, cfg.sink, run.run_id, exclude=is_evaluation
            ).start()  # first heartbeat and first push now: visible from anywhere at once
            final, error = "failed", None
            try:
                for name, value in pre.rows:
                    log.info(f"{name}: {value}")
                log.info(describe(data))
                if previous is not None:
                    record_resume(run.run_json, str(device))
                    restore(run, state)
                log.info(f"run {run.run_id} in {run.path} on {device}")
                result = fit(cfg, state, data, run, device, watch, f"{command} --run {run.path}")
                final = result.state
            except KeyboardInterrupt:
                final, error = "stopped", "interrupted"
                raise
            except BaseException as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                live.update(phase="finished")
                pushed = watch.finish(final, error)  # final heartbeat, then push, marker last
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
    watch: RunWatch,
    resume_hint: str = "ictal train --resume",
) -> TrainResult:
    """Epochs of training and validation, reported to the run's metrics and live status."""
    watch.live.update(epoch=state.epoch, step=state.step, total_steps=data.total_steps)
    rec = Recorder(run, watch, purge_step=state.step + 1 if state.step else None)
    try:
        with StopRequest() as stop:
            final, stopped_early = run_epochs(cfg, state, data, run, rec, stop, device)
    finally:
        rec.close()
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
    )


def run_epochs(
    cfg: Config,
    state: TrainState,
    data: TrainData,
    run: RunDir,
    rec: Recorder,
    stop: StopRequest,
    device: torch.device,
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
        if not train_epoch(cfg, state, data, run, rec, stop, device):
            return "stopped", False
        val = None
        if data.val_loader is not None and cfg.train.validate_each_epoch:
            rec.live.update(phase="validate", val_batches=0, val_total=len(data.val_loader))
            # the epoch's training weight, so this loss compares with the train loss
            pos_weight = torch.tensor(data.sampler.pos_weight(state.epoch), device=device)
            val = validate(
                state.model, data.val_loader, data.stride_out, device, cfg, stop, rec, pos_weight
            )
            if val is None:  # stop requested during validation: resume re-validates
                save(state, run.last, rec)
                return "stopped", False
        end_epoch(cfg, state, run, rec, val)
    stopped_early = patience is not None and state.bad_epochs >= patience
    log.info(f"training done: {state.epoch} epochs, {state.step} steps, best {state.best_metric}")
    return "done", stopped_early


def train_epoch(
    cfg: Config,
    state: TrainState,
    data: TrainData,
    run: RunDir,
    rec: Recorder,
    stop: StopRequest,
    device: torch.device,
) -> bool:
    """Train the rest of the current epoch; False when a stop was requested (checkpointed)."""
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
                pos_fraction = float(y.float().mean())
                loss, grad_norm = train_step(state, x, y, pos_weight, cfg, device)
                state.step += 1
                state.step_in_epoch += 1
                state.samples_seen += len(x)
                now = time.perf_counter()
                wait = meter.wait_s - wait_prev
                dt, t_prev, wait_prev = now - t_prev, now, meter.wait_s
                if math.isfinite(loss):
                    sums["loss"] += loss * len(x)
                    sums["loss_samples"] += len(x)
                sums["pos"] += pos_fraction * len(x)
                sums["samples"] += len(x)
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
                        "samples_per_s": len(x) / dt if dt > 0 else None,
                        "data_wait": wait / dt if dt > 0 else None,
                    }
                )
                rec.live.update(
                    step=state.step,
                    loss=loss,
                    lr=lr,
                    samples=rec.live.samples + len(x),
                    wait_s=rec.live.wait_s + wait,
                )
                ticker.advance(note=f"loss {loss:.4f}")
                count_nonfinite(state, loss, grad_norm, cfg)
                watch.check(meter)
                if stop.requested:
                    save(state, run.last, rec)
                    return False
                if time.monotonic() - rec.last_save >= cfg.train.checkpoint_every_s:
                    save(state, run.last, rec)
                if state.step_in_epoch >= data.steps_per_epoch:
                    break
        except RuntimeError:
            if not stop.requested:  # loader workers die with the process group on SIGTERM
                raise
            save(state, run.last, rec)
            return False
    watch.check(meter, final=True)
    sums["data_wait"] = meter.fraction()
    return True


def train_step(
    state: TrainState,
    x: torch.Tensor,
    y: torch.Tensor,
    pos_weight: torch.Tensor,
    cfg: Config,
    device: torch.device,
) -> tuple[float, float | None]:
    """One optimizer step on a batch; a non-finite loss or gradient skips the update."""
    model, opt, scaler = state.model, state.optimizer, state.scaler
    model.train()
    x = model_input(x, device)
    y = y.to(device, non_blocking=True)
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        logits = model(x)
    target = step_targets(y, data_stride(model), logits.shape[1])
    loss = seizure_bce(logits, target, pos_weight)
    loss_value = float(loss.detach())
    grad_norm: float | None = None
    if math.isfinite(loss_value):
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
    cfg: Config, state: TrainState, run: RunDir, rec: Recorder, val: Validation | None
) -> None:
    """Record the epoch, update early stopping, save best.pt on improvement and last.pt."""
    epoch = state.epoch
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
        }
    )
    state.epoch += 1
    state.step_in_epoch = 0
    state.extra["epoch_sums"] = _fresh_sums()
    state.sampler.set_epoch(state.epoch)
    if improved:
        save(state, run.best, rec)
    save(state, run.last, rec)


# ----------------------------------------------------------------------------- the parts


def restore(run: RunDir, state: TrainState) -> None:
    """Load last.pt into the state and drop metrics lines written after it."""
    if run.last.exists():
        ckpt = load_checkpoint(run.last)
        if ckpt["cache_key"] != state.cache_key:
            raise UsageError(
                f"run {run.run_id} trained on cache {ckpt['cache_key'][:16]}, the config now "
                f"opens {state.cache_key[:16]}; resume needs the same cache"
            )
        state.restore(ckpt)
        log.info(
            f"resuming run {run.run_id} at epoch {state.epoch + 1}, step {state.step} "
            f"({state.step_in_epoch} steps into the epoch)"
        )
    else:
        log.info(f"run {run.run_id} has no checkpoint yet; starting it from step 0")
    dropped = keep_until(run.metrics, state.step, state.epoch)
    if dropped:
        log.info(f"dropped {dropped} metrics lines written after the checkpoint")


def save(state: TrainState, path: Path, rec: Recorder) -> None:
    """Checkpoint atomically and note the time (heartbeat shows its age).

    The metrics lines up to this step are synced first: a resume keeps lines up to the
    checkpoint, so they must be on disk whenever the checkpoint is.
    """
    rec.metrics.sync()
    state.save(path)
    rec.last_save = time.monotonic()
    rec.watch.checkpointed()  # its time in the heartbeat, and pushed soon


def _fresh_sums() -> dict[str, float]:
    return {"loss": 0.0, "loss_samples": 0, "pos": 0.0, "samples": 0}


def _run_to_resume(cfg: Config, resume: bool | Path) -> RunDir | None:
    if resume is False:
        return None
    if resume is True:
        found = find_resumable(cfg.runs.root)
        if found is None:
            log.info(f"no unfinished run under {cfg.runs.root} to resume; starting a new run")
            return None
        return RunDir(found)
    return RunDir(resolve_run_dir(Path(resume)))
