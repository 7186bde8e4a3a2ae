"""A durable record log: records appended to segment files as frames, each in one ``write()``.

A frame is ``MAGIC | length (u32, little-endian) | CRC32 of the payload (u32) | payload``.
A record is acknowledged once its single ``os.write`` has returned: the kernel holds it, so a
killed process loses none (no user-space buffer, ever). ``fsync`` runs at most every
``fsync_s`` seconds (group commit: what a crash of the machine itself may cost) and when a
segment is sealed.

A writer owns ``<prefix>-<seq>.open`` (an flock on it says the writer is alive; the file is
locked before it takes that name) and seals it by fsync, rename to ``.seg`` and directory
fsync when it reaches ``max_bytes`` or ``max_age_s``.

Damage never costs more than the damaged bytes: a scan that meets a frame it cannot trust
(no magic, an insane length, a CRC mismatch) resynchronises on the next valid frame (magic, a
sane length, a matching CRC) and keeps every complete frame after it; each dropped stretch
is reported with its byte offset. Recovery of an ``.open`` segment whose writer is gone
truncates a torn tail in place and rewrites a segment with damage inside it (temp file,
fsync, rename), so a kill during recovery loses nothing either; then it seals it. A reader
returns only frames whose CRC matches and tolerates a writer sealing a segment under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ictal.io.atomic import fsync_dir
from ictal.io.lock import is_locked
from ictal.io.untrusted import UnreadableInput, read_bytes

MAGIC = b"ICR1"
HEADER = struct.Struct("<4sII")  # magic, payload length, crc32
OPEN = ".open"
SEALED = ".seg"
MAX_RECORD = 64 << 20  # a frame claiming more (or nothing) is damage, not a record
MAX_SEGMENT = 4160 << 20  # detect.segment_mb (at most 4096) plus one last record
REPAIR = ".repair.tmp"  # ".<segment>.open.repair.tmp": a repaired copy before its rename
OPENING = ".opening.tmp"  # ".<segment>.opening.tmp": a new segment until it is locked
# Payloads are JSON with ASCII escapes: four payload bytes read as a length are at least
# 0x20202020, above MAX_RECORD, so a resynchronisation never takes a frame from inside one.


def frame(payload: bytes) -> bytes:
    """The bytes of one frame holding ``payload`` (not empty: an empty frame's CRC is 0, so
    zeroed bytes after a magic would read as one)."""
    if not 0 < len(payload) <= MAX_RECORD:
        raise ValueError(f"a record of {len(payload)} bytes (1 to {MAX_RECORD} are framed)")
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class Damage:
    """A stretch of a segment that holds no complete frame: where, how long, and why."""

    offset: int
    length: int
    reason: str
    frames: int | None = None  # how many frames it held, when the header still says so
    torn: bool = False  # the incomplete last frame a writer's interrupted write leaves

    def __str__(self) -> str:
        held = "" if self.frames is None else f", {self.frames} frame" + "s" * (self.frames > 1)
        return f"{self.length} bytes at byte {self.offset} ({self.reason}{held})"


@dataclass(frozen=True)
class Frame:
    """One complete record of a segment, and where it is."""

    segment: Path | str  # a local path, or a sink URL (redacted) as it is shown
    offset: int
    payload: bytes


@dataclass
class Scan:
    """The complete frames of a segment (payloads and offsets) and every stretch skipped."""

    records: list[bytes] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    good_bytes: int = 0  # offset just past the last complete frame
    damage: list[Damage] = field(default_factory=list)  # in offset order

    @property
    def inner(self) -> list[Damage]:
        """Damaged stretches with complete frames after them."""
        return [d for d in self.damage if d.offset < self.good_bytes]

    @property
    def dropped(self) -> int:
        """Bytes in no complete frame."""
        return sum(d.length for d in self.damage)

    def frames(self, segment: Path | str) -> Iterator[Frame]:
        """The complete frames, as found in ``segment``."""
        for offset, payload in zip(self.offsets, self.records, strict=True):
            yield Frame(segment, offset, payload)

    def describe(self, path: Path | str) -> str:
        """One line: what was dropped where, and what was kept."""
        parts = ", ".join(str(d) for d in self.damage)
        return f"{path}: dropped {parts}; {len(self.records)} records kept"


def _header(data: bytes | memoryview, pos: int) -> tuple[bytes, int, int] | None:
    if len(data) - pos < HEADER.size:
        return None
    return HEADER.unpack_from(data, pos)  # type: ignore[return-value]


def _frame_end(view: memoryview, pos: int) -> int | None:
    """End of the valid frame at ``pos`` (magic, sane length, in the data, CRC), else None."""
    head = _header(view, pos)
    if head is None or head[0] != MAGIC or not 0 < head[1] <= MAX_RECORD:
        return None
    stop = pos + HEADER.size + head[1]
    if stop > len(view) or zlib.crc32(view[pos + HEADER.size : stop]) != head[2]:
        return None
    return stop


def _why(view: memoryview, pos: int) -> tuple[str, int | None, bool]:
    """Why no frame starts at ``pos``: (reason, end its header claims, looks torn)."""
    n = len(view) - pos
    head = _header(view, pos)
    if head is None:
        torn = bytes(view[pos : pos + 4]) == MAGIC[: min(n, 4)]
        return f"a frame header cut after {n} bytes", None, torn
    magic, length, _ = head
    if magic != MAGIC:
        return "no frame header", None, False
    if not 0 < length <= MAX_RECORD:
        return f"a frame length of {length} bytes", None, False
    stop = pos + HEADER.size + length
    if stop > len(view):
        return f"a frame cut after {n - HEADER.size} of {length} bytes", stop, True
    return "CRC mismatch", stop, False


def scan_bytes(data: bytes) -> Scan:
    """Every complete frame of ``data``; a stretch that holds none is skipped up to the next
    valid frame (or the end) and reported with its offset."""
    out = Scan()
    view = memoryview(data)
    budget = 4 * len(data) + (1 << 20)  # bytes of CRC a resynchronisation may check
    pos = 0
    while pos < len(data):
        stop = _frame_end(view, pos)
        if stop is not None:
            out.records.append(bytes(view[pos + HEADER.size : stop]))
            out.offsets.append(pos)
            pos = out.good_bytes = stop
            continue
        reason, claimed, torn = _why(view, pos)
        nxt, budget = _resync(view, pos + 1, budget)
        if torn and nxt is not None:  # not the last frame: its length field is damaged
            reason = "a frame length past the end of the segment"
        end = len(data) if nxt is None else nxt
        frames = 1 if claimed == nxt and nxt is not None else None
        out.damage.append(Damage(pos, end - pos, reason, frames, torn and nxt is None))
        pos = end
    return out


def _resync(view: memoryview, start: int, budget: int) -> tuple[int | None, int]:
    """Offset of the next valid frame at or after ``start`` and the budget left; None when
    there is none (or checking more candidates would cost more than the budget: a crafted
    segment full of false headers cannot make a scan quadratic)."""
    data = view.obj
    assert isinstance(data, bytes)
    pos = data.find(MAGIC, start)
    while pos >= 0 and budget > 0:
        head = _header(view, pos)
        fits = head is not None and 0 < head[1] <= len(view) - pos - HEADER.size
        if fits:  # only a frame inside the data has its CRC computed
            budget -= head[1]
            if _frame_end(view, pos) is not None:
                return pos, budget
        pos = data.find(MAGIC, pos + 1)
    return None, budget


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


@dataclass(frozen=True)
class Recovered:
    """An ``.open`` segment of a dead writer, sealed: what it kept and what it dropped."""

    segment: Path  # the sealed segment
    original: Path  # its name when it was found
    scan: Scan  # offsets are the original file's

    @property
    def dropped(self) -> int:
        return self.scan.dropped

    @property
    def damaged(self) -> bool:
        """True when more than a torn tail was dropped (bytes a writer had finished)."""
        return any(not d.torn for d in self.scan.damage)

    def describe(self) -> str:
        return self.scan.describe(self.original)


def _rewrite(path: Path, data: bytes, found: Scan) -> None:
    """Replace ``path`` by its complete frames only: written beside it, fsynced, renamed over
    it, the directory fsynced (a kill at any moment leaves the old file or the new one)."""
    tmp = path.with_name(f".{path.name}{REPAIR}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        for offset, payload in zip(found.offsets, found.records, strict=True):
            chunk = data[offset : offset + HEADER.size + len(payload)]
            if os.write(fd, chunk) != len(chunk):
                raise OSError(28, "No space left on device (short write)", str(tmp))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _truncate(path: Path, size: int) -> None:
    """Cut a torn tail: only bytes after the last complete frame go."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_regular(path: Path) -> bool:
    """A regular file not reached through a symbolic link (Ictal makes no links in a log)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def recover(directory: Path, warn: list[str] | None = None) -> list[Recovered]:
    """Seal every ``.open`` segment whose writer is gone, keeping every complete frame: a torn
    tail is truncated, damage inside is cut out by a rewrite. Segments of live writers, and
    anything that is not a regular file, are left alone (an unreadable one said in ``warn``)."""
    directory = Path(directory)
    done: list[Recovered] = []
    if not directory.is_dir():
        return done
    for stale in directory.glob(f".*{REPAIR}"):  # a recovery killed before its rename
        if _is_regular(stale):
            stale.unlink(missing_ok=True)
    for path in sorted(directory.glob(f"*{OPEN}")):
        if not _is_regular(path) or is_locked(path):  # a live writer holds the flock
            continue
        try:
            data = read_bytes(path, "record log segment", MAX_SEGMENT)
        except FileNotFoundError:  # sealed by its writer since the listing
            continue
        except UnreadableInput as exc:
            if warn is not None:
                warn.append(f"{exc}; left as it is")
            continue
        found = scan_bytes(data)
        if found.inner:
            _rewrite(path, data, found)
        elif found.damage:
            _truncate(path, found.good_bytes)
        done.append(Recovered(seal(path), path, found))
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
        """Create the next segment locked: made under a hidden name, flocked, then renamed,
        so a recovery never sees an ``.open`` segment of a live writer unlocked."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._next_path()
        staged = path.with_name(f".{path.stem}{OPENING}")
        staged.unlink(missing_ok=True)  # this prefix is this process's: a leftover is ours
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(staged, flags, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # says: a live writer is here
        os.rename(staged, path)
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
    """Sealed and open segments of a directory, in name order (regular files only)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (OPEN, SEALED) and _is_regular(p))


def _read_live(path: Path) -> tuple[Path, bytes] | None:
    """The bytes of a segment that its writer may seal (``.open`` renamed ``.seg``) while it
    is read; None when it is gone under both names (pruned)."""
    names = [path, path.with_suffix(SEALED)] if path.suffix == OPEN else [path]
    for name in names:
        try:
            return name, read_bytes(name, "record log segment", MAX_SEGMENT)
        except FileNotFoundError:
            continue
    return None


def read_frames(paths: list[Path], warn: list[str] | None = None) -> Iterator[Frame]:
    """Every complete frame of the segments; damage is skipped up to the next valid frame
    and said in ``warn`` (a live writer's torn last frame is not damage)."""
    for listed in paths:
        try:
            got = _read_live(listed)
        except UnreadableInput as exc:
            if warn is not None:
                warn.append(f"{exc}; its records are skipped")
            continue
        if got is None:
            continue
        path, data = got
        found = scan_bytes(data)
        live_tail = path.suffix == OPEN and len(found.damage) == 1 and found.damage[0].torn
        if found.damage and not live_tail and warn is not None:
            warn.append(found.describe(path))
        yield from found.frames(path)


def read_log(directory: Path, warn: list[str] | None = None) -> Iterator[Frame]:
    """Every complete frame of a log directory, with every record acknowledged before the
    call among them: a listing may miss a segment renamed (sealed) while it is made, so the
    directory is listed again after reading and the segments new to it are read too."""
    read: set[str] = set()
    for _ in range(2):
        todo = [p for p in segments(Path(directory)) if p.stem not in read]
        read.update(p.stem for p in todo)
        yield from read_frames(todo, warn)


def read_records(paths: list[Path], warn: list[str] | None = None) -> Iterator[bytes]:
    """The payloads of ``read_frames``."""
    for found in read_frames(paths, warn):
        yield found.payload
