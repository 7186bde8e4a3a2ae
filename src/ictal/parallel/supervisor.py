"""The one place that starts and stops child processes.

A child is started with a parent-death signal, so it never runs on as an orphan, even when this
process is SIGKILLed. A child is stopped by one policy: SIGTERM to it (an ictal command then
checkpoints or keeps what it committed and exits), up to a grace period for it and everything
it started to end, then SIGKILL to whatever is left of that process tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

import psutil

# Time a stopped child gets to end cleanly (a training run saves a checkpoint) before SIGKILL.
GRACE_S = 120.0
_POLL_S = 0.05

# A child as its starter holds it: a subprocess, or a multiprocessing worker.
Child = subprocess.Popen | BaseProcess

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once here: a forked child then only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def signal_on_parent_death(sig: int, parent: int | None = None) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies, even by SIGKILL
    (Linux). With ``parent``, the pid the parent had: a parent already gone means ``sig`` now
    (and, off Linux, this check is all there is)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, sig)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def start(
    args: Sequence[str], *, death_signal: int = signal.SIGTERM, **popen: Any
) -> subprocess.Popen:
    """Start ``args`` as a child that gets ``death_signal`` when this process dies (SIGTERM:
    it stops cleanly). ``popen`` goes to ``subprocess.Popen``. On Linux the signal follows the
    starting thread, so start a child from a thread that lives as long as the child should."""
    arm = functools.partial(signal_on_parent_death, death_signal, os.getpid())
    return subprocess.Popen(list(args), preexec_fn=arm, **popen)


def descendants(pid: int) -> set[int]:
    """The pids of every process below ``pid`` (its children, theirs...); none once it is gone."""
    with contextlib.suppress(psutil.Error):
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    return set()


def tree_rss(pid: int) -> int:
    """Resident memory, in bytes, of ``pid`` and its descendants (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        total = root.memory_info().rss
        below = root.children(recursive=True)
    except psutil.Error:
        return 0
    for proc in below:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def stop(*children: Child, grace_s: float = GRACE_S) -> set[int]:
    """Stop ``children`` and what they started: SIGTERM to each child, up to ``grace_s`` for
    their process trees to end, then SIGKILL to what is left. The children are reaped (their
    exit codes kept); returns the pids that needed SIGKILL."""
    roots = [p for c in children if _running(c) and (p := _process(c.pid)) is not None]
    tree = {p.pid: p for p in roots}
    tree.update(_below(roots))  # taken now: a child's children are lost to view once it ends
    for proc in roots:
        _send(proc, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while True:
        for child in children:
            _running(child)  # reaps a child that ended
        left = [p for p in tree.values() if _alive(p)]
        remaining = end - time.monotonic()
        if not left or remaining <= 0:
            break
        time.sleep(min(_POLL_S, remaining))
    for pid, proc in _below(left).items():
        tree.setdefault(pid, proc)  # started during the grace
    killed = {p.pid for p in tree.values() if _alive(p) and _send(p, signal.SIGKILL)}
    for child in children:
        _reap(child)
    return killed


def _running(child: Child) -> bool:
    """True while ``child`` has not exited; polling reaps it once it has."""
    with contextlib.suppress(ValueError):  # a closed multiprocessing.Process
        if child.pid is None:  # a multiprocessing.Process never started
            return False
        code = child.poll() if isinstance(child, subprocess.Popen) else child.exitcode
        return code is None
    return False


def _reap(child: Child) -> None:
    with contextlib.suppress(OSError, ValueError, AssertionError):
        if isinstance(child, subprocess.Popen):
            child.wait()
        elif child.pid is not None:
            child.join()


def _process(pid: int) -> psutil.Process | None:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid)
    return None


def _below(procs: Iterable[psutil.Process]) -> dict[int, psutil.Process]:
    out: dict[int, psutil.Process] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            out.update((p.pid, p) for p in proc.children(recursive=True))
    return out


def _alive(proc: psutil.Process) -> bool:
    """Running (psutil checks the pid was not reused), and not a zombie waiting to be reaped."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _send(proc: psutil.Process, sig: int) -> bool:
    """Signal ``proc`` unless its pid now names another process; False when it is gone."""
    try:
        proc.send_signal(sig)
    except psutil.Error:
        return False
    return True
