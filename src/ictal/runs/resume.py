"""Which run ``--resume`` continues, and with which config: the run's frozen experiment, with
the machine-specific fields of today's config (paths, workers, device). On a new machine (a
spot instance replaced, a cloud function restarted) the run comes back from the sink."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from ictal.config import ROLES, Config, flatten
from ictal.config_file import load_config
from ictal.errors import PreflightError, UnsafePathError
from ictal.io.lock import holder
from ictal.io.paths import check_name, linked_below, plain_dir, plain_file
from ictal.io.redact import redact
from ictal.models.trust import ModelTrust
from ictal.runs.checkpoints import given_now
from ictal.runs.directory import CONFIG, HEARTBEAT, LOCK, RUN_JSON, RunDir, RunState
from ictal.runs.heartbeat import read_heartbeat
from ictal.runs.meta import read_run_json
from ictal.runs.sink import pull, pushed_heartbeats
from ictal.runs.status import classify
from ictal.ui import log


def _final_state(path: Path) -> str | None:
    if not plain_file(path / HEARTBEAT):
        return None
    beat = read_heartbeat(path / HEARTBEAT)
    return None if beat is None else str(beat.get("state"))


def _kind(path: Path) -> object:
    """What run.json says the run is (``bench``...), None when absent or a link."""
    return read_run_json(path / RUN_JSON).get("kind") if plain_file(path / RUN_JSON) else None


def find_resumable(runs_root: str | Path) -> Path | None:
    """The most recent run directory not marked done (a real directory with a real
    config.yaml: links are never followed). When a live process holds it (a resume already
    running), refuse naming that process: starting a second run beside it would train the
    same experiment twice."""
    root = Path(runs_root)
    if not root.is_dir():
        return None
    runs = sorted(
        (p for p in root.iterdir() if plain_dir(p) and plain_file(p / CONFIG)),
        key=lambda p: p.name,
    )
    for path in reversed(runs):
        finished = _final_state(path) == RunState.DONE
        if finished or _kind(path) == "bench":
            continue
        if RunDir(path).locked:
            raise PreflightError(
                f"the most recent unfinished run {path} is being trained by {holder(path / LOCK)}",
                "wait for it (`ictal status` shows it), or start a new run without --resume",
            )
        return path
    return None


def live_elsewhere(beat: dict[str, Any], push_every_s: float, now: float) -> str | None:
    """Why a pushed run must not be resumed here (its process is still pushing), or None:
    ``ictal status``'s own judgement of the heartbeat, allowing for the push interval."""
    status, _ = classify(beat, now, socket.gethostname(), min_interval_s=push_every_s)
    if status not in ("running", "stalled"):
        return None
    host = beat.get("host")
    return f"it is {status} on host {host if isinstance(host, str) else '?'} (its heartbeat)"


SINK_FIX = "remove that object from the sink (ictal never pushes such a name)"


def pull_resumable(cfg: Config) -> Path | None:
    """With no unfinished run under runs.root: the newest training run in ``sink.url`` that is
    not done, pulled into runs.root to be resumed (a refusal when it is live elsewhere)."""
    if not cfg.sink.url:
        return None
    url = cfg.sink.url.rstrip("/")
    pushed = pushed_heartbeats(url, missing_ok=True)
    runs = [(name, beat) for name, beat in pushed if "/" not in name]  # not evaluations
    for name, beat in sorted(runs, key=lambda r: r[0], reverse=True):
        if beat is None or beat.get("command", "train") != "train":
            continue
        if beat.get("state") == RunState.DONE:
            continue
        name = check_name(name, f"run in the sink {redact(url)}", SINK_FIX)
        dest = Path(cfg.runs.root) / name
        if dest.exists() or dest.is_symlink():
            continue  # this machine has it (finished here): the sink's copy is older
        why = live_elsewhere(beat, cfg.sink.every_s, time.time())
        if why is not None:
            raise PreflightError(
                f"the most recent unfinished run in the sink, {name}, cannot be resumed here: "
                f"{why}",
                "stop it there first, or start a new run without --resume",
            )
        log.info(f"resuming run {name} from the sink: pulling it into {dest}")
        pull(f"{url}/{name}", dest)
        return dest
    return None


def _no_links(run: RunDir) -> None:
    """A run continued here reads and appends to its own files only: a config.yaml that is
    not a regular file, or any file a resume reads or writes that is a symbolic link (or
    lies behind one), is refused (exit 3) before anything is read through it."""
    files = (run.config, run.run_json, run.metrics, run.heartbeat, run.log, run.trackers,
             run.checkpoints, run.last, run.best, run.tb)  # fmt: skip
    linked = next((p for p in files if linked_below(run.path, p) is not None), None)
    if linked is not None or not plain_file(run.config):
        shown = linked if linked is not None else run.config
        raise UnsafePathError(
            f"{shown} is a symbolic link or not a regular file; ictal never reads or writes a "
            "run's files through a link",
            "replace the link with the run's own file, or start a new run",
        )


def resume_config(current: Config, run: RunDir, *, trust_model_code: bool = False) -> Config:
    """The run's frozen config, with the machine's fields (``ROLES.resume_fields``) taken
    from ``current`` when set (different from the built-in default), and where results are
    pushed only as ``current`` says (``given_now``: a pulled run never pushes back into the
    sink it came from unless the user names it again). A run whose files are links is
    refused (exit 3), never followed (``_no_links``).

    Experiment fields (model, data, schedule, seed) stay frozen so the run continues exactly;
    differing values given now are named in a warning. A run may come from a sink: the model
    code its frozen config names by import path is trained only when ``current`` (the user's
    own config) names the same path, or with ``trust_model_code`` (exit 3 otherwise).
    """
    _no_links(run)
    frozen = load_config(run.config)
    _allow_model(frozen, current, run, trust_model_code)
    defaults = flatten(Config().model_dump(mode="json"))
    now = flatten(current.model_dump(mode="json"))
    old = flatten(frozen.model_dump(mode="json"))
    machine = ROLES.resume_fields()
    overrides: list[str] = []
    ignored: list[str] = []
    for key in sorted(set(now) | set(old)):
        if now.get(key) == old.get(key):
            continue
        if key in machine:
            if now.get(key) != defaults.get(key):
                overrides.append(f"{key}={_yaml_value(now.get(key))}")
        elif now.get(key) != defaults.get(key):
            ignored.append(f"{key} (given {now.get(key)!r}, the run uses {old.get(key)!r})")
    if ignored:
        log.warning("resume keeps the run's frozen config; ignored: " + "; ".join(ignored))
    return given_now(load_config(run.config, overrides) if overrides else frozen, current)


def _allow_model(frozen: Config, current: Config, run: RunDir, trust_code: bool) -> None:
    """Refuse, before anything is imported, the import path a frozen config names that the
    user's own config does not (``ictal.models.trust``)."""
    from ictal.models.registry import find, permit  # torch: only when a run is resumed

    trust = ModelTrust(named=current.model.name, any_code=trust_code)
    permit(find(frozen.model.name), trust, f"the frozen config of run {run.path}")


def _yaml_value(value: Any) -> str:
    return json.dumps(value)
