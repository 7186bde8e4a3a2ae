"""An event as ``(start, stop)`` in seconds, and the merge of close ones: what the scorers need
of post-processing, without numpy (``ictal score`` starts without importing it)."""

from __future__ import annotations

Event = tuple[float, float]


def merge_close(events: list[Event], gap_s: float) -> list[Event]:
    """Join consecutive events whose gap (next start - previous stop) is below ``gap_s``."""
    merged: list[Event] = []
    for start, stop in events:
        if merged and start - merged[-1][1] < gap_s:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged
