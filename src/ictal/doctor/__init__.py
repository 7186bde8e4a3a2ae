"""`ictal doctor`: is this machine ready to run a command with this config? One table of
checks (the environment against the lock, devices, storage, the cache), each ok, warn or
fail; only a fail (what would make the command fail) makes the exit code 3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ictal.errors import UsageError

Status = Literal["ok", "warn", "fail", "skip"]
COMMANDS = ("build", "stage", "train", "evaluate", "detect")


@dataclass(frozen=True)
class Check:
    """One line of the diagnosis: what was checked, its status, what was found, the fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def failed(checks: list[Check]) -> list[Check]:
    """The checks that would make the command fail."""
    return [c for c in checks if c.status == "fail"]


def check_command(command: str) -> None:
    """Refuse (exit 2) a ``--for`` that names no command doctor knows."""
    if command not in COMMANDS:
        raise UsageError(f"--for must be one of {', '.join(COMMANDS)}, got {command!r}")
