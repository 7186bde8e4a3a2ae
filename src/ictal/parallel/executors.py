"""Executors run one function over many tasks (cache builds, detection) and yield results.

The interface is deliberately tiny (`map_unordered`) so a cluster executor (`cluster.py`)
only has to ship the same task function; the output bytes never depend on which executor
ran it.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from ictal.errors import ExitCode, IctalError, PreflightError
from ictal.machine import own_process
from ictal.parallel.supervisor import signal_on_parent_death, stop

T = TypeVar("T")
R = TypeVar("R")

# Single-threaded math libraries in workers: parallelism comes from processes, and results
# must not depend on how a BLAS splits work between threads.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

# A worker keeps nothing worth a grace (a task's output is committed or redone), and SIGTERM
# ends it at once; only a stuck one waits this long for its SIGKILL.
WORKER_GRACE_S = 5.0


class Executor(Protocol):
    """Runs fn over items and yields results as they finish (any order)."""

    workers: int

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...


class SerialExecutor:
    """Runs tasks in this process, one after another (debugging, tiny corpora)."""

    workers = 1

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)


def _init_worker(parent: int) -> None:
    """Worker set-up: single-threaded math, the settings of every process Ictal owns (freed
    memory kept for the next task's arrays), Ctrl-C left to the coordinator (which ends the
    workers itself), and an exit as soon as the coordinator is gone, even by SIGKILL."""
    os.environ.update(SINGLE_THREAD_ENV)
    own_process()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` dies: the kernel's parent-death signal on Linux, and
    a watchdog thread everywhere (a worker is never orphaned to keep running)."""
    signal_on_parent_death(signal.SIGKILL, parent)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="ictal-parent-watch", daemon=True).start()


class ProcessExecutor:
    """Local worker processes (spawned, so BLAS reads the single-thread settings at import).

    With ``coordinator_works`` the calling process is one of the workers: it runs tasks itself
    whenever the children's queue is full, so start-up is paid once (a spawned child needs
    about a second to import before its first task) and one worker never spawns at all. Only
    for tasks whose bytes do not depend on the process's thread settings (the cache build
    uses no BLAS). ``start`` spawns the children early, so their imports overlap whatever
    the caller does before it maps (a build's planning).

    If the coordinator stops early (an error, SIGINT or SIGTERM raised in it), pending tasks
    are cancelled and the workers terminated at once: nothing keeps running after it.
    """

    def __init__(self, workers: int, *, coordinator_works: bool = False) -> None:
        self.workers = max(1, int(workers))
        self.coordinator_works = coordinator_works
        self._early: _Pool | None = None

    @property
    def children(self) -> int:
        """Worker processes this executor spawns (the coordinator may be one more worker)."""
        return self.workers - 1 if self.coordinator_works else self.workers

    def start(self, fn: Callable[..., Any], imports: Sequence[str] = ()) -> None:
        """Spawn the children now and have each import ``fn``'s module and ``imports`` (what
        its tasks import lazily); the next ``map_unordered`` uses them. ``close`` ends them
        if no map does."""
        if self._early is None and self.children > 0:
            self._early = _Pool.spawn(self.children, (fn.__module__, *imports))

    def close(self) -> None:
        """End children that ``start`` spawned and no map used (the caller stopped first)."""
        early, self._early = self._early, None
        if early is not None:
            early.end(finished=False)

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        children = self.children
        if children == 0:
            for item in items:
                yield fn(item)
            return
        inline = fn if self.coordinator_works else None
        early, self._early = self._early, None
        pool = early or _Pool.spawn(children, (fn.__module__,) if inline else ())
        finished = False
        try:
            if inline is None:
                yield from _bounded(pool.pool, fn, iter(items), 2 * children)
            else:
                yield from _shared(pool.pool, fn, iter(items), 2, pool.warming)
            finished = True
        finally:
            pool.end(finished)


@contextlib.contextmanager
def started(
    executor: Executor, fn: Callable[..., Any], imports: Sequence[str] = ()
) -> Iterator[Executor]:
    """The executor with its local workers spawned now (``ProcessExecutor.start``), so their
    imports overlap what the caller does before it maps; those no map used end on leaving."""
    if not isinstance(executor, ProcessExecutor):
        yield executor
        return
    executor.start(fn, imports)
    try:
        yield executor
    finally:
        executor.close()


class _Pool:
    """A pool of spawned children with the single-thread settings in their environment, and
    the warm-up tasks that report each child up once it has done its imports."""

    def __init__(
        self, pool: ProcessPoolExecutor, warming: set[Future[int]], saved: dict[str, str | None]
    ) -> None:
        self.pool = pool
        self.warming = warming
        self._saved = saved

    @classmethod
    def spawn(cls, children: int, warm: Sequence[str]) -> _Pool:
        """The pool, its children spawned by one warm-up task each when ``warm`` names the
        modules to import (else spawned as tasks come)."""
        saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
        os.environ.update(SINGLE_THREAD_ENV)  # inherited by spawned children
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(
            children, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
        )
        made = cls(pool, set(), saved)
        try:
            if warm:
                made.warming = {_submit(pool, _warm, tuple(warm)) for _ in range(children)}
        except BaseException:
            made.end(finished=False)
            raise
        return made

    def end(self, finished: bool) -> None:
        """Shut the pool down and restore the environment: wait for the children when every
        task finished and they are up, else end them now (one still importing when the
        coordinator has done all the work would only be waited for)."""
        try:
            if finished and all(f.done() for f in self.warming):
                self.pool.shutdown(wait=True)
            else:
                _terminate(self.pool)
        finally:
            for k, v in self._saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the workers now (not after their current task)."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public API before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    stop(*processes, grace_s=WORKER_GRACE_S)


