"""metrics.jsonl: one JSON object per line, each line one write (survives kill -9).

A line is in the kernel as soon as ``write`` returns, so killing the process loses nothing;
``fsync`` (which only matters if the machine itself dies) runs at most every ``sync_every_s``
seconds, before every checkpoint and at close, not on each of thousands of steps.

Every line has ``phase`` ("train" | "validate" | "epoch"), ``epoch`` (0-based), ``step``
(optimizer steps done) and ``time`` (Unix seconds) plus its metric keys; a value that is not
finite is written as null so every line is strict JSON.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ictal.io.atomic import atomic_write_bytes
from ictal.io.jsonable import jsonable
from ictal.io.untrusted import UnreadableInput, loads_json, regular_file
from ictal.ui import log

PHASES = ("train", "validate", "epoch")


def encode(record: dict[str, Any]) -> bytes:
    """One strict-JSON line for ``record`` (which must name its phase, epoch, step, time)."""
    missing = [k for k in ("phase", "epoch", "step", "time") if k not in record]
    if missing or record["phase"] not in PHASES:
        raise ValueError(f"metrics record needs phase in {PHASES}, epoch, step, time: {record}")
    clean = jsonable(record)
    return (json.dumps(clean, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")


class MetricsLog:
    """Append-only writer: each record is a single write on an O_APPEND descriptor."""

    def __init__(self, path: str | os.PathLike[str], sync_every_s: float = 5.0) -> None:
        self.path = Path(path)
        self.sync_every_s = sync_every_s
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._synced = time.monotonic()
        self._dirty = False

    def write(self, record: dict[str, Any]) -> None:
        """Append one line (one write: a kill never tears or loses it); fsync if due."""
        data = encode(record)
        written = os.write(self._fd, data)
        if written != len(data):  # a short write on a regular file means the disk is full
            raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")
        self._dirty = True
        if time.monotonic() - self._synced >= self.sync_every_s:
            self.sync()

    def sync(self) -> None:
        """Make every line written so far survive a machine crash (called before checkpoints)."""
        if self._dirty and self._fd >= 0:
            os.fsync(self._fd)
            self._dirty = False
        self._synced = time.monotonic()

    def close(self) -> None:
        """Sync and close."""
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A metrics line is a few hundred bytes; a longer one is damage, skipped without reading it
# into memory whole.
MAX_LINE_BYTES = 1 << 20


def _lines(fh: BinaryIO) -> Iterator[bytes | None]:
    """Complete lines of ``fh`` (newline kept), None for one over ``MAX_LINE_BYTES``; what
    follows the last newline (a torn write) is not a line."""
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if line.endswith(b"\n"):
            yield line
        elif len(line) <= MAX_LINE_BYTES:
            return  # the end, or a torn last line
        else:
            while line and not line.endswith(b"\n"):
                line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                return  # the long line was the torn last one
            yield None


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete, valid lines of a metrics file, in order. A torn last line (a kill in
    the middle of a write) is ignored; any other line that is not a JSON object (a damaged
    file, a line over ``MAX_LINE_BYTES``, JSON the parser cannot take) is skipped and counted
    in one warning naming the file: every reader (resume, report, status) keeps what can be
    read. A path that is not a regular file reads as no lines, with a warning."""
    p = Path(path)
    try:
        regular_file(p, "metrics file")
        fh = open(p, "rb")  # noqa: SIM115  (closed below)
    except FileNotFoundError:
        return []
    except (OSError, UnreadableInput) as exc:
        log.warning(f"{p}: not read ({exc})")
        return []
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    with fh:
        for lineno, line in enumerate(_lines(fh), start=1):
            if line is not None and not line.strip():
                continue
            try:
                record = None if line is None else loads_json(line, f"{p} line {lineno}")
            except UnreadableInput:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                bad.append(lineno)
    if bad:
        log.warning(f"{p}: skipped {len(bad)} unreadable line(s) (first: line {bad[0]})")
    return records


def _ends_with_newline(path: Path) -> bool:
    """The file's last byte is a newline (an empty or missing file counts as ending well)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return True
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
    except FileNotFoundError:
        return True


def _int(value: Any) -> float:
    """A step or epoch number, or infinity when a damaged line lacks it (then dropped)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else math.inf


def keep_until(path: str | os.PathLike[str], step: int, epoch: int) -> int:
    """Rewrite the file atomically without lines past a checkpoint; return lines dropped.

    A checkpoint at optimizer step ``step`` whose next epoch to finish is ``epoch`` keeps
    train lines up to ``step`` and validate/epoch lines of epochs before ``epoch``, so a
    resumed run writes every step and every epoch exactly once.
    """
    records = read_metrics(path)
    kept = [
        r
        for r in records
        if (r.get("phase") == "train" and _int(r.get("step")) <= step)
        or (r.get("phase") in PHASES[1:] and _int(r.get("epoch")) < epoch)
    ]
    p = Path(path)
    if len(kept) != len(records) or not _ends_with_newline(p):
        atomic_write_bytes(p, b"".join(encode(r) for r in kept))
    return len(records) - len(kept)
