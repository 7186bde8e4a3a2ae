"""Hypothesis export: NEDC-compatible ``.csv_bi`` and SzCORE (BIDS events) TSV per recording.

Both carry the recording's own duration: NEDC rejects a hypothesis whose duration differs
from the reference, and SzCORE reads ``recordingDuration`` to size the masks it scores.
Names are plain (``check_name``) and text cells are spreadsheet-safe (``io.cells``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ictal.corpus.annotations import format_csv_bi
from ictal.events.postprocess import Event
from ictal.io.atomic import atomic_write_many
from ictal.io.cells import text_cell
from ictal.io.paths import check_name

SZCORE_COLUMNS: tuple[str, ...] = (
    "onset",
    "duration",
    "eventType",
    "confidence",
    "channels",
    "dateTime",
    "recordingDuration",
)
NA = "n/a"


def clip_events(recording_id: str, duration_s: float, events: Sequence[Event]) -> list[Event]:
    """Events sorted and clipped to ``[0, duration_s]``: the last probability sample may run a
    little past the end of the signal. Overlapping events are an error."""
    return [event for _, event in _clip_indexed(recording_id, duration_s, events)]


def _clip_indexed(
    recording_id: str, duration_s: float, events: Sequence[Event]
) -> list[tuple[int, Event]]:
    """``clip_events`` that also keeps each event's index in the input."""
    if duration_s <= 0:
        raise ValueError(f"{recording_id}: duration {duration_s} is not positive")
    order = sorted(range(len(events)), key=lambda k: (float(events[k][0]), float(events[k][1])))
    out: list[tuple[int, Event]] = []
    for k in order:
        start, stop = max(float(events[k][0]), 0.0), min(float(events[k][1]), duration_s)
        if stop <= start:
            continue
        if out and start < out[-1][1][1]:
            raise ValueError(f"{recording_id}: overlapping events {out[-1][1]} and {events[k]}")
        out.append((k, (start, stop)))
    return out


def hypothesis_csv_bi(bname: str, duration_s: float, events: Sequence[Event]) -> str:
    """TUSZ ``.csv_bi`` text for a hypothesis: ``seiz`` rows with ``bckg`` tiling between."""
    return format_csv_bi(bname, duration_s, clip_events(bname, duration_s, events))


def szcore_tsv(
    recording_id: str,
    duration_s: float,
    events: Sequence[Event],
    *,
    confidences: Sequence[float] | None = None,
    channels: Sequence[str] | None = None,
    date_time: datetime | None = None,
) -> str:
    """SzCORE / BIDS ``_events.tsv`` text: one ``sz`` row per event, or one ``bckg`` row over
    the whole recording when there is none (as epilepsy2bids writes it). Times with two
    decimals; unknown confidence, channels and start time are ``n/a``."""
    if confidences is not None and len(confidences) != len(events):
        raise ValueError(f"{recording_id}: {len(confidences)} confidences for {len(events)} events")
    chans = text_cell(",".join(channels), tsv=True) if channels else NA
    when = date_time.strftime("%Y-%m-%d %H:%M:%S") if date_time is not None else NA
    rows = [
        (start, stop - start, "sz", None if confidences is None else float(confidences[k]))
        for k, (start, stop) in _clip_indexed(recording_id, duration_s, events)
    ]
    if not rows:
        rows = [(0.0, duration_s, "bckg", None)]
    lines = ["\t".join(SZCORE_COLUMNS)]
    for onset, length, kind, conf in rows:
        conf_text = NA if conf is None else f"{conf:.2f}"
        lines.append(
            f"{onset:.2f}\t{length:.2f}\t{kind}\t{conf_text}\t{chans}\t{when}\t{duration_s:.2f}"
        )
    return "\n".join(lines) + "\n"


def export_files(
    out_dir: str | os.PathLike[str],
    recording_id: str,
    bname: str,
    duration_s: float,
    events: Sequence[Event],
) -> dict[Path, bytes]:
    """The bytes of ``csv_bi/<bname>.csv_bi`` and ``szcore/<recording_id>_events.tsv`` under
    ``out_dir`` (names are checked: a recording id never makes a file land outside it)."""
    root = Path(out_dir)
    check_name(recording_id, "recording id")
    check_name(bname, "recording name")
    return {
        root / "csv_bi" / f"{bname}.csv_bi": hypothesis_csv_bi(bname, duration_s, events).encode(),
        root / "szcore" / f"{recording_id}_events.tsv": szcore_tsv(
            recording_id, duration_s, events
        ).encode(),
    }


def write_exports(
    out_dir: str | os.PathLike[str],
    recording_id: str,
    bname: str,
    duration_s: float,
    events: Sequence[Event],
) -> dict[str, Path]:
    """Write ``export_files`` atomically; the paths by format (``csv_bi``, ``szcore``)."""
    files = export_files(out_dir, recording_id, bname, duration_s, events)
    atomic_write_many(files)
    csv_bi, tsv = files
    return {"csv_bi": csv_bi, "szcore": tsv}