class NotShared(PreflightError):
    """A worker cannot see a path the command shares with it: on a cluster, that path must
    be on a file system every node mounts at the same place (exit 3)."""


def require_visible(path: str | os.PathLike[str], setting: str) -> None:
    """Refuse, naming this host and ``setting``, when ``path`` does not exist here: a
    cluster node without the shared file system must not write to its own disk instead."""
    if not os.path.exists(path):
        raise NotShared(
            f"{path} ({setting}) is not visible on {socket.gethostname()}, a worker of this "
            "command",
            f"put {setting} on a file system every node mounts at the same path (NFS, Lustre, "
            "a cloud file store), or use the local executor",
        )


class WorkerDied(IctalError):
    """A worker process ended in the middle of a task (killed, out of memory): what finished
    is kept, and running the same command again continues (exit 3)."""

    exit_code = ExitCode.PREFLIGHT


def _died(exc: BrokenProcessPool) -> WorkerDied:
    return WorkerDied(
        "a worker process died in the middle of a task (killed by a signal or out of "
        "memory); everything finished before is kept\n  fix: run the same command again "
        "(it resumes); if it happens again, give fewer --workers or more memory"
    )


def _result(f: Future[R]) -> R:
    try:
        return f.result()
    except BrokenProcessPool as exc:
        raise _died(exc) from exc


def _submit(pool: ProcessPoolExecutor, fn: Callable[..., R], *args: Any) -> Future[R]:
    """Submit a task; a pool already broken by a worker's death says so as `_result` does
    (a death between two submissions surfaces here, not in a result)."""
    try:
        return pool.submit(fn, *args)
    except BrokenProcessPool as exc:
        raise _died(exc) from exc


def _warm(modules: tuple[str, ...]) -> int:
    """Run in a new worker: import the task's modules now; the worker's pid says it is up."""
    for module in modules:
        importlib.import_module(module)
    return os.getpid()


def _bounded(
    pool: ProcessPoolExecutor, fn: Callable[[T], R], items: Iterator[T], limit: int
) -> Iterator[R]:
    """Keep at most `limit` tasks in flight so a kill loses little and memory stays flat."""
    pending: set[Future[R]] = set()
    for item in items:
        pending.add(_submit(pool, fn, item))
        if len(pending) < limit:
            continue
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            yield _result(f)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            yield _result(f)


_END = object()  # the shared items are used up
_FED = object()  # the feeder thread has nothing left in flight


def _shared(
    pool: ProcessPoolExecutor,
    fn: Callable[[T], R],
    items: Iterator[T],
    per_child: int,
    warming: set[Future[int]],
) -> Iterator[R]:
    """Tasks shared by this process and the children: this process runs the next task
    itself, again and again, while a feeder thread keeps ``per_child`` tasks in flight on
    each child once its warm-up says it is up, refilling the moment one finishes (not when
    this process is between two tasks). Results come back here, in the order they finish."""
    feeder = _Feeder(pool, fn, items, per_child, set(warming))
    thread = threading.Thread(target=feeder.run, name="ictal-feeder", daemon=True)
    thread.start()
    try:
        fed = False
        while (item := feeder.take()) is not _END:
            yield fn(item)
            while not feeder.results.empty():
                got = feeder.results.get()
                fed = fed or got is _FED
                yield from _arrived(got)
        while not fed:
            got = feeder.results.get()
            fed = got is _FED
            yield from _arrived(got)
    finally:
        feeder.stop.set()
        thread.join(timeout=WORKER_GRACE_S)


def _arrived(got: Any) -> Iterator[Any]:
    """A child's result as the feeder passed it on, or the error that stopped it."""
    if isinstance(got, BaseException):
        raise got
    if got is not _FED:
        yield got


class _Feeder:
    """The feeder thread of ``_shared`` and the items both threads take from, one at a time."""

    def __init__(
        self,
        pool: ProcessPoolExecutor,
        fn: Callable[..., Any],
        items: Iterator[Any],
        per_child: int,
        warming: set[Future[int]],
    ) -> None:
        self.pool, self.fn, self.items = pool, fn, items
        self.per_child, self.warming = per_child, warming
        self.results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.stop, self.used_up = threading.Event(), threading.Event()
        self._lock = threading.Lock()

    def take(self) -> Any:
        """The next item, or ``_END`` once they are used up."""
        with self._lock:
            item = next(self.items, _END)
        if item is _END:
            self.used_up.set()
        return item

    def run(self) -> None:
        """Feed the children until the items are used up and nothing is in flight (children
        still starting then are not waited for), or until stopped; ends with ``_FED``."""
        try:
            self._feed()
        except BaseException as exc:  # a worker's death: raised in the coordinator
            self.results.put(exc)
        finally:
            self.results.put(_FED)

    def _feed(self) -> None:
        waiting, pending = self.warming, set[Future[Any]]()
        up = 0
        while not self.stop.is_set():
            while not self.used_up.is_set() and len(pending) < self.per_child * up:
                item = self.take()
                if item is _END:
                    break
                pending.add(_submit(self.pool, self.fn, item))
            if self.used_up.is_set() and not pending:
                return
            if not waiting and not pending:
                self.stop.wait(0.05)
                continue
            done, _ = wait(waiting | pending, timeout=0.05, return_when=FIRST_COMPLETED)
            for f in done:
                if f in waiting:
                    waiting.discard(f)
                    _result(f)
                    up += 1
                else:
                    pending.discard(f)
                    self.results.put(_result(f))
