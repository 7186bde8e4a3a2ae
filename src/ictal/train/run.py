"""Run directory: frozen config, run metadata, log, metrics, heartbeat, checkpoints, TensorBoard.

``<runs.root>/<run-id>/`` holds everything one training run produces; a run id sorts by start
time, so the most recent run is the last name. A lock file marks the run as owned by a live
process, so two processes never train into one directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import secrets
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal import __version__
from ictal.config import Config, flatten, load_config
from ictal.errors import PreflightError, UsageError
from ictal.io.atomic import atomic_write_json, atomic_write_text
from ictal.io.lock import FileLock, holder
from ictal.io.lock import is_locked as lock_held
from ictal.io.redact import redact
from ictal.ui import log, plain_formatter

CONFIG = "config.yaml"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
HEARTBEAT = "heartbeat.json"
LOG = "train.log"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
TB = "tb"
LOCK = ".lock"

# Fields that describe the machine rather than the experiment: on resume a value given now
# (different from the built-in default) replaces the frozen one; every other field is frozen.
MACHINE_FIELDS = (
    "corpus.root",
    "cache.root",
    "cache.workers",
    "cache.executor",
    "runs.root",
    "loader.num_workers",
    "loader.prefetch_factor",
    "loader.persistent_workers",
    "loader.timeout_s",
    "train.device",
    "train.checkpoint_every_s",
    "train.heartbeat_s",
    "train.data_wait_warn",
    "sink.url",
)


def new_run_id(now: float | None = None) -> str:
    """UTC start time plus a short random suffix: sorts by start, unique across machines."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{stamp}-{secrets.token_hex(3)}"


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
    def last(self) -> Path:
        return self.path / CHECKPOINTS / LAST

    @property
    def best(self) -> Path:
        return self.path / CHECKPOINTS / BEST

    @property
    def tb(self) -> Path:
        return self.path / TB


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD commit of the git repository around ``cwd`` (with '+dirty'), or None; never fails."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        suffix = "+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
        return head.stdout.strip() + suffix
    except (OSError, subprocess.SubprocessError):
        return None


def run_metadata(run_id: str, cache_key: str, cache_path: Path, device: str) -> dict[str, Any]:
    """Versions, code commit, cache identity, host and command line of this process."""
    import numpy
    import torch

    return {
        "run_id": run_id,
        "ictal_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "git_commit": git_commit(),
        "cache_key": cache_key,
        "cache_path": str(cache_path),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device,
        "pid": os.getpid(),
        "start_time": time.time(),
        "command": redact(shlex.join(sys.argv)),
        "cwd": os.getcwd(),
        "resumes": [],
    }


def create_run(cfg: Config, meta_args: dict[str, Any], run_id: str | None = None) -> RunDir:
    """Make a new run directory with the frozen config and run.json (unique id, never reused)."""
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
    (run.path / CHECKPOINTS).mkdir()
    atomic_write_text(run.config, cfg.to_yaml())
    atomic_write_json(run.run_json, run_metadata(run.run_id, **meta_args))
    return run


def record_resume(run: RunDir, device: str) -> None:
    """Append this process (time, host, pid, command) to run.json's list of resumes."""
    import json

    meta = json.loads(run.run_json.read_text(encoding="utf-8"))
    meta.setdefault("resumes", []).append(
        {
            "time": time.time(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": device,
            "command": redact(shlex.join(sys.argv)),
            "git_commit": git_commit(),
        }
    )
    atomic_write_json(run.run_json, meta)


def is_locked(path: Path) -> bool:
    """True when a live process holds the run's lock (only meaningful on this host)."""
    return lock_held(path / LOCK)


def run_lock(run: RunDir) -> FileLock:
    """The lock a process holds on a run directory for as long as it trains into it."""
    return FileLock(
        run.path / LOCK,
        f"run {run.path}",
        "wait for that process to finish or stop it (`ictal status` shows it); a run has one "
        "trainer at a time",
    )


@contextlib.contextmanager
def lock_run(run: RunDir) -> Iterator[None]:
    """Hold the run's lock for the duration of training; refuse (exit 3) naming the process
    that has it."""
    with run_lock(run):
        yield


def _final_state(path: Path) -> str | None:
    from ictal.train.heartbeat import read_heartbeat

    beat = read_heartbeat(path / HEARTBEAT)
    return None if beat is None else str(beat.get("state"))


def find_resumable(runs_root: str | Path) -> Path | None:
    """The most recent run directory not marked done. When a live process holds it (a resume
    already running), refuse naming that process: starting a second run beside it would
    train the same experiment twice."""
    root = Path(runs_root)
    if not root.is_dir():
        return None
    runs = sorted((p for p in root.iterdir() if (p / CONFIG).is_file()), key=lambda p: p.name)
    for path in reversed(runs):
        if _final_state(path) == "done":
            continue
        if is_locked(path):
            raise PreflightError(
                f"the most recent unfinished run {path} is being trained by {holder(path / LOCK)}",
                "wait for it (`ictal status` shows it), or start a new run without --resume",
            )
        return path
    return None


def resolve_run_dir(where: Path) -> Path:
    """Accept a run directory or a checkpoint inside one; return the run directory."""
    p = Path(where)
    if p.is_file() and p.parent.name == CHECKPOINTS:
        p = p.parent.parent
    if not (p / CONFIG).is_file():
        raise UsageError(f"{where} is not a run directory (no {CONFIG})")
    return p


def resume_config(current: Config, run: RunDir) -> Config:
    """The run's frozen config, with machine-specific fields taken from ``current`` when set.

    Experiment fields (model, data, schedule, seed) stay frozen so the run continues exactly;
    differing values given now are named in a warning.
    """
    frozen = load_config(run.config)
    defaults = flatten(Config().model_dump(mode="json"))
    now = flatten(current.model_dump(mode="json"))
    old = flatten(frozen.model_dump(mode="json"))
    overrides: list[str] = []
    ignored: list[str] = []
    for key in sorted(set(now) | set(old)):
        if now.get(key) == old.get(key):
            continue
        if key in MACHINE_FIELDS:
            if now.get(key) != defaults.get(key):
                overrides.append(f"{key}={_yaml_value(now.get(key))}")
        elif now.get(key) != defaults.get(key):
            ignored.append(f"{key} (given {now.get(key)!r}, the run uses {old.get(key)!r})")
    if ignored:
        log.warning("resume keeps the run's frozen config; ignored: " + "; ".join(ignored))
    return load_config(run.config, overrides) if overrides else frozen


def _yaml_value(value: Any) -> str:
    import json

    return json.dumps(value)


@contextlib.contextmanager
def log_to_file(run: RunDir) -> Iterator[None]:
    """Copy the 'ictal' logger into the run's train.log as plain timestamped lines."""
    logger = logging.getLogger("ictal")
    handler = logging.FileHandler(run.log, encoding="utf-8")
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
