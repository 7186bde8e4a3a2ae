"""Exit codes scripts can trust, and the errors that map onto them (docs/design.md)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ExitCode(IntEnum):
    """Process exit codes of every ictal command."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    PREFLIGHT = 3
    PARTIAL = 4
    INTERRUPTED = 130  # SIGINT or SIGTERM: stopped cleanly, the same command resumes


class Ending(StrEnum):
    """How a command's work ended, in the library's words: results carry one (``ending``) and
    the command line turns it into the exit code (``ictal.cli.exits``)."""

    DONE = "done"
    PARTIAL = "partial"  # finished, but some inputs failed or a result could not be pushed
    REFUSED = "refused"  # a check refused the work (preflight, verification, readiness)
    INTERRUPTED = "interrupted"  # stopped by SIGINT/SIGTERM; the same command resumes

    @property
    def exit_code(self) -> ExitCode:
        """The documented exit code of this ending."""
        return _ENDING_CODES[self]


_ENDING_CODES = {
    Ending.DONE: ExitCode.OK,
    Ending.PARTIAL: ExitCode.PARTIAL,
    Ending.REFUSED: ExitCode.PREFLIGHT,
    Ending.INTERRUPTED: ExitCode.INTERRUPTED,
}


EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 unexpected error, 2 usage or config error, 3 refused "
    "(preflight, storage, unsafe input), 4 finished but some inputs failed, 130 interrupted "
    "(SIGINT/SIGTERM; run the same command again to resume)."
)


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


class UnsafePathError(PreflightError):
    """A path taken from untrusted content (a manifest, a table, a remote listing) that is
    absolute, climbs with '..', or resolves outside its root: refused, never followed."""
