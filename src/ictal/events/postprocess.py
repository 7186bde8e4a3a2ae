"""Post-processing: a per-recording probability trace -> seizure events in seconds.

Sample ``i`` of a trace at ``fs_out`` Hz covers ``[i / fs_out, (i + 1) / fs_out)``, so an
event made of samples ``i .. j - 1`` is ``(i / fs_out, j / fs_out)``, exact at the file edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from ictal.events.intervals import Event, merge_close

if TYPE_CHECKING:  # a type only: importing the config costs a tenth of a second
    from ictal.config import EvaluateConfig


@dataclass(frozen=True)
class PostProcess:
    """How probabilities become events: threshold or hysteresis, then merge, drop, split."""

    threshold: float = 0.5
    hysteresis_low: float | None = None
    min_duration_s: float = 2.0
    merge_gap_s: float = 0.0
    max_event_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.hysteresis_low is not None and not 0.0 <= self.hysteresis_low <= self.threshold:
            raise ValueError(
                f"hysteresis_low must be in [0, threshold={self.threshold}], "
                f"got {self.hysteresis_low}"
            )
        if self.min_duration_s < 0 or self.merge_gap_s < 0:
            raise ValueError("min_duration_s and merge_gap_s must be >= 0")
        if self.max_event_s is not None and self.max_event_s <= 0:
            raise ValueError(f"max_event_s must be > 0, got {self.max_event_s}")


def postprocess_of(ecfg: EvaluateConfig) -> PostProcess:
    """The post-processing the config's ``evaluate`` section asks for, at its threshold."""
    return PostProcess(
        threshold=ecfg.threshold,
        hysteresis_low=ecfg.hysteresis_low,
        min_duration_s=ecfg.min_duration_s,
        merge_gap_s=ecfg.merge_gap_s,
        max_event_s=ecfg.max_event_s,
    )


def events_from_probs(p: np.ndarray, fs_out: float, pp: PostProcess) -> list[Event]:
    """Events ``(start_s, stop_s)`` from one recording's probabilities, in time order.

    A sample is "on" when ``p >= threshold``; with hysteresis an event starts at a sample
    ``>= threshold`` and continues while ``p >= hysteresis_low``. Then gaps shorter than
    ``merge_gap_s`` are closed, events shorter than ``min_duration_s`` dropped, and events
    longer than ``max_event_s`` cut into the fewest equal pieces no longer than it.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"probabilities must be 1-D, got shape {p.shape}")
    if fs_out <= 0:
        raise ValueError(f"fs_out must be > 0, got {fs_out}")
    runs = _runs(p, pp)
    events = [(start / fs_out, stop / fs_out) for start, stop in runs]
    events = merge_close(events, pp.merge_gap_s)
    events = [(a, b) for a, b in events if b - a >= pp.min_duration_s]
    if pp.max_event_s is not None:
        events = split_long(events, pp.max_event_s)
    return events


def _runs(p: np.ndarray, pp: PostProcess) -> list[tuple[int, int]]:
    """Half-open sample runs ``[i, j)`` that are "on" under the threshold or hysteresis rule."""
    low = pp.threshold if pp.hysteresis_low is None else pp.hysteresis_low
    starts, stops = _true_runs(p >= low)
    if pp.hysteresis_low is None:
        return list(zip(starts.tolist(), stops.tolist(), strict=True))
    high = np.flatnonzero(p >= pp.threshold)
    runs = []
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        k = int(np.searchsorted(high, start))  # first sample >= threshold at or after start
        if k < len(high) and high[k] < stop:
            runs.append((int(high[k]), stop))
    return runs


def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) indices of the runs of True in a boolean mask."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def split_long(events: list[Event], max_s: float) -> list[Event]:
    """Cut each event longer than ``max_s`` into ``ceil(length / max_s)`` equal pieces.

    Equal pieces avoid a sliver remainder that would count as an event of its own.
    """
    out: list[Event] = []
    for start, stop in events:
        n = max(1, math.ceil((stop - start) / max_s - 1e-9))
        edges = [start + (stop - start) * k / n for k in range(n)] + [stop]
        out.extend(pairwise(edges))
    return out
