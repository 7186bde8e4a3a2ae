"""Class-balanced window sampler, redrawn every epoch, deterministic and resumable.

Ratios are relative to a base count (docs/training.md): all partial-seizure windows,
full-seizure windows at most 0.3x and background at most 2.5x that base. The draw depends
only on (seed, epoch), so a resumed run sees exactly the windows it would have seen.
With corpus weights (a mixture cache), each class's draw is shared among the corpora in
proportion to their weights instead of their sizes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
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

    Corpus weights: ``corpus[i]`` is window ``i``'s corpus id and ``corpus_weights[c]`` the
    weight of corpus ``c``. Each class's draw is then shared among the corpora of its pool
    in proportion to their weights (``round(k * w_c / sum(w))`` windows from corpus ``c``,
    drawn uniformly among its ``n_c`` windows of that class: per-window probability
    ``k * w_c / (sum(w) * n_c)``). A corpus with fewer windows than its share gives all of
    them and the others share the rest by weight; weight-0 windows are never drawn and a
    class draws at most its positive-weight windows. Without weights the draw is uniform
    within each class (the original stream, byte for byte).
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
        corpus: np.ndarray | None = None,
        corpus_weights: Sequence[float] | None = None,
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
        self.corpus: np.ndarray | None = None
        self.corpus_weights: np.ndarray | None = None
        self._groups: list[list[np.ndarray]] | None = None  # per class, per corpus
        available = [len(pool) for pool in self._pools]
        if (corpus is None) != (corpus_weights is None):
            raise ValueError("corpus and corpus_weights go together: give both or neither")
        if corpus is not None and corpus_weights is not None:
            self.corpus, self.corpus_weights = self._check_corpus(index, corpus, corpus_weights)
            self._groups = [self._groups_of(pool) for pool in self._pools]
            positive = self.corpus_weights > 0
            available = [
                sum(len(g) for g, pos in zip(gs, positive, strict=True) if pos)
                for gs in self._groups
            ]
        self.per_class = {
            name: min(n, round(ratios[name] * base))
            for name, n in zip(("partial", "full", "background"), available, strict=True)
        }
        self._quotas: list[np.ndarray] | None = None  # per class: windows of each corpus
        if self._groups is not None:
            self._quotas = [
                self._allocate(k, np.array([len(g) for g in groups], dtype=np.int64))
                for k, groups in zip(self.per_class.values(), self._groups, strict=True)
            ]
        total = sum(self.per_class.values())
        self.global_length = total - total % world_size
        if self.global_length == 0:
            raise ValueError(f"the draw {self.per_class} is empty for {world_size} ranks")
        self.epoch = 0
        self.position = 0
        self._cache: tuple[int, np.ndarray] | None = None

    @staticmethod
    def _check_corpus(
        index: WindowIndex, corpus: np.ndarray, weights: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validate the per-window corpus ids against the index and the weights."""
        ids = np.asarray(corpus)
        w = np.asarray(weights, dtype=np.float64)
        if ids.shape != (len(index),) or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"corpus must hold one integer id per window ({len(index)}), got "
                f"{ids.dtype} of shape {ids.shape}"
            )
        if w.ndim != 1 or not np.all(np.isfinite(w)) or (w < 0).any():
            raise ValueError(f"corpus weights must be finite and >= 0, got {w.tolist()}")
        if len(ids) and (ids.min() < 0 or ids.max() >= len(w)):
            raise ValueError(f"corpus ids must lie in [0, {len(w)}), one weight per corpus")
        return ids.astype(np.int64), w

    def _groups_of(self, pool: np.ndarray) -> list[np.ndarray]:
        """A class pool's window ids split by corpus (ascending ids within each)."""
        assert self.corpus is not None and self.corpus_weights is not None
        ids = self.corpus[pool]
        order = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[order], np.arange(len(self.corpus_weights) + 1))
        return [pool[order[a:b]] for a, b in itertools.pairwise(bounds)]

    def _allocate(self, k: int, available: np.ndarray) -> np.ndarray:
        """Split ``k`` draws among corpora in proportion to their weights, capped by what
        each corpus has: a capped corpus gives all its windows and the rest is shared again
        among the others (largest remainders, ties to the lower id, so deterministic)."""
        assert self.corpus_weights is not None
        w = self.corpus_weights
        quota = np.zeros(len(w), dtype=np.int64)
        active = (w > 0) & (available > 0)
        remaining = k
        while remaining > 0 and active.any():
            ideal = np.where(active, remaining * w / w[active].sum(), 0.0)
            full = active & (ideal >= available)
            if full.any():  # these corpora are exhausted: take them whole, reshare the rest
                quota[full] = available[full]
                remaining -= int(available[full].sum())
                active &= ~full
                continue
            base = np.floor(ideal).astype(np.int64)
            extra = remaining - int(base.sum())
            rest = np.flatnonzero(active)
            order = rest[np.argsort(-(ideal[rest] - base[rest]), kind="stable")]
            base[order[:extra]] += 1
            quota += base
            break
        return quota

    def _weighted_choice(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Each class's windows: an exact per-corpus quota (``_allocate``), each corpus's
        quota drawn uniformly without replacement; sorted by id, so deterministic.

        One random key per window and ``argpartition`` for the smallest ``q`` (O(n) time and
        memory), so pools of millions of windows cost a fraction of a second.
        """
        assert self._groups is not None and self._quotas is not None
        chosen = []
        for groups, quota in zip(self._groups, self._quotas, strict=True):
            picked = []
            for group, q in zip(groups, quota.tolist(), strict=True):
                if q >= len(group):
                    picked.append(group)
                elif q > 0:
                    keys = rng.random(len(group))
                    picked.append(group[np.argpartition(keys, q - 1)[:q]])
            chosen.append(np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64))
        return chosen

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The global draw of ``epoch`` (all ranks), shuffled, as int64 window ids."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        if self._groups is None:
            chosen = [
                rng.choice(pool, size=self.per_class[name], replace=False)
                for name, pool in zip(("partial", "full", "background"), self._pools, strict=True)
            ]
        else:
            chosen = self._weighted_choice(rng)
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

    def corpus_class_counts(self, epoch: int) -> np.ndarray:
        """Windows per (corpus id, class) in the draw of ``epoch``: shape (corpora, classes),
        class columns in CLASS_NAMES order; the draw's composition, logged."""
        if self.corpus is None or self.corpus_weights is None:
            raise ValueError("the sampler has no corpus weights")
        draw = self.epoch_indices(epoch)
        n_cls = len(CLASS_NAMES)
        flat = self.corpus[draw] * n_cls + self.index.cls[draw]
        counts = np.bincount(flat, minlength=len(self.corpus_weights) * n_cls)
        return counts.reshape(len(self.corpus_weights), n_cls)

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
