"""Status of runs from their heartbeats, read from local run directories and from sinks alike:
running, stale (the process died), stalled, done, failed, stopped.

A heartbeat is stale when it is older than three intervals while it still says "running", or
when it names a process on this host that no longer exists. It is stalled when it is fresh
but no step (or batch of a pass) has completed for ``stalled_after_s`` (default five
intervals). Heartbeats are untrusted JSON: a field of the wrong type shows as missing.
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ictal.errors import IctalError
from ictal.io.paths import plain_dir, plain_file
from ictal.io.redact import redact
from ictal.io.storage import is_local, open_url
from ictal.runs.directory import CONFIG, EVAL_PREFIX, FINAL_STATES, HEARTBEAT, SWEEP_JSON
from ictal.runs.heartbeat import read_heartbeat
from ictal.runs.sink import pushed_heartbeats
from ictal.ui import styled

STALE_BEATS = 3
STALL_BEATS = 5


@dataclass(frozen=True)
class RunStatus:
    """One run (or evaluation) as `ictal status` shows it."""

    run: str
    where: str  # the runs directory or sink URL it was read from (redacted)
    status: str  # running | stale | stalled | done | failed | stopped | unknown
    detail: str
    command: str | None = None
    phase: str | None = None
    epoch: int | None = None  # the epoch it is in or ended in, counted from 1 (as shown)
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    samples_per_s: float | None = None
    data_wait: float | None = None
    heartbeat_age_s: float | None = None
    checkpoint_age_s: float | None = None
    push_lag_s: float | None = None
    push_failures: int | None = None
    host: str | None = None
    pid: int | None = None

    @property
    def run_id(self) -> str:
        return self.run


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _epoch_of(beat: dict[str, Any]) -> int | None:
    """The epoch a heartbeat's run is in, counted from 1 (a heartbeat counts from 0); None
    for a command that trains nothing."""
    epoch, epochs = _int(beat.get("epoch")), _int(beat.get("epochs"))
    return None if epoch is None or not epochs else epoch + 1


def _process_alive(pid: int, started: float | None) -> bool:
    """True when ``pid`` exists on this host and (if known) started when the run's did."""
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 2.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError):
        return False


def classify(
    beat: dict[str, Any],
    now: float,
    host: str,
    stalled_after_s: float | None = None,
    min_interval_s: float = 0.0,
) -> tuple[str, str]:
    """(status, reason) of one heartbeat; ``min_interval_s``: the copy is refreshed no more
    often than that (a heartbeat read from a sink is as old as the last push)."""
    state = _str(beat.get("state")) or "unknown"
    if state in FINAL_STATES:
        return state, _str(beat.get("error")) or ""
    interval = max(_float(beat.get("heartbeat_s")) or 60.0, min_interval_s)
    age = now - (_float(beat.get("time")) or 0.0)
    if age > STALE_BEATS * interval:
        return "stale", f"no heartbeat for {age:.0f}s (every {interval:g}s): the process died"
    pid = _int(beat.get("pid"))
    if (
        beat.get("host") == host
        and pid is not None
        and not _process_alive(pid, _float(beat.get("pid_started")))
    ):
        return "stale", f"process {pid} is gone"
    progress_at = _float(beat.get("progress_at")) or _float(beat.get("step_changed_at")) or now
    idle = now - progress_at
    limit = stalled_after_s if stalled_after_s is not None else STALL_BEATS * interval
    if idle > limit:
        return "stalled", f"alive, but no progress for {idle:.0f}s in phase {beat.get('phase')}"
    return "running", ""


def from_beat(
    name: str, where: str, beat: dict[str, Any] | None, now: float, host: str, stall: float | None
) -> RunStatus:
    """The status row of one heartbeat (None: none readable yet)."""
    if beat is None:
        return RunStatus(name, where, "unknown", "no heartbeat (never started?)")
    status, detail = classify(beat, now, host, stall)
    last_ckpt = _float(beat.get("last_checkpoint_time"))
    beat_time = _float(beat.get("time"))
    return RunStatus(
        run=name,
        where=where,
        status=status,
        detail=detail,
        command=_str(beat.get("command")),
        phase=_str(beat.get("phase")),
        epoch=_epoch_of(beat),
        epochs=_int(beat.get("epochs")),
        step=_int(beat.get("step")),
        total_steps=_int(beat.get("total_steps")),
        loss=_float(beat.get("loss")),
        samples_per_s=_float(beat.get("samples_per_s")),
        data_wait=_float(beat.get("data_wait")),
        heartbeat_age_s=None if beat_time is None else now - beat_time,
        checkpoint_age_s=None if last_ckpt is None else now - last_ckpt,
        push_lag_s=_float(beat.get("push_lag_s")),
        push_failures=_int(beat.get("push_failures")),
        host=_str(beat.get("host")),
        pid=_int(beat.get("pid")),
    )


