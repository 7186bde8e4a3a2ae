"""What a process's C library does with a large block freed and taken again: run in a fresh
interpreter (tests/test_machine.py) and inside a Ray worker (tests/test_ray.py)."""

from __future__ import annotations

import resource

import numpy as np


def freed_block_refaults() -> tuple[int, int]:
    """Minor page faults of taking, filling and freeing a 64 MB block (a training step's
    tensors): the first time, and the 19 times after it. With ``machine.keep_freed_memory``
    the later ones reuse the first one's pages; by default each faults in fresh ones."""

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    seen = []
    for _ in range(20):
        before = faults()
        block = np.empty(8 << 20)
        block[::512] = 1.0
        del block
        seen.append(faults() - before)
    return seen[0], sum(seen[1:])
