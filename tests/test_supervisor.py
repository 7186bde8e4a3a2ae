"""The supervisor with real processes: a child that ignores SIGTERM is SIGKILLed after the
grace, a grandchild is stopped with its tree, and a child gets its parent-death signal when its
parent is SIGKILLed. Every wait polls for the condition it needs."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from conftest import ictal_env
from ictal.parallel import supervisor

# A child: SIGTERM obeyed (a mark, then exit 130) or ignored; with "tree", a grandchild that
# ignores SIGTERM too. Once its handler is armed it writes its pid (and the grandchild's) to the
# file it is given.
CHILD = """
import json, signal, subprocess, sys, time
mode, mark = sys.argv[1], sys.argv[2]
if mode.startswith("ignore"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    def obey(*_):
        open(mark + ".term", "w").close()
        sys.exit(130)
    signal.signal(signal.SIGTERM, obey)
pids = {"child": __import__("os").getpid()}
if mode.endswith("tree"):
    grand = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
    pids["grandchild"] = grand.pid
with open(mark + ".tmp", "w") as f:
    json.dump(pids, f)
__import__("os").replace(mark + ".tmp", mark)
time.sleep(300)
"""


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """A test that fails half-way leaves no process sleeping on after it."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    for proc in psutil.Process().children(recursive=True):
        if proc.pid not in before:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _poll(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _child(mode: str, tmp: Path) -> tuple[subprocess.Popen, dict[str, int]]:
    mark = tmp / f"{mode}.json"
    proc = supervisor.start([sys.executable, "-c", CHILD, mode, str(mark)])
    _poll(lambda: mark.exists() or proc.poll() is not None)
    assert proc.poll() is None, f"the child ended early: {proc.returncode}"
    return proc, json.loads(mark.read_text())


def test_a_child_that_obeys_sigterm_ends_without_sigkill(tmp_path):
    proc, _ = _child("obey", tmp_path)
    started = time.monotonic()
    assert supervisor.stop(proc, grace_s=120.0) == set()
    assert proc.returncode == 130
    assert time.monotonic() - started < 60, "the grace was waited out although the child ended"


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    proc, pids = _child("ignore", tmp_path)
    started = time.monotonic()
    assert supervisor.stop(proc, grace_s=1.0) == {pids["child"]}
    assert time.monotonic() - started >= 1.0, "killed before the grace was over"
    assert proc.returncode == -signal.SIGKILL


def test_the_grandchild_is_stopped_with_the_tree(tmp_path):
    proc, pids = _child("obey-tree", tmp_path)
    assert supervisor.descendants(proc.pid) == {pids["grandchild"]}
    grand_rss = psutil.Process(pids["grandchild"]).memory_info().rss
    assert supervisor.tree_rss(proc.pid) >= grand_rss + 1_000_000  # the child's own share too
    # the child ends at SIGTERM; its orphaned grandchild, which ignores SIGTERM, is killed
    assert supervisor.stop(proc, grace_s=1.0) == {pids["grandchild"]}
    assert proc.returncode == 130
    _poll(lambda: not _alive(pids["grandchild"]))
    assert supervisor.descendants(proc.pid) == set() and supervisor.tree_rss(proc.pid) == 0


def test_a_tree_that_ignores_sigterm_is_killed_whole(tmp_path):
    proc, pids = _child("ignore-tree", tmp_path)
    assert supervisor.stop(proc, grace_s=0.5) == {pids["child"], pids["grandchild"]}
    assert proc.returncode == -signal.SIGKILL
    _poll(lambda: not _alive(pids["grandchild"]))


def test_stopping_children_that_already_ended_is_a_no_op(tmp_path):
    proc = supervisor.start([sys.executable, "-c", "raise SystemExit(3)"])
    _poll(lambda: proc.poll() is not None)
    assert supervisor.stop(proc) == set() and proc.returncode == 3


# A parent that starts CHILD through the supervisor, then waits to be killed.
PARENT = """
import sys, time
from ictal.parallel import supervisor
supervisor.start([sys.executable, "-c", sys.argv[1], "obey", sys.argv[2]])
time.sleep(300)
"""


def test_the_child_gets_sigterm_when_its_parent_is_sigkilled(tmp_path):
    mark = tmp_path / "orphan.json"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(mark)], env=ictal_env())
    child: psutil.Process | None = None
    try:
        _poll(lambda: mark.exists() or parent.poll() is not None)
        assert parent.poll() is None, f"the parent ended early: {parent.returncode}"
        child = psutil.Process(json.loads(mark.read_text())["child"])
        assert child.ppid() == parent.pid
        parent.kill()
        parent.wait()
        _poll(lambda: not _alive(child.pid))
        assert Path(f"{mark}.term").exists(), "the child ended, but not by its SIGTERM"
    finally:
        parent.kill()
        parent.wait()
        if child is not None and _alive(child.pid):
            with contextlib.suppress(psutil.Error):
                child.kill()
