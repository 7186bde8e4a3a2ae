"""Real processes, real signals, real races: two builds of one cache, a second trainer on a busy
run, SIGTERM and SIGKILL on a build with workers, SIGTERM on training. Every wait polls for the
condition it needs; only committed records are counted."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import ictal_env, run_ictal, set_args, stall_env, tiny_training
from ictal.corpus.synth import synthesize
from ictal.io.lock import is_locked

FAST = tiny_training("train.heartbeat_s=0.5")


def _sets(*pairs: str) -> list[str]:
    return set_args(*pairs)


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ictal.cli", *args],
        env=env or ictal_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _poll(condition, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended first: {proc.returncode}\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def _committed_records(cache: Path) -> int:
    return sum(
        1
        for d in cache.glob("*.building-*")
        for p in (d / "records").glob("*.json")
        if not p.name.startswith(".")
    )


def _gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    """The pids still alive after waiting up to ``timeout`` for them to end."""
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]  # fmt: skip
        time.sleep(0.05)
    return alive


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("races") / "corpus"
    synthesize(root, patients=2, hours=0.2, seed=2)
    return root


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("signals") / "corpus"
    synthesize(root, patients=6, hours=1.5, seed=6)
    return root


@pytest.mark.slow
def test_two_builds_started_together_end_with_one_cache(small, tmp_path):
    for attempt in range(6):
        cache = tmp_path / f"cache{attempt}"
        sets = _sets(f"corpus.root={small}", f"cache.root={cache}")
        procs = [_start("build", "--workers", "1", *sets) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        codes = sorted(p.returncode for p in procs)
        errs = "".join(e for _, e in outs)
        assert codes in ([0, 0], [0, 3]), f"attempt {attempt}: {codes}\n{errs[-3000:]}"
        assert "Traceback" not in errs
        if codes == [0, 3]:
            assert "in use by" in errs and f"{socket.gethostname()}:" in errs
        assert not list(cache.glob("*.building-*")), "a stray building directory was left"
        assert len([p for p in cache.iterdir() if p.is_dir()]) == 1


@pytest.mark.slow
def test_sigterm_ends_the_build_and_its_workers_resumably(medium, tmp_path):
    cache = tmp_path / "cache"
    sets = _sets(f"corpus.root={medium}", f"cache.root={cache}")
    # Each process writes one recording's array, then its next write never starts: the build
    # is still running when SIGTERM comes, however long this process waited to send it.
    stalled = stall_env(f"{cache}/*.building-*/arrays/*", after=1)
    proc = _start("build", "--workers", "2", *sets, env=stalled)
    _poll(lambda: _committed_records(cache) >= 1, proc=proc)
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert len(children) >= 2, "workers (and the resource tracker) are running"
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *children]:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        raise AssertionError(
            f"SIGTERM did not stop the build: {proc.communicate()[1][-2000:]}"
        ) from None
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted, resumable" in err and "Traceback" not in err
    assert _gone(children) == [], "worker processes outlived the build"
    done = _committed_records(cache)
    res = run_ictal("build", "--workers", "2", *sets)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{done} skipped" in res.stdout


@pytest.mark.slow
def test_workers_end_when_the_build_is_killed(medium, tmp_path):
    cache = tmp_path / "cache"
    sets = _sets(f"corpus.root={medium}", f"cache.root={cache}")
    proc = _start("build", "--workers", "2", *sets)
    _poll(lambda: _committed_records(cache) >= 1, proc=proc)
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert _gone(children) == [], "workers were orphaned by the SIGKILL of their coordinator"


@pytest.mark.slow
def test_a_busy_run_is_refused_and_sigterm_exits_130(small, tmp_path):
    sets = _sets(f"corpus.root={small}", f"cache.root={tmp_path / 'cache'}",
                 f"runs.root={tmp_path / 'runs'}", *FAST, "train.epochs=500",
                 "train.steps_per_epoch=5")  # fmt: skip
    assert run_ictal("build", "--workers", "1", *sets).returncode == 0
    proc = _start("train", *sets)
    runs = tmp_path / "runs"

    def locked() -> bool:
        return runs.is_dir() and any(is_locked(r / ".lock") for r in runs.iterdir())

    _poll(locked, proc=proc)
    second = run_ictal("train", "--resume", *sets)
    assert second.returncode == 3, second.stderr[-2000:]
    assert f"{socket.gethostname()}:{proc.pid}" in second.stderr
    assert len(list(runs.iterdir())) == 1, "no second run was started beside the busy one"
    (busy,) = runs.iterdir()
    _poll(lambda: (busy / "checkpoints" / "last.pt").is_file(), proc=proc)  # under way
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    (run,) = runs.iterdir()
    assert f"--run {run}" in err, "the hint names the command that resumes this run"
    assert (run / "checkpoints" / "last.pt").is_file()
