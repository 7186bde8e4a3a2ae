"""The local executor with a working coordinator: one worker never spawns, more share the
tasks with the coordinator, and every task runs exactly once."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from ictal.parallel.executors import ProcessExecutor, WorkerDied


def pid_of(item: int) -> tuple[int, int]:
    """A task: which process ran item ``item``."""
    time.sleep(0.01)
    return item, os.getpid()


def test_one_worker_runs_everything_here_without_a_child() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    results = list(ProcessExecutor(1, coordinator_works=True).map_unordered(pid_of, range(20)))
    assert sorted(results) == [(i, os.getpid()) for i in range(20)]
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before


def test_two_workers_share_the_tasks_with_the_coordinator() -> None:
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 120
    executor = ProcessExecutor(2, coordinator_works=True)
    results = executor.map_unordered(pid_of, itertools.count())
    for item, pid in results:
        assert item not in seen, "a task ran twice"
        seen[item] = pid
        if len(set(seen.values()) - {os.getpid()}) and len(seen) >= 20:
            break  # the worker is up and took tasks; the coordinator took some too
        assert time.monotonic() < deadline, "the worker never took a task"
    results.close()
    pids = set(seen.values())
    assert os.getpid() in pids and len(pids) == 2
    # a bounded stream of tasks all comes back, exactly once
    done = list(executor.map_unordered(pid_of, range(50)))
    assert sorted(item for item, _ in done) == list(range(50))


def die_in_a_child(item: tuple[int, str]) -> int:
    """A task whose worker process dies (as under SIGKILL or the OOM killer) at item 0, after
    leaving a mark; the coordinator runs tasks too and lives."""
    number, mark = item
    if number == 0 and multiprocessing.parent_process() is not None:
        Path(mark).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return number


def test_a_worker_that_dies_is_worker_died_wherever_it_surfaces(tmp_path: Path) -> None:
    """The death shows up in a result or in the next submission: both are WorkerDied (exit 3
    with the fix), never a raw BrokenProcessPool. Here the next task is handed over only once
    the worker is dead, so the death surfaces in the submission."""
    mark = tmp_path / "died"

    def items():  # type: ignore[no-untyped-def]
        yield 0, str(mark)
        deadline = time.monotonic() + 60
        while not mark.exists():
            assert time.monotonic() < deadline, "the worker never ran the task"
            time.sleep(0.01)
        time.sleep(0.5)  # the pool notices its dead worker
        yield 1, str(mark)

    with pytest.raises(WorkerDied, match="a worker process died"):
        for _ in ProcessExecutor(1).map_unordered(die_in_a_child, items()):
            pass


def pid_then_wait(item: int) -> int:
    """A task: item 0 answers at once, the others take a minute."""
    if item:
        time.sleep(60)
    return os.getpid()


def _is_worker(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return any("spawn_main" in arg for arg in proc.cmdline())
    return False


def test_workers_are_ended_at_once_when_the_coordinator_stops() -> None:
    """Leaving the results early (as an error or Ctrl-C in the coordinator does) ends the
    workers in the middle of their tasks, not after them."""
    results = ProcessExecutor(2).map_unordered(pid_then_wait, range(6))
    worker = next(results)
    workers = [p for p in psutil.Process().children(recursive=True) if _is_worker(p)]
    assert worker in {p.pid for p in workers}
    started = time.monotonic()
    results.close()
    assert time.monotonic() - started < 30, "the workers finished their tasks first"
    for p in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            assert p.status() == psutil.STATUS_ZOMBIE or not p.is_running()
