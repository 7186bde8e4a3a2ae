"""What this machine offers a command: the CPUs it may use (its affinity mask, which a
container, a scheduler or ``taskset`` may set lower than the CPU count)."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def idle_cpus() -> int:
    """Usable CPUs that other processes do not keep busy (the 1-minute load average taken
    off, rounded; at least 1): how many processes a short CPU-bound job should run, since a
    worker started on a busy CPU pays its start-up and only competes for that CPU."""
    cpus = usable_cpus()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system
        return cpus
    return max(1, min(cpus, round(cpus - busy)))
