"""The records of ``ictal detect``: one per finished recording (its events, or its error),
appended to the durable record log; read back, validated, and reduced to one result per
recording (the newest).

Records are untrusted on read (a sink anyone can write, a log someone edited): every field
is checked before use, and an invalid record is skipped with a warning naming its segment,
its byte offset and the field, the others going on. A recording whose record is skipped has
no result, so a detect run computes it again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ictal.config import canonical_json
from ictal.io.framelog import MAX_SEGMENT, SEALED, Frame, read_log, scan_bytes
from ictal.io.redact import redact, redact_tree
from ictal.io.storage import open_url, storage_errors
from ictal.io.untrusted import UnreadableInput, loads_json

RECORD_VERSION = 1
LOG_DIR = "log"
MAX_DURATION_S = 366 * 86400.0  # a recording longer than a year is not one
MIN_FS_OUT = 1e-3  # an output step longer than 1000 s is not one
MAX_ERROR = 10000  # characters of a failed record's error (ictal writes one line)
_SAID = 20  # invalid records said one by one; the rest counted in one line


def settings_hash(settings: dict[str, Any]) -> str:
    """sha256 of everything besides the model that decides a recording's events."""
    return hashlib.sha256(canonical_json(settings).encode()).hexdigest()


def encode(record: dict[str, Any]) -> bytes:
    """The payload of one record (strict JSON, ASCII; no credential: every string masked)."""
    return json.dumps({"v": RECORD_VERSION, **redact_tree(record)}, allow_nan=False).encode()


class InvalidRecord(ValueError):
    """A payload that is not a detect record this ictal can use; the message names the field."""


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _need(ok: bool, what: str, value: Any, rule: str) -> None:
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise InvalidRecord(f"{what} is {shown} ({rule})")


def _check_common(rec: dict[str, Any]) -> None:
    _need(rec.get("v") == RECORD_VERSION, "v", rec.get("v"), f"this ictal reads {RECORD_VERSION}")
    key = rec.get("recording")
    _need(isinstance(key, str) and 0 < len(key) <= 4096 and "\x00" not in key, "recording",
          key, "must be a path or URL")  # fmt: skip
    _need(isinstance(rec.get("name"), str), "name", rec.get("name"), "must be text")
    _need(rec.get("status") in ("done", "failed"), "status", rec.get("status"),
          "must be done or failed")  # fmt: skip
    _need(_number(rec.get("time")) and rec["time"] >= 0, "time", rec.get("time"),
          "must be a time stamp")  # fmt: skip
    for name in ("host", "model_sha256", "settings_sha256", "source_sha256"):
        _need(isinstance(rec.get(name, ""), str), name, rec.get(name), "must be text")
    pid = rec.get("pid", 0)
    _need(isinstance(pid, int) and not isinstance(pid, bool), "pid", pid, "must be an integer")
    source = rec.get("source", {})
    _need(isinstance(source, dict), "source", source, "must be an object")
    size = source.get("size", 0)
    _need(isinstance(size, int) and not isinstance(size, bool) and size >= 0, "source.size",
          size, "must be a byte count")  # fmt: skip
    _need(isinstance(source.get("mtime", ""), str), "source.mtime", source.get("mtime"),
          "must be text")  # fmt: skip


def _check_done(rec: dict[str, Any]) -> None:
    duration = rec.get("duration_s")
    _need(_number(duration) and 0 < duration <= MAX_DURATION_S, "duration_s", duration,
          f"must be more than 0 and at most {MAX_DURATION_S:.0f} seconds")  # fmt: skip
    fs_out = rec.get("fs_out")
    _need(_number(fs_out) and fs_out >= MIN_FS_OUT, "fs_out", fs_out,
          f"must be an output rate of at least {MIN_FS_OUT} Hz")  # fmt: skip
    events = rec.get("events")
    _need(isinstance(events, list), "events", events, "must be a list")
    slack = 1.0 / fs_out  # the last output step may end past the signal (stitch.py)
    previous = 0.0
    for k, ev in enumerate(events):
        where = f"events[{k}]"
        _need(isinstance(ev, list) and len(ev) == 3 and all(_number(x) for x in ev), where, ev,
              "must be [start_s, stop_s, peak_prob]")  # fmt: skip
        start, stop, peak = ev
        _need(0 <= start < stop <= duration + slack, where, ev,
              f"must have 0 <= start < stop <= duration_s {duration}")  # fmt: skip
        _need(0 <= peak <= 1, where, ev, "peak_prob must be a probability in [0, 1]")
        _need(start >= previous, where, ev, "events must be in time order, not overlapping")
        previous = stop


