"""The run directory: one place for every file name of a run and of an evaluation, the run's
lock, its frozen config and log file.

``<runs.root>/<run-id>/`` holds everything one training run produces; a run id sorts by start
time, so the most recent run is the last name. An evaluation writes ``<run>/eval-<ckpt>-<split>/``
(or ``--out``). A lock file marks a run as owned by a live process, so two processes never
train into one directory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ictal.config import Config
from ictal.errors import UsageError
from ictal.ids import new_run_id
from ictal.io.atomic import atomic_write_json, atomic_write_text
from ictal.io.lock import FileLock, is_locked
from ictal.ui import plain_formatter

CONFIG = "config.yaml"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
HEARTBEAT = "heartbeat.json"
LOG = "train.log"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
TB = "tb"
TRACKERS = "trackers.json"  # the W&B / MLflow run ids of this run: a resume continues them
DELIVERED = "trackers.delivered"  # "<tracker> <step>" per event a tracker took: a resume resends
LOCK = ".lock"
# In a pushed copy: written last by the final push (every file with its size and sha256), and
# first by the sink check; in a pulled copy: what the last pull fetched.
PUSHED = "_PUSHED.json"
STARTED = "_STARTED.json"
PULL_INDEX = ".pull.json"
# Files of this machine's copy only, never pushed or pulled: locks and the pull record.
LOCAL_ONLY = (LOCK, "run.lock", PULL_INDEX)
EVAL_PREFIX = "eval-"
SWEEP_JSON = "sweep.json"  # marks a sweep directory: <sweep>/<run name>/<run id>/


class RunState(StrEnum):
    """The state a run's heartbeat records: running until its process ends it as done,
    failed or stopped (interrupted, resumable)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"


FINAL_STATES = (RunState.DONE, RunState.FAILED, RunState.STOPPED)


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def heartbeat(self) -> Path:
        return self.path / HEARTBEAT

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last(self) -> Path:
        return self.path / CHECKPOINTS / LAST

    @property
    def best(self) -> Path:
        return self.path / CHECKPOINTS / BEST

    @property
    def tb(self) -> Path:
        return self.path / TB

    @property
    def trackers(self) -> Path:
        return self.path / TRACKERS

    @property
    def delivered(self) -> Path:
        return self.path / DELIVERED

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    @property
    def locked(self) -> bool:
        """A live process holds the run (only meaningful on this host)."""
        return is_locked(self.lock)

    def evaluations(self) -> list[Path]:
        """The evaluation directories inside this run, by name."""
        return sorted(p for p in self.path.glob(f"{EVAL_PREFIX}*") if p.is_dir())


@dataclass(frozen=True)
class EvalDir:
    """Paths of one evaluation directory (``ictal evaluate`` writes it; report reads it)."""

    path: Path

    @property
    def scores(self) -> Path:
        return self.path / "scores.json"

    @property
    def operating_points(self) -> Path:
        return self.path / "operating_points.json"

    @property
    def identity(self) -> Path:
        return self.path / "identity.json"

    @property
    def heartbeat(self) -> Path:
        return self.path / HEARTBEAT

    @property
    def probs(self) -> Path:
        return self.path / "probs"

    @property
    def hypotheses(self) -> Path:
        return self.path / "hyp"

    def probs_of(self, recording_id: str) -> Path:
        """The probability file of one recording (ids are plain names: checked by the cache)."""
        return self.probs / f"{recording_id}.npy"


def is_evaluation(rel: str) -> bool:
    """True for a path (relative to a run) inside one of its evaluation directories, which
    their own command pushes."""
    return rel.startswith(EVAL_PREFIX)


def run_of_checkpoint(checkpoint: Path) -> RunDir | None:
    """The run a checkpoint file belongs to (``<run>/checkpoints/X.pt``), or None."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name != CHECKPOINTS:
        return None
    run = RunDir(checkpoint.parent.parent)
    return run if run.config.is_file() else None


def eval_dir_for(checkpoint: Path, split: str, runs_root: str | Path) -> EvalDir:
    """``<run>/eval-X-<split>`` for ``<run>/checkpoints/X.pt``; else
    ``<runs.root>/eval-X-<split>`` (X the checkpoint's stem, so best and last never collide)."""
    checkpoint = Path(checkpoint)
    name = f"{EVAL_PREFIX}{checkpoint.stem}-{split}"
    if checkpoint.parent.name == CHECKPOINTS:
        return EvalDir(checkpoint.parent.parent / name)
    return EvalDir(Path(runs_root) / name)


def create_run(cfg: Config, meta: dict[str, Any], run_id: str | None = None) -> RunDir:
    """Make a new run directory with the frozen config (credentials masked) and run.json
    (unique id, never reused)."""
    root = Path(cfg.runs.root)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        run = RunDir(root / (run_id or new_run_id()))
        run_id = None  # a clash (same second, same suffix) falls back to a fresh id
        try:
            run.path.mkdir()
            break
        except FileExistsError:
            continue
    run.checkpoints.mkdir()
    atomic_write_text(run.config, cfg.to_yaml())
    atomic_write_json(run.run_json, {**meta, "run_id": run.run_id})
    return run


def resolve_run_dir(where: Path) -> Path:
    """Accept a run directory or a checkpoint inside one; return the run directory."""
    p = Path(where)
    if p.is_file() and p.parent.name == CHECKPOINTS:
        p = p.parent.parent
    if not (p / CONFIG).is_file():
        raise UsageError(f"{where} is not a run directory (no {CONFIG})")
    return p


def run_lock(run: RunDir) -> FileLock:
    """The lock a process holds on a run directory for as long as it trains into it; a
    second process is refused (exit 3) naming the holder."""
    return FileLock(
        run.lock,
        f"run {run.path}",
        "wait for that process to finish or stop it (`ictal status` shows it); a run has one "
        "trainer at a time",
    )


@contextlib.contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Copy the 'ictal' logger into ``path`` as plain timestamped lines (credentials masked)."""
    logger = logging.getLogger("ictal")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(plain_formatter())
    handler.setLevel(logging.INFO)
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(old_level)
