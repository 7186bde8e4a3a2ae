"""How a command ends: the one place that turns its outcome (the result it returned, or the
exception that stopped it) into the documented exit code and the one line the user reads.

Commands return results that say how their work ended (``ending``: done, partial, refused,
interrupted); library errors carry their exit code as a class attribute; storage errors,
interrupts and bugs are mapped here. Nothing else in Ictal picks an exit code.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import select
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import typer
import typer.main

from ictal.cli.app import CURRENT, app
from ictal.errors import Ending, ExitCode, IctalError
from ictal.machine import own_process
from ictal.ui import echo

# Storage errors that are the user's to fix (a full disk, a path that is not writable...).
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                  errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT)  # fmt: skip


def error(message: str) -> None:
    """One error message on stderr, credentials redacted."""
    echo(f"error: {message}", err=True)


def conclude(outcome: object) -> int:
    """The exit code of a command's outcome, after the line an error or interrupt owes the
    user: a result (its ``ending``), an Ending, several results (the worst), a library
    error (its class's code), a usage error of the parser, an interrupt, a storage error or
    a bug (its traceback, redacted)."""
    if outcome is None:
        return ExitCode.OK
    if isinstance(outcome, Ending):
        return _ended(outcome, None)
    if isinstance(outcome, int):  # a child's exit code (the torchrun launch)
        return _ended(Ending.INTERRUPTED, None) if outcome == ExitCode.INTERRUPTED else outcome
    if isinstance(outcome, Sequence) and not isinstance(outcome, str):
        return max((conclude(o) for o in outcome), default=ExitCode.OK)
    if isinstance(outcome, SystemExit):  # sys.exit inside a command (a broken pipe)
        code = outcome.code
        return code if isinstance(code, int) else (ExitCode.OK if code is None else 1)
    if isinstance(outcome, IctalError):
        error(str(outcome))
        return int(outcome.exit_code)
    if isinstance(outcome, KeyboardInterrupt):  # a command may name how to resume on it
        return _ended(Ending.INTERRUPTED, getattr(outcome, "resume_hint", None))
    if isinstance(outcome, BrokenPipeError) and _reader_gone():  # `ictal config | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return ExitCode.OK
    if isinstance(outcome, OSError) and outcome.errno in STORAGE_ERRNOS:
        return _os_error(outcome)
    if isinstance(outcome, BaseException):  # a bug: its traceback, credentials redacted
        echo("".join(traceback.format_exception(outcome)), err=True)
        kind = "storage error" if isinstance(outcome, OSError) else type(outcome).__name__
        error(f"unexpected {kind}: {outcome}")
        return ExitCode.UNEXPECTED
    ending = getattr(outcome, "ending", Ending.DONE)
    return _ended(ending, getattr(outcome, "resume_hint", None))


def _reader_gone() -> bool:
    """True when stdout is a pipe whose reader closed it (the reader had enough), so a broken
    pipe elsewhere (a socket to storage) is never taken for it."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLERR)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _ended(ending: Ending, resume_hint: str | None) -> int:
    """An ending's code; an interrupted one says how to resume."""
    if ending is Ending.INTERRUPTED:
        hint = f"continue with `{resume_hint}`" if resume_hint else "run the same command again"
        echo(f"interrupted, resumable: {hint}", err=True)
    return int(ending.exit_code)


def _storage_setting(filename: str | None) -> str:
    """The config setting whose directory holds ``filename`` (cache.root, runs.root...)."""
    if not filename or not CURRENT:
        return ""
    cfg = CURRENT[0]
    target = os.path.abspath(filename)
    for name, root in (("cache.root", cfg.cache.root), ("runs.root", cfg.runs.root)):
        base = os.path.abspath(root)
        if target == base or target.startswith(base + os.sep):
            return name
    return ""


def _os_error(exc: OSError) -> int:
    """A storage error as one line naming the file, what the system said and the fix."""
    where = exc.filename or "a file"
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    setting = _storage_setting(exc.filename)
    named = f" (under {setting})" if setting else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        error(f"disk full writing {where}{named}: {why}")
        disk = f"{setting}'s disk" if setting else "that disk"
        larger = f" (or point {setting} at a larger one)" if setting else ""
        echo(
            f"  fix: free space on {disk}{larger} and run the same command again: what was "
            "finished is kept",
            err=True,
        )
        return ExitCode.PREFLIGHT
    error(f"cannot use {where}{named}: {why}")
    echo(
        "  fix: point " + (setting or "the path") + " at a directory this process can read and "
        "write, or fix its permissions",
        err=True,
    )
    return ExitCode.USAGE


def command(**options: Any) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """``app.command`` for a body that returns its result: what it returns or raises goes
    through ``conclude``, and a code other than 0 ends the command with it."""

    def register(fn: Callable[..., object]) -> Callable[..., object]:
        @functools.wraps(fn)
        def body(*args: Any, **kwargs: Any) -> None:
            try:
                outcome = fn(*args, **kwargs)
            except BaseException as exc:  # every error or interrupt goes to conclude
                outcome = exc
            code = conclude(outcome)
            if code != ExitCode.OK:
                raise typer.Exit(code)

        # The command list shows the docstring's first paragraph as one line (typer keeps the
        # source's line breaks there, which cut sentences mid-way on any screen).
        first = inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0]
        app.command(**{"short_help": " ".join(first.split()), **options})(body)
        return fn

    return register


@functools.cache
def click_command() -> Any:
    """The app's click command tree, built once per process: typer rebuilds it from every
    command's signature on each call (50 ms), and a process forked after it is built (the
    test suite's) inherits it. Errors reach the same hook: typer's own hands them to Python's
    when its pretty tracebacks are off, as they are here."""
    return typer.main.get_command(app)


def run(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code (the parser's own for a usage error)."""
    try:
        click_command()(args=argv)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (ExitCode.OK if code is None else 1)
    return ExitCode.OK


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like SIGINT's KeyboardInterrupt so every command unwinds the same way:
    workers are ended, partial work stays resumable, the exit code is 130."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"received {signal.Signals(signum).name}")


def main() -> None:
    """Console-script entry point: exit codes scripts trust, and SIGINT and SIGTERM unwinding
    every command alike (exit 130), installed here whatever the process inherited: a
    background job of a script starts with SIGINT ignored, and would run on after
    ``kill -INT``. The process-wide settings first (``machine.own_process``): freed memory
    kept for reuse (a command allocates the same large arrays over and over), and no last
    walk over every object at exit."""
    own_process()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.exit(run())
