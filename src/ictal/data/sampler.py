"""Class-balanced window sampler, redrawn every epoch, deterministic and resumable.

Ratios are relative to a base count (docs/training.md): all partial-seizure windows,
full-seizure windows at most 0.3x and background at most 2.5x that base. The draw depends
only on (seed, epoch), so a resumed run sees exactly the windows it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.utils.data

from ictal.data.windows import BACKGROUND, CLASS_NAMES, FULL, PARTIAL, WindowIndex


class BalancedSampler(torch.utils.data.Sampler[int]):
    """Yield window ids of one rank: a shuffled, class-balanced draw from the whole index.

    Base count: the number of partial-seizure windows, or, when there are none, the number
    of seizure (full) windows; an index without seizure windows is refused. Each class
    contributes ``min(available, round(ratio * base))`` windows drawn without replacement.

    Ranks: the shuffled global draw is trimmed to a multiple of ``world_size`` (dropping
    fewer than ``world_size`` random windows per epoch) and rank ``r`` takes every
    ``world_size``-th window from ``r``, so ranks are disjoint, complete and equally long.
    """

    def __init__(
        self,
        index: WindowIndex,
        *,
        partial: float = 1.0,
        full: float = 0.3,
        background: float = 2.5,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        ratios = {"partial": partial, "full": full, "background": background}
        if any(r < 0 for r in ratios.values()):
            raise ValueError(f"sampler ratios must be >= 0, got {ratios}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, {world_size=}")
        counts = index.counts()
        base = counts["partial"] or counts["full"]
        if base == 0:
            raise ValueError(
                f"the window index has no seizure windows ({counts}); balanced sampling "
                "needs seizures in the training split (check the cache labels and window size)"
            )
        self.index = index
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.base = base
        self._pools = [np.flatnonzero(index.cls == c) for c in (PARTIAL, FULL, BACKGROUND)]
        self.per_class = {
            name: min(len(pool), round(ratios[name] * base))
            for name, pool in zip(("partial", "full", "background"), self._pools, strict=True)
        }
        total = sum(self.per_class.values())
        self.global_length = total - total % world_size
        if self.global_length == 0:
            raise ValueError(f"the draw {self.per_class} is empty for {world_size} ranks")
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, np.ndarray] | None = None

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The global draw of ``epoch`` (all ranks), shuffled, as int64 window ids."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        chosen = [
            rng.choice(pool, size=self.per_class[name], replace=False)
            for name, pool in zip(("partial", "full", "background"), self._pools, strict=True)
        ]
        draw = rng.permutation(np.concatenate(chosen).astype(np.int64))[: self.global_length]
        self._cache = (epoch, draw)
        return draw

    def rank_indices(self, epoch: int) -> np.ndarray:
        """This rank's share of the draw of ``epoch``."""
        return self.epoch_indices(epoch)[self.rank :: self.world_size]

    def expected_positive_fraction(self, epoch: int) -> float:
        """Mean per-sample seizure fraction of the draw (no data read): BCE weight, logged."""
        return float(
            self.index.seizure_fraction[self.epoch_indices(epoch)].astype(np.float64).mean()
        )

    def pos_weight(self, epoch: int) -> float:
        """BCE positive weight ``(1 - p) / p`` for the draw of ``epoch`` (p as above)."""
        p = self.expected_positive_fraction(epoch)
        return (1.0 - p) / p

    def class_counts(self, epoch: int) -> dict[str, int]:
        """Windows per class in the (trimmed) draw of ``epoch``."""
        n = np.bincount(self.index.cls[self.epoch_indices(epoch)], minlength=len(CLASS_NAMES))
        return {name: int(n[k]) for k, name in enumerate(CLASS_NAMES)}

    def set_epoch(self, epoch: int) -> None:
        """Move to ``epoch`` from its start; the current epoch keeps its position (resume)."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self.position = 0

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's window ids from ``position``; ``position`` counts what was yielded.

        A DataLoader reads ahead of the training step, so checkpoint the number of samples
        actually trained (``state_dict(consumed=...)``) rather than this read-ahead position.
        """
        ids = self.rank_indices(self.epoch)
        while self.position < len(ids):
            i = ids[self.position]
            self.position += 1
            yield int(i)

    def __len__(self) -> int:
        """Windows this rank sees in a whole epoch (a resumed epoch yields len - position)."""
        return self.global_length // self.world_size

    def state_dict(self, consumed: int | None = None) -> dict[str, int]:
        """JSON-able state: epoch and position (``consumed`` overrides the read-ahead count)."""
        position = self.position if consumed is None else int(consumed)
        if not 0 <= position <= len(self):
            raise ValueError(f"position {position} outside the epoch of length {len(self)}")
        return {"epoch": self.epoch, "position": position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore epoch and position; the next iteration yields exactly the rest of the epoch."""
        position = int(state["position"])
        if not 0 <= position <= len(self):
            raise ValueError(f"position {position} outside the epoch of length {len(self)}")
        self.epoch = int(state["epoch"])
        self.position = position