def _has(path: Path, name: str) -> bool:
    """``path/name`` is a regular file (a link is never followed into a run's files)."""
    return plain_file(path / name)


def _dirs(path: Path) -> list[Path]:
    """The directories in ``path`` by name, symbolic links left out (never followed)."""
    try:
        return sorted(p for p in path.iterdir() if plain_dir(p))
    except OSError:
        return []


def _runs_in(path: Path, name: str) -> list[tuple[str, Path]]:
    """A run directory and the evaluation directories inside it."""
    out = [(name, path)]
    out += [(f"{name}/{e.name}", e) for e in _dirs(path)
            if e.name.startswith(EVAL_PREFIX) and _has(e, HEARTBEAT)]  # fmt: skip
    return out


def _watched(root: Path) -> list[tuple[str, Path]]:
    """Run directories (and their evaluations, or evaluations beside them), and the runs of
    every sweep (``<sweep>/<run name>/<run id>``, shown as ``<sweep>/<run name>``). Only
    real directories and files are looked at: a symbolic link is never followed."""
    out: list[tuple[str, Path]] = []
    for path in _dirs(root):
        if _has(path, CONFIG):
            out += _runs_in(path, path.name)
        elif path.name.startswith(EVAL_PREFIX) and _has(path, HEARTBEAT):
            out.append((path.name, path))
        elif _has(path, SWEEP_JSON):
            for slot in _dirs(path):
                runs = [p for p in _dirs(slot) if _has(p, CONFIG)]
                for run in runs:
                    label = f"{path.name}/{slot.name}" + (f"/{run.name}" if len(runs) > 1 else "")
                    out += _runs_in(run, label)
    return out


def _local_status(
    name: str, where: str, path: Path, now: float, host: str, stall: float | None
) -> RunStatus:
    """The status row of a local run directory; a heartbeat that is a link is not read."""
    if (path / HEARTBEAT).is_symlink():
        return RunStatus(name, where, "unknown", f"{HEARTBEAT} is a symbolic link (not followed)")
    beat = read_heartbeat(path / HEARTBEAT) if _has(path, HEARTBEAT) else None
    return from_beat(name, where, beat, now, host, stall)


