"""What this machine offers a command: the CPUs it may use (its affinity mask, which a
container, a scheduler or ``taskset`` may set lower than the CPU count), how many are idle,
whether the installed torch could see a GPU at all, and its C library's handling of freed
memory."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib.util
import os
import sys
from pathlib import Path


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


# glibc's mallopt parameters (malloc.h) and the size both are raised to: above any block a
# training step allocates, within mallopt's int.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_BLOCKS_UP_TO = 1 << 30


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks for reuse: by default it hands every block
    above its mmap threshold (128 kB, rising to 32 MB) back to the kernel when freed, so a
    CPU training step's tensors came back each step as fresh pages (2.4 million page faults,
    a third of the CPU time of a small run). The process keeps its peak instead (about 10 %
    more). Process-wide, so only what owns its process calls it (``own_process``). False
    where the C library is not glibc (nothing done)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, ValueError, AttributeError):  # no such name: not glibc
        return False
    size = ctypes.c_int(KEEP_BLOCKS_UP_TO)
    return bool(mallopt(M_MMAP_THRESHOLD, size)) and bool(mallopt(M_TRIM_THRESHOLD, size))


def spare_the_last_collection() -> None:
    """At exit, after the other exit handlers, put every object still alive out of the cyclic
    collector's reach: the interpreter's last full collection would walk them all to free
    memory the process hands back anyway (0.3 s of every process that imported torch).
    Objects are still released, and files flushed, as the interpreter tears its modules down.
    Called first thing by what owns its process (``own_process``)."""
    atexit.register(gc.freeze)  # registered first, so run last


def own_process() -> None:
    """The process-wide settings of every process Ictal owns, set first thing by each alike
    (the command line's entry, a local pool worker, a Ray worker), so that the same work
    runs the same way wherever it runs: freed memory kept, no last collection at exit."""
    spare_the_last_collection()
    keep_freed_memory()


# The libraries through which torch.cuda sees a GPU: CUDA builds and ROCm builds (whose GPUs
# torch.cuda also reports), on Linux and on Windows.
GPU_LIBRARIES = ("libtorch_cuda", "libtorch_hip", "torch_cuda", "torch_hip")


def torch_may_see_a_gpu() -> bool:
    """False only when the installed torch is certainly a CPU build (its ``lib`` holds torch's
    CPU library and no GPU one), answered without importing torch (1-2 s): a command that
    only asks about GPUs need not load it. True whenever torch is loaded or the answer is
    not certain."""
    if "torch" in sys.modules:
        return True
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return True
    if spec is None:
        return False  # no torch at all: no GPU through it
    return gpu_libraries([Path(p) / "lib" for p in spec.submodule_search_locations or []])


def gpu_libraries(libs: list[Path]) -> bool:
    """Whether torch's library directories ``libs`` hold a GPU library, or might (a layout
    without torch's CPU library is not recognised: assume it might)."""
    try:
        names = [f.name for lib in libs if lib.is_dir() for f in lib.iterdir()]
    except OSError:  # a directory it may not list: it might
        return True
    if not any(n.startswith(("libtorch_cpu", "torch_cpu")) for n in names):
        return True
    return any(n.startswith(GPU_LIBRARIES) for n in names)
