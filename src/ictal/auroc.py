"""Sample-level AUROC in bounded memory, shared by validation (during training) and
evaluation: scores are counted in fixed bins, so memory does not grow with the data."""

from __future__ import annotations

import math

import numpy as np


class HistogramAuroc:
    """AUROC accumulated over recordings in fixed score bins on [0, 1]: memory does not grow.

    Exact for scores already quantised to the bins; otherwise within one bin width of ties.
    """

    def __init__(self, bins: int = 1000) -> None:
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.bins = bins
        self.pos = np.zeros(bins, dtype=np.int64)
        self.neg = np.zeros(bins, dtype=np.int64)

    def update(self, labels: np.ndarray, scores: np.ndarray) -> None:
        """Add one recording's per-sample labels and scores (probabilities in [0, 1])."""
        y = np.asarray(labels).astype(bool).ravel()
        s = np.asarray(scores, dtype=np.float64).ravel()
        if y.shape != s.shape:
            raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
        if s.size and not (np.all(s >= 0.0) and np.all(s <= 1.0)):
            raise ValueError("scores must be probabilities in [0, 1]")
        idx = np.minimum((s * self.bins).astype(np.int64), self.bins - 1)
        self.pos += np.bincount(idx[y], minlength=self.bins)
        self.neg += np.bincount(idx[~y], minlength=self.bins)

    def value(self) -> float:
        """AUROC of all samples added so far (same-bin pairs count half); nan if one class."""
        n_pos, n_neg = int(self.pos.sum()), int(self.neg.sum())
        if n_pos == 0 or n_neg == 0:
            return math.nan
        neg_below = np.cumsum(self.neg) - self.neg
        wins = float(np.sum(self.pos * (neg_below + 0.5 * self.neg)))
        return wins / (n_pos * n_neg)
