"""What this machine offers a command: the CPUs it may use (its affinity mask, which a
container, a scheduler or ``taskset`` may set lower than the CPU count)."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
