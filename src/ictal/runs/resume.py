"""Which run ``--resume`` continues, and with which config: the run's frozen experiment, with
the machine-specific fields of today's config (paths, workers, device)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ictal.config import Config, flatten, load_config
from ictal.errors import PreflightError
from ictal.io.lock import holder
from ictal.runs.directory import CONFIG, HEARTBEAT, LOCK, RUN_JSON, RunDir, is_locked
from ictal.runs.heartbeat import read_heartbeat
from ictal.runs.meta import read_run_json
from ictal.ui import log

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
    "sink.every_s",
    "train.threads",
    "train.gpu_memory_fraction",
)


def _final_state(path: Path) -> str | None:
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
        if _final_state(path) == "done" or read_run_json(path / RUN_JSON).get("kind") == "bench":
            continue
        if is_locked(path):
            raise PreflightError(
                f"the most recent unfinished run {path} is being trained by {holder(path / LOCK)}",
                "wait for it (`ictal status` shows it), or start a new run without --resume",
            )
        return path
    return None


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
    return json.dumps(value)
