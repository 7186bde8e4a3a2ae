"""Status of runs from their heartbeats: running, stale (process died), stalled, done, ...

A heartbeat is stale when it is older than three intervals while it still says "running", or
when it names a process on this host that no longer exists. It is stalled when it is fresh
but no step (or validation batch) has completed for ``STALL_BEATS`` intervals.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from ictal.runs.directory import CONFIG, EVAL_PREFIX, HEARTBEAT
from ictal.runs.heartbeat import read_heartbeat
from ictal.ui import styled

STALE_BEATS = 3
STALL_BEATS = 5


@dataclass(frozen=True)
class RunStatus:
    """One run as `ictal status` shows it."""

    run_id: str
    path: Path
    status: str  # running | stale | stalled | done | failed | stopped | unknown
    detail: str
    phase: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    loss: float | None = None
    samples_per_s: float | None = None
    data_wait: float | None = None
    age_s: float | None = None
    checkpoint_age_s: float | None = None
    host: str | None = None
    pid: int | None = None


def _process_alive(pid: int, started: float | None) -> bool:
    """True when ``pid`` exists on this host and (if known) started when the run's did."""
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 2.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def classify(beat: dict[str, Any], now: float, host: str) -> tuple[str, str]:
    """(status, reason) of one heartbeat."""
    state = str(beat.get("state", "unknown"))
    if state in ("done", "failed", "stopped"):
        return state, str(beat.get("error") or "")
    interval = float(beat.get("heartbeat_s") or 60.0)
    age = now - float(beat.get("time", 0.0))
    if age > STALE_BEATS * interval:
        return "stale", f"no heartbeat for {age:.0f}s (every {interval:g}s): the process died"
    if beat.get("host") == host and not _process_alive(
        int(beat.get("pid", -1)), beat.get("pid_started")
    ):
        return "stale", f"process {beat.get('pid')} is gone"
    idle = now - float(beat.get("progress_at") or beat.get("step_changed_at") or now)
    if idle > STALL_BEATS * interval:
        return "stalled", f"alive, but no progress for {idle:.0f}s in phase {beat.get('phase')}"
    return "running", ""


def _watched(root: Path) -> list[tuple[str, Path]]:
    """Run directories and the evaluation directories inside them (or beside them)."""
    out = []
    for path in sorted(p for p in root.iterdir() if p.is_dir()):
        if (path / CONFIG).is_file():
            out.append((path.name, path))
            out += [(f"{path.name}/{e.name}", e) for e in sorted(path.glob(f"{EVAL_PREFIX}*"))
                    if (e / HEARTBEAT).is_file()]  # fmt: skip
        elif path.name.startswith(EVAL_PREFIX) and (path / HEARTBEAT).is_file():
            out.append((path.name, path))
    return out


def run_statuses(runs_root: str | Path, *, now: float | None = None) -> list[RunStatus]:
    """Every run (and evaluation) directory under ``runs_root`` with its status, oldest first."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    host = socket.gethostname()
    out = []
    for name, path in _watched(root):
        beat = read_heartbeat(path / HEARTBEAT)
        if beat is None:
            out.append(RunStatus(name, path, "unknown", "no heartbeat (never started?)"))
            continue
        status, detail = classify(beat, now, host)
        out.append(
            RunStatus(
                run_id=name,
                path=path,
                status=status,
                detail=detail,
                phase=beat.get("phase"),
                epoch=beat.get("epoch"),
                epochs=beat.get("epochs"),
                step=beat.get("step"),
                loss=beat.get("loss"),
                samples_per_s=beat.get("samples_per_s"),
                data_wait=beat.get("data_wait"),
                age_s=now - float(beat.get("time", now)),
                checkpoint_age_s=_checkpoint_age(beat, now),
                host=beat.get("host"),
                pid=beat.get("pid"),
            )
        )
    return out


def _checkpoint_age(beat: dict[str, Any], now: float) -> float | None:
    t = beat.get("last_checkpoint_time")
    return None if t is None else now - float(t)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


STYLES = {"running": "green", "stalled": "yellow", "stale": "red", "failed": "red"}


def print_statuses(statuses: list[RunStatus], console: Console) -> None:
    """A table of runs: status, phase, progress, loss, speed, heartbeat and checkpoint ages."""
    if not statuses:
        console.print("no runs")
        return
    table = Table(title="runs")
    for col in ("run", "status", "phase", "epoch", "step", "loss", "samples/s", "data wait",
                "heartbeat", "checkpoint", "host:pid", "note"):  # fmt: skip
        table.add_column(col, justify="right" if col in ("step", "loss", "samples/s") else "left")
    for s in statuses:
        epoch = "-" if s.epoch is None else f"{s.epoch + 1}/{s.epochs or '?'}"
        table.add_row(
            s.run_id,
            styled(s.status, STYLES.get(s.status, "")),
            s.phase or "-",
            epoch,
            "-" if s.step is None else str(s.step),
            _fmt(s.loss, ".4f"),
            _fmt(s.samples_per_s, ".1f"),
            "-" if s.data_wait is None else f"{s.data_wait:.0%}",
            _age(s.age_s),
            _age(s.checkpoint_age_s),
            f"{s.host}:{s.pid}" if s.host else "-",
            s.detail,
        )
    console.print(table)
