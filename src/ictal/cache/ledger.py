"""The build ledger: per-recording records in a locked building directory, so a killed
build resumes where it stopped and never redoes a completed recording."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Any

from ictal.cache import layout
from ictal.cache.manifest import read_json
from ictal.errors import PreflightError


class BuildLock:
    """An exclusive flock on the building directory: one build per directory at a time."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / layout.LOCK
        self.fd: int | None = None

    def __enter__(self) -> BuildLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self.fd)
            raise PreflightError(
                f"another build is running in {self.path.parent}",
                "wait for it to finish (`ictal explain` shows its progress)",
            ) from exc
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def is_locked(directory: Path) -> bool:
    """True when a live build holds the directory's lock."""
    path = directory / layout.LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def load_records(directory: Path) -> dict[str, dict[str, Any]]:
    """The ledger: id -> record, keeping only done records whose array is complete."""
    records: dict[str, dict[str, Any]] = {}
    rec_dir = directory / layout.RECORDS
    if not rec_dir.is_dir():
        return records
    for name in os.listdir(rec_dir):
        if not name.endswith(".json"):
            continue  # temp files of a killed writer
        try:
            rec = read_json(rec_dir / name)
        except ValueError:
            continue  # cannot happen with atomic writes; redo the recording if it does
        if rec.get("status") == "done":
            array = directory / rec["array"]
            if not array.is_file() or array.stat().st_size != rec["bytes"]:
                continue
        records[rec["id"]] = rec
    return records


def sweep_temp_files(directory: Path) -> int:
    """Remove temp files left by writers killed mid-write (only under the build lock)."""
    n = 0
    for sub in (layout.ARRAYS, layout.RECORDS, "."):
        d = directory / sub
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
                n += 1
    return n
