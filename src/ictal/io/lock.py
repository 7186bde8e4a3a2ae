"""Exclusive locks on lock files (flock): one owner at a time, named by host:pid.

The kernel releases a flock when its process dies, even by SIGKILL, so a lock never outlives
its owner and a crashed run or build is resumable at once. The file stays (deleting a lock
file races with a process about to take it); its content names the owner for messages.
Forked children close their copies, so a worker orphaned by a killed owner never keeps it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from ictal.errors import PreflightError

# Lock descriptors this process holds; closed in forked children (DataLoader workers).
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def owner_text() -> str:
    """This process as a lock owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder(path: Path) -> str:
    """The owner written in a lock file (``host:pid``), or 'unknown'. An owner that has just
    taken the lock writes its name a moment later: wait up to 0.5 s for it."""
    deadline = time.monotonic() + 0.5
    while True:
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return "unknown"
        if text or time.monotonic() > deadline:
            return text.splitlines()[0][:200] if text else "unknown"
        time.sleep(0.02)


class FileLock:
    """Exclusive, non-blocking lock on ``path``; refuses (exit 3) naming the holder."""

    def __init__(self, path: Path, what: str, fix: str) -> None:
        self.path = Path(path)
        self.what = what
        self.fix = fix
        self.fd: int | None = None

    def acquire(self) -> FileLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise PreflightError(
                f"{self.what} is in use by {holder(self.path)} (lock {self.path})", self.fix
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner_text()}\n".encode(), 0)
        _HELD.add(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            _HELD.discard(self.fd)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(path: Path) -> bool:
    """True when a live process holds the lock at ``path`` (read-only probe: works on a
    read-only shared file system too)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
