"""A durable record log: records appended to segment files as frames, each in one ``write()``.

A frame is ``MAGIC | length (u32, little-endian) | CRC32 of the payload (u32) | payload``.
A record is acknowledged once its single ``os.write`` has returned: the kernel holds it, so a
killed process loses none (no user-space buffer, ever). ``fsync`` runs at most every
``fsync_s`` seconds (group commit: what a crash of the machine itself may cost) and when a
segment is sealed.

A writer owns ``<prefix>-<seq>.open`` (an flock on it says the writer is alive) and seals it
by fsync, rename to ``.seg`` and directory fsync when it reaches ``max_bytes`` or
``max_age_s``. Recovery of an ``.open`` segment whose writer is gone truncates a torn tail
(a partial frame, or one whose CRC does not match) and keeps every complete record. A reader
returns only frames whose CRC matches; it stops a segment at the first bad frame, with a
warning, never returning a damaged record.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ictal.io.atomic import fsync_dir
from ictal.io.lock import is_locked

MAGIC = b"ICR1"
HEADER = struct.Struct("<4sII")  # magic, payload length, crc32
OPEN = ".open"
SEALED = ".seg"
MAX_RECORD = 64 << 20  # a frame claiming more is damage, not a record


def frame(payload: bytes) -> bytes:
    """The bytes of one frame holding ``payload``."""
    if len(payload) > MAX_RECORD:
        raise ValueError(f"record of {len(payload)} bytes is larger than {MAX_RECORD}")
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass
class Scan:
    """The complete frames of a segment, where they end, and what stopped the scan."""

    records: list[bytes] = field(default_factory=list)
    good_bytes: int = 0  # offset just past the last complete frame
    problem: str | None = None  # why the scan stopped before the end


def scan_bytes(data: bytes) -> Scan:
    """Frames of ``data`` up to the first torn or damaged one."""
    out = Scan()
    pos = 0
    while pos < len(data):
        if len(data) - pos < HEADER.size:
            out.problem = f"torn frame header at byte {pos}"
            break
        magic, length, crc = HEADER.unpack_from(data, pos)
        if magic != MAGIC or length > MAX_RECORD:
            out.problem = f"no frame at byte {pos} (damaged)"
            break
        start, stop = pos + HEADER.size, pos + HEADER.size + length
        if stop > len(data):
            out.problem = f"torn frame at byte {pos} ({len(data) - start} of {length} bytes)"
            break
        payload = data[start:stop]
        if zlib.crc32(payload) != crc:
            out.problem = f"CRC mismatch in the frame at byte {pos} (damaged)"
            break
        out.records.append(payload)
        pos = stop
        out.good_bytes = pos
    return out


def seal(path: Path) -> Path:
    """fsync an ``.open`` segment, rename it ``.seg``, fsync the directory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    sealed = path.with_suffix(SEALED)
    os.replace(path, sealed)
    fsync_dir(path.parent)
    return sealed


def recover(directory: Path) -> list[tuple[Path, int]]:
    """Seal every ``.open`` segment whose writer is gone, after truncating a torn tail;
    returns (sealed segment, bytes dropped). Segments of live writers are left alone."""
    done = []
    for path in sorted(directory.glob(f"*{OPEN}")):
        if is_locked(path):  # a live writer holds the segment's flock
            continue
        data = path.read_bytes()
        found = scan_bytes(data)
        dropped = len(data) - found.good_bytes
        if dropped:
            with open(path, "r+b") as fh:
                fh.truncate(found.good_bytes)
        done.append((seal(path), dropped))
    return done


class SegmentWriter:
    """Appends frames to ``<directory>/<prefix>-<seq>.open``; one writer per prefix."""

    def __init__(
        self,
        directory: Path,
        prefix: str,
        *,
        fsync_s: float = 1.0,
        max_bytes: int = 16 << 20,
        max_age_s: float = 600.0,
    ) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.fsync_s = fsync_s
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.fd = -1
        self.path: Path | None = None
        self.size = 0
        self.opened = 0.0
        self.synced = 0.0
        self.dirty = False
        self.appended = 0

    def _next_path(self) -> Path:
        seq = 0
        taken = {p.stem for p in self.directory.glob(f"{self.prefix}-*")}
        while f"{self.prefix}-{seq:06d}" in taken:
            seq += 1
        return self.directory / f"{self.prefix}-{seq:06d}{OPEN}"

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._next_path()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # says: a live writer is here
        fsync_dir(self.directory)
        self.fd, self.path, self.size = fd, path, 0
        self.opened = self.synced = time.monotonic()

    def append(self, payload: bytes) -> None:
        """Write one record in one ``write()``; when this returns, the record is acknowledged
        (a kill of this process cannot lose it). fsync and sealing happen when due."""
        if self.fd < 0:
            self._open()
        data = frame(payload)
        written = os.write(self.fd, data)
        if written != len(data):  # a short write on a regular file: the disk is full
            raise OSError(28, "No space left on device (short write)", str(self.path))
        self.size += written
        self.dirty = True
        self.appended += 1
        now = time.monotonic()
        if now - self.synced >= self.fsync_s:
            self.sync()
        if self.size >= self.max_bytes or now - self.opened >= self.max_age_s:
            self.seal()

    def sync(self) -> None:
        """fsync what was appended (group commit)."""
        if self.fd >= 0 and self.dirty:
            os.fsync(self.fd)
            self.dirty = False
        self.synced = time.monotonic()

    def seal(self) -> Path | None:
        """Seal the open segment (the next append opens a new one); the flock is held until
        the rename is done, so a recovery never races the writer."""
        if self.fd < 0 or self.path is None:
            return None
        os.fsync(self.fd)
        sealed = self.path.with_suffix(SEALED)
        os.replace(self.path, sealed)
        fsync_dir(self.directory)
        os.close(self.fd)
        self.fd, self.path, self.dirty = -1, None, False
        return sealed

    def close(self) -> None:
        """Seal and release."""
        with contextlib.suppress(FileNotFoundError):
            self.seal()


def segments(directory: Path) -> list[Path]:
    """Sealed and open segments of a directory, in name order."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (OPEN, SEALED) and p.is_file())


def read_records(paths: list[Path], warn: list[str] | None = None) -> Iterator[bytes]:
    """Every complete record of the segments; a damaged or torn part is skipped, and said
    in ``warn``."""
    for path in paths:
        found = scan_bytes(path.read_bytes())
        live_tail = path.suffix == OPEN and (found.problem or "").startswith("torn")
        if found.problem and not live_tail and warn is not None:
            warn.append(f"{path}: {found.problem}; {len(found.records)} records kept")
        yield from found.records
