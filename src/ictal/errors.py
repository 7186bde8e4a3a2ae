"""Exit codes scripts can trust, and the errors that map onto them (DESIGN.md, CLI contract)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every ictal command."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    PREFLIGHT = 3
    PARTIAL = 4


class IctalError(Exception):
    """Base for errors that end a command with a clear message and a specific exit code."""

    exit_code: ExitCode = ExitCode.UNEXPECTED


class UsageError(IctalError):
    """Bad arguments, config or a command that is not available."""

    exit_code = ExitCode.USAGE


class PreflightError(IctalError):
    """A check before expensive work refused to go on; the message names the fixing command."""

    exit_code = ExitCode.PREFLIGHT

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")
