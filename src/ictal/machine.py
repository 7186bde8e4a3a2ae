"""What this machine offers a command: the CPUs it may use (its affinity mask, which a
container, a scheduler or ``taskset`` may set lower than the CPU count)."""

from __future__ import annotations

import contextlib
import os


def usable_cpus() -> int:
    """CPUs this process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def idle_cpus() -> int:
    """Usable CPUs that other processes do not keep busy (rounded; at least 1): how many
    processes a short CPU-bound job should run, since a worker started on a busy CPU pays its
    start-up and only competes for that CPU. Busy is the lesser of the 1-minute load average
    and what is runnable right now: the average lags (a machine idle for the last 20 s still
    shows the job that ran before), a single look catches a passing burst."""
    cpus = usable_cpus()
    seen: list[float] = []
    with contextlib.suppress(AttributeError, OSError):  # no load average on this system
        seen.append(os.getloadavg()[0])
    now = runnable_now()
    if now is not None:
        seen.append(float(now))
    if not seen:
        return cpus
    return max(1, min(cpus, round(cpus - min(seen))))


def runnable_now(loadavg: str = "/proc/loadavg") -> int | None:
    """Threads runnable on this machine at this instant, the caller's own excluded (Linux's
    ``/proc/loadavg``, its fourth field); None where there is no such file."""
    try:
        with open(loadavg, encoding="ascii") as f:
            running = int(f.read(256).split()[3].partition("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - 1)
