"""`ictal sweep` on this 2-core machine with tiny runs: the parallel cap and the memory budget
hold (from sweep.json and from process polling), an invalid variant fails alone, a killed run
is reported while the others finish, and a killed sweep resumes without retraining."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import ictal_env, run_ictal, settings, small_built_corpus

FAST = [
    "windows.length_s=8",
    "windows.stride_s=4",
    "model.params={width: 8, gru_hidden: 8}",
    "loader.batch_size=4",
    "train.warmup_steps=2",
    "train.patience=null",  # runs train every epoch they are given (no early stopping)
    "train.epochs=2",
    "train.steps_per_epoch=6",
    "train.heartbeat_s=0.3",
    "sweep.ramp_steps=3",
    "sweep.poll_s=0.2",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return small_built_corpus(tmp_path_factory.mktemp("sweep"), 4, FAST)


def _sets(tmp: Path, runs: Path, *extra: str) -> list[str]:
    return settings(tmp, runs, FAST, *extra)


class Sweep:
    """An `ictal sweep` process, with the most training children seen alive at once."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "ictal.cli", "sweep", *args],
                                     env=ictal_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)  # fmt: skip
        self.most = 0
        self.out = ""
        self.err = ""
        self._watch = threading.Thread(target=self._count, daemon=True)
        self._watch.start()

    def trainers(self) -> list[psutil.Process]:
        try:
            kids = psutil.Process(self.proc.pid).children()
        except psutil.Error:
            return []
        alive = []
        for k in kids:
            try:
                if "train" in k.cmdline() and k.status() != psutil.STATUS_ZOMBIE:
                    alive.append(k)
            except psutil.Error:
                continue
        return alive

    def _count(self) -> None:
        while self.proc.poll() is None:
            self.most = max(self.most, len(self.trainers()))
            time.sleep(0.01)

    def wait(self, timeout: float = 300) -> int:
        self.out, self.err = self.proc.communicate(timeout=timeout)
        self._watch.join()
        return self.proc.returncode


def _runs(runs: Path, name: str) -> list[dict]:
    return json.loads((runs / name / "sweep.json").read_text())["runs"]


def _overlap(runs: list[dict]) -> int:
    """The most runs alive at one moment, from their start and end times."""
    times = sorted([(r["started"], 1) for r in runs if r["started"]]
                   + [(r["ended"], -1) for r in runs if r["ended"]])  # fmt: skip
    alive = most = 0
    for _, step in times:
        alive += step
        most = max(most, alive)
    return most


def test_parallel_cap_and_an_invalid_variant(built, tmp_path):
    runs = tmp_path / "runs"
    lrs = "train.lr=0.001,0.002,0.004,oops"
    sweep = Sweep([*_sets(built, runs, "train.epochs=4"), "--vary", lrs, "--parallel", "2",
                   "--name", "cap"])  # fmt: skip
    code = sweep.wait()
    assert code == 4, sweep.err[-3000:]
    rows = {r["overrides"][0]: r for r in _runs(runs, "cap")}
    bad = rows["train.lr=oops"]
    assert bad["status"] == "failed" and bad["started"] is None and bad["ended"] is None
    assert "train.lr" in bad["error"]
    good = [r for k, r in rows.items() if k != "train.lr=oops"]
    assert [r["status"] for r in good] == ["done"] * 3
    assert all(r["metrics"] and "best_val_loss" in r["metrics"] for r in good)
    assert _overlap(good) <= 2 and sweep.most <= 2
    assert _overlap(good) == 2, "the cap was never reached: the test proves little"
    status = run_ictal("status", str(runs), "--json")
    assert len([r for r in json.loads(status.stdout) if r["run"].startswith("cap/")]) == 3
    assert "best val loss" in sweep.out and "did not finish" in sweep.err