def run_statuses(
    where: str | Path,
    *,
    now: float | None = None,
    stalled_after_s: float | None = None,
    missing_ok: bool = False,
) -> list[RunStatus]:
    """Every run (and evaluation) under one runs directory or sink URL, by name. Raises
    IctalError when ``where`` cannot be read (a local directory that does not exist is no
    runs with ``missing_ok``: the default runs.root of a machine that never ran one)."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    text = str(where)
    fs, root = open_url(text, "status WHERE")
    if not is_local(fs):
        shown = redact(text)
        return [
            from_beat(name, shown, beat, now, host, stalled_after_s)
            for name, beat in pushed_heartbeats(text)
        ]
    base = Path(root)
    if not base.is_dir():
        if missing_ok and not base.exists():
            return []
        raise _Unreadable(f"{text} is not a directory of runs (it does not exist)")
    return [
        _local_status(name, text, path, now, host, stalled_after_s) for name, path in _watched(base)
    ]


class _Unreadable(IctalError):
    """A WHERE that cannot be read."""


def gather(
    wheres: list[str],
    *,
    now: float | None = None,
    stalled_after_s: float | None = None,
    missing_ok: bool = False,
) -> tuple[list[RunStatus], list[str]]:
    """Statuses from every WHERE (runs directories and sink URLs), and one error line per
    WHERE that could not be read (the others are still shown)."""
    rows: list[RunStatus] = []
    errors: list[str] = []
    for where in wheres:
        try:
            rows += run_statuses(
                where, now=now, stalled_after_s=stalled_after_s, missing_ok=missing_ok
            )
        except IctalError as exc:
            errors.append(redact(str(exc)))
    freshest: dict[str, RunStatus] = {}
    for row in rows:  # a run seen locally and in its sink: the freshest heartbeat wins
        seen = freshest.get(row.run)
        age = row.heartbeat_age_s if row.heartbeat_age_s is not None else math.inf
        if seen is None or age < (
            seen.heartbeat_age_s if seen.heartbeat_age_s is not None else math.inf
        ):
            freshest[row.run] = row
    return sorted(freshest.values(), key=lambda r: r.run), errors


def as_json(rows: list[RunStatus]) -> list[dict[str, Any]]:
    """The rows as plain objects for scripts (``ictal status --json``)."""
    return [asdict(r) for r in rows]


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


def _epoch(s: RunStatus) -> str:
    """``e/E`` of a training run (the epoch it is in or ended in, counted from 1)."""
    return "-" if s.epoch is None or not s.epochs else f"{s.epoch}/{s.epochs}"


def _steps(s: RunStatus) -> str:
    """Steps of a training run, or items (recordings) of a pass of another command, as
    ``done/total``; ``-`` when nothing was counted."""
    if s.step is None or not (s.step or s.total_steps):
        return "-"
    return f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step)


STYLES = {"running": "green", "stalled": "yellow", "stale": "red", "failed": "red"}

# (header, right-aligned) of every column, in order; a column with nothing to show is left out.
COLUMNS = (("run", False), ("host:pid", False), ("status", False), ("phase", False),
           ("epoch", True), ("step", True), ("loss", True), ("win/s", True), ("wait", True),
           ("beat", True), ("ckpt", True), ("push", True), ("note", False))  # fmt: skip
WRAPS = {"phase", "note"}  # the columns that may wrap on a narrow screen; the others never do
ALWAYS = {"run", "status"}
# What the terse columns mean, printed under the table for the columns it shows.
LEGEND = {"step": "training steps, or recordings of evaluate and detect",
          "win/s": "training windows per second",
          "wait": "share of the time spent waiting for data",
          "beat": "age of the last heartbeat", "ckpt": "age of the last checkpoint",
          "push": "age of the last push to the sink"}  # fmt: skip


def _cells(s: RunStatus, listed: set[str]) -> tuple[str | Text, ...]:
    """One run's cells, in the order of ``COLUMNS``; an evaluation whose run is ``listed``
    above it is named by its directory only, under that run."""
    parent, _, own = s.run.rpartition("/")
    name = f"└ {own}" if parent in listed else s.run
    push = "-" if s.push_lag_s is None else _age(s.push_lag_s)
    push += f" ({s.push_failures} failed)" if s.push_failures else ""
    return (
        name,
        f"{s.host}:{s.pid}" if s.host else "-",
        styled(s.status, STYLES.get(s.status, "")),
        "-" if s.status == "done" else s.phase or "-",  # a finished run has no phase to show
        _epoch(s),
        _steps(s),
        _fmt(s.loss, ".4f"),
        _fmt(s.samples_per_s, ".1f"),
        "-" if s.data_wait is None else f"{s.data_wait:.0%}",
        _age(s.heartbeat_age_s),
        _age(s.checkpoint_age_s),
        push,
        s.detail,
    )


def status_table(statuses: list[RunStatus]) -> Group:
    """A table of runs: status, phase, progress, loss, speed, and the ages that matter. Run
    ids and hosts are never cut; columns no run has a value for are left out, and the table
    has no vertical rules, so a screen of 100 columns holds a training run's row."""
    rows: list[tuple[str | Text, ...]] = []
    listed: set[str] = set()
    for s in statuses:
        rows.append(_cells(s, listed))
        listed.add(s.run)
    keep = [i for i, (name, _) in enumerate(COLUMNS)
            if name in ALWAYS or any(str(r[i]) not in ("-", "") for r in rows)]  # fmt: skip
    table = Table(title=f"runs ({len(statuses)})", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, padding=(0, 1, 0, 0))  # fmt: skip
    for i in keep:
        name, right = COLUMNS[i]
        wide = max(len(name), *(len(str(r[i])) for r in rows))
        table.add_column(name, justify="right" if right else "left", no_wrap=name not in WRAPS,
                         min_width=None if name in WRAPS else wide, overflow="fold")  # fmt: skip
    for r in rows:
        table.add_row(*(r[i] for i in keep))
    shown = [COLUMNS[i][0] for i in keep]
    legend = "; ".join(f"{name}: {LEGEND[name]}" for name in shown if name in LEGEND)
    return Group(table, Text(legend, style="dim"))


def status_view(statuses: list[RunStatus]) -> Group | str:
    """The table of runs, or one line when there are none."""
    return status_table(statuses) if statuses else "no runs"
