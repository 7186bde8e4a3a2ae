"""Command lines of the commands Ictal runs again as children: the same words with an option
dropped (with its value), so a child never gets an option twice or one meant for the parent."""

from __future__ import annotations

from collections.abc import Sequence


def without(argv: Sequence[str], option: str, *flags: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` and without the bare ``flags``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif arg not in flags and not arg.startswith(f"{option}="):
            out.append(arg)
    return out