def test_a_memory_budget_of_one_run_admits_one_at_a_time(built, tmp_path):
    runs = tmp_path / "runs"
    # two runs suffice: had the budget admitted both, they would have overlapped
    sweep = Sweep([*_sets(built, runs), "--vary", "train.lr=0.001,0.002",
                   "--memory-gb", "0.6", "--name", "mem"])  # fmt: skip
    assert sweep.wait() == 0, sweep.err[-3000:]
    rows = _runs(runs, "mem")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"done"}
    assert all(r["peak_rss_gb"] and r["peak_rss_gb"] > 0.3 for r in rows)
    assert _overlap(rows) == 1 and sweep.most == 1, "two runs never fit in 0.6 GB"


def test_a_killed_run_is_reported_and_the_others_finish(built, tmp_path):
    runs = tmp_path / "runs"
    sweep = Sweep([*_sets(built, runs, "train.epochs=6"), "--vary", "train.lr=0.001,0.002,0.004",
                   "--parallel", "2", "--name", "kill"])  # fmt: skip
    deadline = time.monotonic() + 120
    while not sweep.trainers() and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = sweep.trainers()[0]
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    assert sweep.wait() == 4, sweep.err[-3000:]
    rows = _runs(runs, "kill")
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["exit_code"] == -9
    assert "SIGKILL" in failed[0]["error"]
    assert sorted(r["status"] for r in rows) == ["done", "done", "failed"]


def test_a_killed_sweep_resumes_without_retraining(built, tmp_path):
    runs = tmp_path / "runs"
    sweep = Sweep([*_sets(built, runs, "train.epochs=8"), "--vary", "train.lr=0.001,0.002,0.004",
                   "--parallel", "1", "--name", "resume"])  # fmt: skip
    deadline = time.monotonic() + 180

    def states() -> list[str]:
        try:
            return [r["status"] for r in _runs(runs, "resume")]
        except (OSError, ValueError):
            return []

    def second_has_trained() -> bool:  # run 1 is running and has saved a checkpoint
        if states()[:2] != ["done", "running"]:
            return False
        slot = runs / "resume" / _runs(runs, "resume")[1]["name"]
        return any(slot.glob("*/checkpoints/last.pt"))

    while not second_has_trained() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert second_has_trained(), states()
    children = sweep.trainers()
    sweep.proc.send_signal(signal.SIGKILL)
    sweep.wait()
    gone = time.monotonic() + 60  # the children got SIGTERM: they checkpoint and stop
    while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children):
        assert time.monotonic() < gone, "a trainer outlived its sweep"
        time.sleep(0.05)
    first = runs / "resume" / _runs(runs, "resume")[0]["name"]
    (run0,) = [p for p in first.iterdir() if p.is_dir()]
    before = (run0 / "checkpoints" / "last.pt").stat().st_mtime_ns
    res = run_ictal("sweep", *_sets(built, runs), "--resume", "resume")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = _runs(runs, "resume")
    assert [r["status"] for r in rows] == ["done", "done", "done"]
    assert (run0 / "checkpoints" / "last.pt").stat().st_mtime_ns == before, "retrained"
    second = runs / "resume" / rows[1]["name"]
    (run1,) = [p for p in second.iterdir() if p.is_dir()]  # continued, not started again
    assert len(json.loads((run1 / "run.json").read_text())["resumes"]) == 1


