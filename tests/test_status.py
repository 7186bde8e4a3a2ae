"""Run status from fabricated heartbeats: running, stale, stalled, done, failed, stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from ictal.errors import IctalError
from ictal.runs.status import run_statuses, status_view

NOW = time.time()


@pytest.fixture(autouse=True)
def _now():
    """Fabricated heartbeats are relative to the test's own start, not to collection time."""
    global NOW
    NOW = time.time()


def fabricate(root: Path, name: str, **beat) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    me = psutil.Process()
    base = {
        "run_id": name,
        "state": "running",
        "phase": "train",
        "epoch": 0,
        "epochs": 3,
        "step": 10,
        "loss": 0.5,
        "time": NOW - 1,
        "heartbeat_s": 60.0,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": me.create_time(),
        "progress_at": NOW - 1,
        "step_changed_at": NOW - 1,
        "last_checkpoint_time": NOW - 30,
    }
    base.update(beat)
    (run / "heartbeat.json").write_text(json.dumps(base))
    return run


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_classification(tmp_path):
    fabricate(tmp_path, "a-running")
    fabricate(tmp_path, "b-old", time=NOW - 1000)
    fabricate(tmp_path, "c-dead-pid", pid=dead_pid())
    fabricate(tmp_path, "d-reused-pid", pid_started=NOW - 10**6)
    fabricate(tmp_path, "e-stalled", progress_at=NOW - 600, step_changed_at=NOW - 600)
    fabricate(tmp_path, "f-validating", phase="validate", step_changed_at=NOW - 600)
    fabricate(tmp_path, "g-done", state="done", time=NOW - 10**5)
    fabricate(tmp_path, "h-failed", state="failed", error="TrainingError: loss")
    fabricate(tmp_path, "i-stopped", state="stopped")
    fabricate(tmp_path, "j-other-host", host="elsewhere", pid=dead_pid())
    (tmp_path / "k-no-heartbeat").mkdir()
    (tmp_path / "k-no-heartbeat" / "config.yaml").write_text("{}\n")
    (tmp_path / "not-a-run").mkdir()
    got = {s.run_id: s.status for s in run_statuses(tmp_path, now=NOW)}
    assert got == {
        "a-running": "running",
        "b-old": "stale",
        "c-dead-pid": "stale",
        "d-reused-pid": "stale",
        "e-stalled": "stalled",
        "f-validating": "running",
        "g-done": "done",
        "h-failed": "failed",
        "i-stopped": "stopped",
        "j-other-host": "running",  # cannot see its pid: trust a fresh heartbeat
        "k-no-heartbeat": "unknown",
    }
    by_id = {s.run_id: s for s in run_statuses(tmp_path, now=NOW)}
    assert "TrainingError" in by_id["h-failed"].detail
    assert 29 <= by_id["a-running"].checkpoint_age_s <= 31


def test_tiny_heartbeat_interval_goes_stale_fast(tmp_path):
    fabricate(tmp_path, "r", heartbeat_s=0.1, time=NOW - 0.5)
    assert run_statuses(tmp_path, now=NOW)[0].status == "stale"


def test_missing_root_and_table(tmp_path):
    assert run_statuses(tmp_path / "none", missing_ok=True) == []
    with pytest.raises(IctalError, match="not a directory of runs"):
        run_statuses(tmp_path / "none")
    fabricate(tmp_path, "20240101T000000Z-abcdef")
    fabricate(tmp_path, "20240102T000000Z-abcdef", state="failed", error="boom")
    console = Console(record=True, width=200)
    console.print(status_view(run_statuses(tmp_path)))
    text = console.export_text()
    assert "20240101T000000Z-abcdef" in text and "running" in text
    assert "failed" in text and "boom" in text and "1/3" in text
    console = Console(record=True, width=200)
    console.print(status_view([]))
    assert "no runs" in console.export_text()


def test_evaluation_directories_are_listed(tmp_path):
    run = fabricate(tmp_path, "20240101T000000Z-abcdef", state="done")
    ev = run / "eval-best-dev"
    ev.mkdir()
    beat = json.loads((run / "heartbeat.json").read_text())
    beat.update(state="running", phase="evaluate inference", time=NOW - 1, progress_at=NOW - 1)
    (ev / "heartbeat.json").write_text(json.dumps(beat))
    statuses = {s.run_id: s.status for s in run_statuses(tmp_path)}
    assert statuses == {run.name: "done", f"{run.name}/eval-best-dev": "running"}
