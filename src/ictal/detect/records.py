"""The records of ``ictal detect``: one per finished recording (its events, or its error),
appended to the durable record log; read back, validated, and reduced to one result per
recording (the newest)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal.config import canonical_json
from ictal.io.framelog import read_records, segments
from ictal.io.storage import open_url, storage_errors

RECORD_VERSION = 1
LOG_DIR = "log"


def settings_hash(settings: dict[str, Any]) -> str:
    """sha256 of everything besides the model that decides a recording's events."""
    return hashlib.sha256(canonical_json(settings).encode()).hexdigest()


def encode(record: dict[str, Any]) -> bytes:
    """The payload of one record (strict JSON)."""
    return json.dumps({"v": RECORD_VERSION, **record}, allow_nan=False).encode("utf-8")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def decode(payload: bytes) -> dict[str, Any] | None:
    """A record from its payload, or None when it is not one this ictal wrote (records may
    come from a sink anyone can write: every field is checked before use)."""
    try:
        rec = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(rec, dict) or rec.get("v") != RECORD_VERSION:
        return None
    if not isinstance(rec.get("recording"), str) or rec.get("status") not in ("done", "failed"):
        return None
    if not isinstance(rec.get("name"), str) or not _is_number(rec.get("time")):
        return None
    if rec["status"] == "failed":
        return rec if isinstance(rec.get("error"), str) else None
    events = rec.get("events")
    if not _is_number(rec.get("duration_s")) or not isinstance(events, list):
        return None
    for ev in events:
        if not (isinstance(ev, list) and len(ev) == 3 and all(_is_number(x) for x in ev)):
            return None
    return rec


@dataclass
class Loaded:
    """Every valid record read, and what was skipped on the way (torn or damaged frames,
    records that are not ictal's)."""

    records: list[dict[str, Any]]
    warnings: list[str]


def load_local(directory: Path) -> Loaded:
    """The records of one detect output directory (its ``log/``)."""
    warnings: list[str] = []
    out: list[dict[str, Any]] = []
    bad = 0
    for payload in read_records(segments(Path(directory) / LOG_DIR), warnings):
        rec = decode(payload)
        if rec is None:
            bad += 1
        else:
            out.append(rec)
    if bad:
        warnings.append(f"{directory}: {bad} record(s) that are not ictal detect records skipped")
    return Loaded(out, warnings)


def load_url(url: str) -> Loaded:
    """The records of every sealed segment under a sink URL (all pushed detect runs)."""
    from ictal.io.framelog import SEALED, scan_bytes

    fs, root = open_url(url, "--collect")
    warnings: list[str] = []
    out: list[dict[str, Any]] = []
    fix = "check the URL and its credentials (environment variables)"
    with storage_errors(url, "reading the record logs at", fix):
        paths = sorted(fs.glob(f"{root}/**/{LOG_DIR}/*{SEALED}"))
        for path in paths:
            found = scan_bytes(fs.cat_file(path))
            if found.problem:
                warnings.append(f"{path}: {found.problem}; {len(found.records)} records kept")
            for payload in found.records:
                rec = decode(payload)
                if rec is not None:
                    out.append(rec)
    return Loaded(out, warnings)


def newest(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One record per recording: the newest (a recording is never in the results twice)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        seen = out.get(rec["recording"])
        if seen is None or (rec["time"], rec.get("host", ""), rec.get("pid", 0)) > (
            seen["time"],
            seen.get("host", ""),
            seen.get("pid", 0),
        ):
            out[rec["recording"]] = rec
    return out
