"""Events as samples: the boolean mask of an event list on an output grid, which SzCORE sample
scoring and the sample-level AUROC compare step by step."""

from __future__ import annotations

import numpy as np

from ictal.events.postprocess import Event


def events_mask(events: list[Event], fs: float, n: int) -> np.ndarray:
    """Boolean mask of ``n`` samples at ``fs`` for events in seconds (``round(t * fs)``)."""
    mask = np.zeros(n, dtype=bool)
    for start, stop in events:
        mask[max(0, round(start * fs)) : max(0, round(stop * fs))] = True
    return mask
