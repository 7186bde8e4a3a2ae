"""The training story, top to bottom: which run (new or resumed), preflight, model and data,
the run session, then the Trainer's epochs (``ictal.train.trainer``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ictal.cache.manifest import CacheView
from ictal.cache.preflight import preflight
from ictal.config import Config
from ictal.device import pick_device
from ictal.io.paths import writable_dir
from ictal.runs.directory import RunDir, resolve_run_dir
from ictal.runs.meta import run_metadata
from ictal.runs.resume import find_resumable, pull_resumable, resume_config
from ictal.runs.session import RunSession
from ictal.runs.trackers import check as check_trackers
from ictal.train.distributed import Ranks, join, rank_device, wrap
from ictal.train.feed import check_window_fits, describe, make_train_data
from ictal.train.setup import (
    apply_share,
    data_stride,
    deterministic,
    make_model,
    make_state,
    seed_everything,
)
from ictal.train.trainer import Trainer, TrainingError, TrainResult
from ictal.ui import log, quiet_ranks

__all__ = ["TrainResult", "TrainingError", "train"]


def train(
    cfg: Config,
    *,
    resume: bool | Path = False,
    fix_hint: str = "ictal build",
    command: str = "ictal train",
    trust_model_code: bool = False,
) -> TrainResult:
    """Preflight the cache, then train (or continue a run exactly) and record everything.

    ``resume=True`` continues the most recent unfinished run under ``runs.root`` (a new run
    starts when there is none, logged); a Path continues that run directory. ``command`` is
    the command line (with the user's config) that the resume hint extends;
    ``trust_model_code``: a resumed run may import the model code its frozen config names.
    """
    device = pick_device(cfg.train.device)
    ranks = join(device, cfg.train.dist_timeout_s)  # one process, or one rank of torchrun's
    try:
        return _train(cfg, resume, fix_hint, command, rank_device(device, ranks), ranks,
                      trust_model_code)  # fmt: skip
    finally:
        ranks.close()


def _train(
    cfg: Config,
    resume: bool | Path,
    fix_hint: str,
    command: str,
    device: torch.device,
    ranks: Ranks,
    trust_model_code: bool = False,
) -> TrainResult:
    """``train`` on this rank: rank 0 owns the run directory, every rank trains its share."""
    if not ranks.main:
        quiet_ranks()
    chosen = _run_to_resume(cfg, resume) if ranks.main else None
    found = ranks.broadcast(None if chosen is None else str(chosen.path))
    previous = RunDir(Path(found)) if found else None
    if previous is not None:
        cfg = resume_config(cfg, previous, trust_model_code=trust_model_code)
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
        session = _session(cfg, previous, pre.view, device, ranks, parameters(model))
        hint = f"{command} --run {session.run.path}"
        try:
            state = make_state(cfg, model, data, session.run.run_id, pre.view, device)
            state.world_size = ranks.world
            state.ddp = wrap(model, device, ranks)
            with session:
                trainer = Trainer(cfg, state, data, session, device, ranks, trackers)
                try:
                    for name, value in pre.rows:
                        log.info(f"{name}: {value}")
                    log.info(describe(data) + (f"; {ranks.world} ranks" if ranks.active else ""))
                    if previous is not None:
                        trainer.restore()
                    log.info(f"run {session.run.run_id} in {session.run.path} on {device}")
                    result = trainer.fit(hint)
                    session.ended(result.state)
                finally:
                    session.live.update(phase="finished")
        except KeyboardInterrupt as stop:  # before fit's own ending: the run exists, name it
            stop.resume_hint = hint  # type: ignore[attr-defined]
            raise
    result.push = session.push
    return result


def parameters(model: torch.nn.Module) -> int:
    """The model's parameter count, as run.json records it (sweep comparisons read it)."""
    return sum(p.numel() for p in model.parameters())


def _session(
    cfg: Config,
    previous: RunDir | None,
    view: CacheView,
    device: torch.device,
    ranks: Ranks,
    n_parameters: int,
) -> RunSession:
    """Rank 0 opens the run (new, or the one resumed) and tells the others where it is."""
    live = {"epochs": cfg.train.epochs}
    session = None
    if ranks.main:
        if previous is not None:
            session = RunSession.resume(cfg, previous, str(device), live)
        else:
            meta = run_metadata(str(device), cache_key=view.key, cache_path=view.path,
                                world_size=ranks.world, model_name=cfg.model.name,
                                model_parameters=n_parameters)  # fmt: skip
            session = RunSession.new(cfg, meta, live)
    run = RunDir(Path(ranks.broadcast(str(session.run.path) if session is not None else None)))
    return session if session is not None else RunSession.follower(cfg, run, live)


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