def test_a_run_that_finished_while_its_sweep_was_dead_is_not_trained_again(built, tmp_path):
    """SIGKILL of the sweep after its run finished but before the sweep reaped it (it polls
    every 600 s here): sweep.json still says running; --resume reads the run's own directory
    (final heartbeat done, metrics) and records it done without training it again."""
    runs = tmp_path / "runs"
    sweep = Sweep([*_sets(built, runs, "train.epochs=1", "sweep.poll_s=600"), "--vary",
                   "train.lr=0.001", "--name", "alone"])  # fmt: skip
    deadline = time.monotonic() + 240

    def finished() -> bool:  # the run wrote its final beat and its process has exited
        beats = list(runs.glob("alone/*/*/heartbeat.json"))
        if not beats or json.loads(beats[0].read_text() or "{}").get("state") != "done":
            return False
        return not sweep.trainers()

    while not finished():
        assert time.monotonic() < deadline and sweep.proc.poll() is None, sweep.proc.poll()
        time.sleep(0.05)
    assert [r["status"] for r in _runs(runs, "alone")] == ["running"], "reaped: no test"
    sweep.proc.send_signal(signal.SIGKILL)
    sweep.wait()
    (slot,) = [p for p in (runs / "alone").iterdir() if p.is_dir()]
    (run,) = [p for p in slot.iterdir() if p.is_dir()]
    before = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    res = run_ictal("sweep", *_sets(built, runs, "sweep.poll_s=0.2"), "--resume", "alone")
    assert res.returncode == 0, res.stderr[-3000:]
    (row,) = _runs(runs, "alone")
    assert row["status"] == "done" and row["run_dir"] == str(run), row
    assert row["metrics"] and "best_val_loss" in row["metrics"]
    assert [p for p in slot.iterdir() if p.is_dir()] == [run], "a second run was started"
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == before, "retrained"
    assert json.loads((run / "run.json").read_text())["resumes"] == []


def test_sigterm_to_the_sweep_stops_its_runs_resumably(built, tmp_path):
    runs = tmp_path / "runs"
    sweep = Sweep([*_sets(built, runs, "train.epochs=50"), "--vary", "train.lr=0.001,0.002",
                   "--parallel", "1", "--name", "term"])  # fmt: skip
    deadline = time.monotonic() + 180
    while not list(runs.glob("term/*/*/heartbeat.json")):  # training, its handler armed
        assert time.monotonic() < deadline and sweep.proc.poll() is None, sweep.proc.poll()
        time.sleep(0.02)
    children = sweep.trainers()
    sweep.proc.send_signal(signal.SIGTERM)
    assert sweep.wait() == 130, sweep.err[-3000:]
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    started = [r for r in _runs(runs, "term") if r["started"]]
    assert len(started) == 1 and started[0]["exit_code"] == 130, started
    assert "sweep --resume continues it" in started[0]["error"]


def test_a_name_that_is_not_a_plain_directory_name_is_refused(tmp_path):
    from ictal.config_file import load_config
    from ictal.errors import UsageError
    from ictal.orchestrate.budget import Budget
    from ictal.orchestrate.sweep import plan_sweep

    cfg = load_config()
    budget = Budget(cpus=1, memory_gb=1.0, gpu_memory_gb=None, parallel=1)
    for bad in ("../up", "a/b", "", ".hidden", "-x", "x" * 101, "sp ace"):
        message = f"--name {bad[:100]!r}: use a plain name of letters, digits, '_', '-' and '.'"
        with pytest.raises(UsageError, match=re.escape(message)):
            plan_sweep(cfg, tmp_path, bad, None, [], [], None, budget)
    assert not any(tmp_path.iterdir()), "a refused name made a directory"
    plan = plan_sweep(cfg, tmp_path, "lr-1.2_x", None, [], [], None, budget)
    assert plan.directory == tmp_path / "lr-1.2_x" and plan.directory.is_dir()


def test_a_sweep_refuses_to_vary_what_it_gives_each_run(ictal, tmp_path):
    """runs.root, the run's CPU and GPU share and every path are the sweep's to set: a --vary
    of one of them is a usage error naming it (exit 2), before any run starts."""
    sets = ["--set", f"runs.root={tmp_path / 'runs'}"]
    for key in ("loader.num_workers=1,2", "runs.root=a,b", "cache.root=/x,/y"):
        res = ictal("sweep", *sets, "--vary", key)
        assert res.returncode == 2, res.stderr
        assert f"--vary {key.split('=')[0]}" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
