"""A command under a time limit (a cloud function's timeout, a batch job's wall time).

The command runs as ``python -m ictal ...`` in a child process. ``grace_s`` before the limit it
gets SIGTERM (every command then stops cleanly: training checkpoints, builds and detection keep
what they committed; exit 130) and SIGKILL at the limit. ``until_done`` starts it again until
it finishes: the same command for the commands that resume by themselves, ``train --run DIR``
for the run the first attempt created. Attempts are bounded, and the loop stops at the first
ending that another attempt would not change (success, refusal, a crash, an interrupt from
outside).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ictal.errors import ExitCode
from ictal.orchestrate.argv import without
from ictal.parallel import supervisor
from ictal.runs.directory import RUN_JSON
from ictal.runs.meta import read_run_json
from ictal.ui import log

ICTAL = (sys.executable, "-m", "ictal")

# Exit statuses of a child stopped by the deadline: clean (130) or signalled before it could.
_STOPPED = {int(ExitCode.INTERRUPTED), -signal.SIGTERM, -signal.SIGKILL}


@dataclass
class Attempt:
    """One run of the command: its arguments, exit code and whether the limit stopped it."""

    argv: list[str]
    exit_code: int
    elapsed_s: float
    deadline: bool
    run_dir: Path | None = None


@dataclass
class Outcome:
    """Every attempt of ``until_done``; the last one says how it ended."""

    attempts: list[Attempt] = field(default_factory=list)
    interrupted: bool = False  # SIGTERM/SIGINT came from outside: no further attempt

    @property
    def exit_code(self) -> int:
        code = self.attempts[-1].exit_code if self.attempts else int(ExitCode.UNEXPECTED)
        return int(ExitCode.INTERRUPTED) if code in _STOPPED else code

    @property
    def done(self) -> bool:
        return self.exit_code == ExitCode.OK

    @property
    def run_dir(self) -> Path | None:
        return next((a.run_dir for a in reversed(self.attempts) if a.run_dir), None)


def _run_of(pids: set[int], runs_root: Path) -> Path | None:
    """The run directory under ``runs_root`` that one of ``pids`` on this host started or
    resumed (run.json records both), newest first."""
    if not runs_root.is_dir():
        return None
    host = socket.gethostname()
    for path in sorted((p for p in runs_root.iterdir() if p.is_dir()), reverse=True):
        meta = read_run_json(path / RUN_JSON)
        if not meta:
            continue
        owners = [meta, *[r for r in meta.get("resumes", []) if isinstance(r, dict)]]
        if any(o.get("host") == host and isinstance(o.get("pid"), int) and o["pid"] in pids
               for o in owners):  # fmt: skip
            return path
    return None


def run_within(
    argv: Sequence[str],
    limit_s: float,
    grace_s: float,
    runs_root: str | Path | None = None,
    env: dict[str, str] | None = None,
    stop: threading.Event | None = None,
    program: Sequence[str] = ICTAL,
) -> Attempt:
    """Run ``ictal ARGV`` until it exits, stopping it at ``limit_s`` (SIGTERM ``grace_s``
    earlier, SIGKILL to what is left at the limit). ``stop`` set from outside forwards SIGTERM
    at once. With ``runs_root``, the run directory the command trained in is found by its
    process id. The command gets SIGTERM if this runner dies."""
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    soft = start + max(0.0, limit_s - grace_s)
    proc = supervisor.start([*program, *argv], stdin=subprocess.DEVNULL, env=child_env)
    pids = {proc.pid}
    deadline = False
    while proc.poll() is None:
        pids |= supervisor.descendants(proc.pid)
        now = time.monotonic()
        if now >= soft or (stop is not None and stop.is_set()):
            deadline = now >= soft
            why = "the time limit is near" if deadline else "this runner was asked to stop"
            log.info(f"deadline: {why}; SIGTERM to the command (it checkpoints and stops)")
            if supervisor.stop(proc, grace_s=max(0.0, start + limit_s - now)):  # until the limit
                log.info("deadline: the time limit is reached; SIGKILL to the command")
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.25)
    run_dir = _run_of(pids, Path(runs_root)) if runs_root is not None else None
    return Attempt(list(argv), int(proc.returncode), time.monotonic() - start, deadline, run_dir)


def continue_argv(argv: Sequence[str], run_dir: Path | None) -> list[str]:
    """The command line of the next attempt: ``train`` continues its run (``--run DIR``), every
    other command resumes by being run again unchanged."""
    argv = list(argv)
    if not argv or argv[0] != "train" or run_dir is None:
        return argv
    return [*without(argv, "--run", "--resume"), "--run", str(run_dir)]


def until_done(
    argv: Sequence[str],
    limit_s: float,
    grace_s: float,
    max_attempts: int,
    runs_root: str | Path | None = None,
    env: dict[str, str] | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
    program: Sequence[str] = ICTAL,
) -> Outcome:
    """Attempts of ``ictal ARGV`` under the limit until one ends for a reason other than the
    limit, at most ``max_attempts``. SIGTERM or SIGINT to this process stop the current
    attempt cleanly and end the loop."""
    outcome = Outcome()
    stop = threading.Event()
    previous = _forward_signals(stop)
    try:
        current = list(argv)
        for number in range(1, max_attempts + 1):
            attempt = run_within(current, limit_s, grace_s, runs_root, env, stop, program)
            outcome.attempts.append(attempt)
            if on_attempt is not None:
                on_attempt(attempt)
            if stop.is_set():
                outcome.interrupted = True
                break
            if not (attempt.deadline and attempt.exit_code in _STOPPED):
                break
            if number == max_attempts:
                log.info(f"deadline: {max_attempts} attempts spent; the work is resumable")
                break
            current = continue_argv(current, attempt.run_dir or outcome.run_dir)
            log.info(f"deadline: attempt {number + 1}/{max_attempts}: ictal {' '.join(current)}")
    finally:
        _restore_signals(previous)
    return outcome


def _forward_signals(stop: threading.Event) -> dict[int, object]:
    """SIGTERM/SIGINT set ``stop`` (the attempt then forwards SIGTERM); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, object] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    return previous


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
