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

from conftest import poll
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


def _workers_of_this_process() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if _is_worker(p)}


def test_started_workers_import_before_the_map_and_end_when_unused() -> None:
    """`start` spawns the children at once (a build's planning then overlaps their imports);
    `close` ends them when no map used them (an up-to-date cache, a refusal in planning)."""
    before = _workers_of_this_process()
    executor = ProcessExecutor(3, coordinator_works=True)
    executor.start(pid_of, ("json",))
    # A spawned child shows its own command line once it has exec'd, a moment after the
    # fork; no task but start's warm-ups was given, so a child seen is one start spawned.
    spawned = poll(lambda: len(s := _workers_of_this_process() - before) == 2 and s,
                   timeout=60, what="start spawning every child before any task")  # fmt: skip
    executor.close()
    for pid in spawned:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            assert proc.status() == psutil.STATUS_ZOMBIE or not proc.is_running()


def test_started_workers_take_tasks_of_the_next_map() -> None:
    executor = ProcessExecutor(2, coordinator_works=True)
    executor.start(pid_of)
    spawned = poll(lambda: _workers_of_this_process(), timeout=60, what="the child spawned")
    done = list(executor.map_unordered(pid_of, range(200)))
    assert sorted(item for item, _ in done) == list(range(200)), "each task exactly once"
    children = {pid for _, pid in done} - {os.getpid()}
    assert children and children <= spawned, "the started child, not a new one, took tasks"
    executor.close()  # nothing left to end


def die_in_any_child(item: int) -> int:
    """A task whose worker process dies whenever a child runs it; the coordinator lives."""
    if multiprocessing.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return item


def test_a_worker_that_dies_while_the_coordinator_works_is_worker_died() -> None:
    """With the coordinator taking tasks too, a child's death still surfaces in it as
    WorkerDied, however many tasks are left."""
    with pytest.raises(WorkerDied, match="a worker process died"):
        for _ in ProcessExecutor(2, coordinator_works=True).map_unordered(
            die_in_any_child, range(10_000)
        ):
            pass


def test_a_default_pool_has_no_more_workers_than_tasks():
    from ictal.machine import usable_cpus
    from ictal.parallel.engines import pool_workers

    assert pool_workers(None, 1) == 1
    assert pool_workers(None, 10_000) == usable_cpus()
    assert pool_workers(3, 1) == 3, "a number asked for is kept"
