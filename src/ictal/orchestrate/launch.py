"""One command on several ranks of this machine: ``ictal train --nproc N`` (or ``bench``)
runs again under ``torch.distributed.run``, which starts the N ranks of DistributedDataParallel.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ictal.errors import ExitCode, UsageError
from ictal.machine import usable_cpus
from ictal.orchestrate.argv import without
from ictal.parallel import supervisor
from ictal.train.distributed import launched


def torchrun_args(nproc: int, argv: Sequence[str]) -> list[str]:
    """The launcher's command line: ``nproc`` ranks of ``python -m ictal ARGV`` on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "ictal", *without(argv, "--nproc")]  # fmt: skip


def torchrun(nproc: int, argv: Sequence[str]) -> int:
    """Run the command line ``argv`` (``--nproc`` is dropped) on ``nproc`` ranks under torchrun
    and return the launcher's exit code. Each rank gets its share of the CPUs as
    ``OMP_NUM_THREADS`` unless it is set. SIGINT/SIGTERM here (KeyboardInterrupt) stop the
    launcher, which passes SIGTERM to every rank: they checkpoint and stop (exit 130)."""
    if launched():
        raise UsageError("--nproc under torchrun: give --nproc-per-node to torchrun, not --nproc")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cpus() // nproc)))
    proc = supervisor.start(torchrun_args(nproc, argv), env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        supervisor.stop(proc)
        return int(ExitCode.INTERRUPTED)