def parse(payload: bytes) -> dict[str, Any]:
    """A record from its payload, checked field by field and with any credential masked;
    ``InvalidRecord`` naming the field otherwise."""
    try:
        rec = loads_json(payload, "record")
    except UnreadableInput as exc:
        raise InvalidRecord(str(exc)) from None
    if not isinstance(rec, dict):
        raise InvalidRecord("not a JSON object")
    _check_common(rec)
    if rec["status"] == "failed":
        error = rec.get("error")
        _need(isinstance(error, str) and len(error) <= MAX_ERROR, "error", error,
              f"must be a text of at most {MAX_ERROR} characters")  # fmt: skip
    else:
        _check_done(rec)
    return redact_tree(rec)


def decode(payload: bytes) -> dict[str, Any] | None:
    """``parse``, or None for a payload that is not a valid record."""
    try:
        return parse(payload)
    except InvalidRecord:
        return None


@dataclass
class Loaded:
    """Every valid record read, what was skipped on the way (said in ``warnings``) and how
    many stretches of log or records were lost (``lost``: results may be missing)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lost: int = 0

    def __add__(self, other: Loaded) -> Loaded:
        return Loaded(self.records + other.records, self.warnings + other.warnings,
                      self.lost + other.lost)  # fmt: skip


def _take(frames: Iterable[Frame], out: Loaded) -> None:
    """The valid records of ``frames`` into ``out``; each invalid one said (up to ``_SAID``
    per segment, the rest counted)."""
    bad: dict[str, int] = {}
    for found in frames:
        try:
            out.records.append(parse(found.payload))
        except InvalidRecord as exc:
            segment = str(found.segment)
            bad[segment] = bad.get(segment, 0) + 1
            if bad[segment] <= _SAID:
                out.warnings.append(f"{segment}: record at byte {found.offset} skipped: {exc}")
    for segment, count in bad.items():
        if count > _SAID:
            out.warnings.append(f"{segment}: {count - _SAID} more invalid records skipped")
    out.lost += sum(bad.values())


def load_local(directory: Path) -> Loaded:
    """The records of one detect output directory (its ``log/``); a segment sealed or
    rotated by a live writer while it is read is read under its new name."""
    out = Loaded()
    damage: list[str] = []
    _take(read_log(Path(directory) / LOG_DIR, damage), out)
    out.warnings[:0] = damage
    out.lost += len(damage)
    return out


def load_url(url: str) -> Loaded:
    """The records of every sealed segment under a sink URL (all pushed detect runs)."""
    fs, root = open_url(url, "--collect")
    out = Loaded()
    fix = "check the URL and its credentials (environment variables)"
    with storage_errors(url, "reading the record logs at", fix):
        listing = fs.glob(f"{root}/**/{LOG_DIR}/*{SEALED}", detail=True)
        for path, info in sorted(listing.items()):
            shown = redact(str(path))
            if info.get("type", "file") != "file" or int(info.get("size") or 0) > MAX_SEGMENT:
                out.warnings.append(f"{shown}: not a record log segment Ictal wrote; skipped")
                out.lost += 1
                continue
            found = scan_bytes(fs.cat_file(path))
            if found.damage:
                out.warnings.append(found.describe(shown))
                out.lost += 1
            _take(found.frames(shown), out)
    return out


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
