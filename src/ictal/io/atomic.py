"""Atomic whole-file writes: temp file in the same directory, fsync, rename, fsync the dir.

Readers see either the complete old file or the complete new one, never a torn write
(docs/design.md, invariant 4). Used for every file the project writes whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; whole files we publish get the usual permissions instead.
_FILE_MODE = 0o666 & ~_current_umask()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry (after a rename or create) to disk."""
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_with(
    path: str | os.PathLike[str],
    writer: Callable[[IO[bytes]], None],
    *,
    fsync: bool = True,
    sync_dir: bool = True,
) -> Path:
    """Write a file by calling ``writer(fileobj)`` on a temp file, then rename into place.
    With ``sync_dir=False`` the directory is left for the caller to fsync once after many
    files (a lost rename must then be harmless: the cache ledger redoes that recording)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        refused = _os_refusal(exc, tmp)
        if refused is None:
            raise
        raise OSError(refused.errno, refused.strerror, str(target)) from exc
    if fsync and sync_dir:
        fsync_dir(target.parent)
    return target


def _os_refusal(exc: BaseException, tmp: str) -> OSError | None:
    """The operating system's refusal of the temp file behind a failed whole-file write (a
    full disk, a quota), to re-raise naming the file being written: a write, flush or fsync
    error names no file, the temp file's name means nothing to a user, and a writer may wrap
    the error (torch's zip writer turns ENOSPC into ``RuntimeError: unexpected pos``). An
    error about another file (one a writer reads) is left as it is."""
    seen: BaseException | None = exc
    for _ in range(8):  # the error itself, then what it was raised from or during
        if not isinstance(seen, Exception):
            return None
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen if seen.filename in (None, tmp) else None
        seen = seen.__cause__ or seen.__context__
    return None


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, fsync: bool = True, sync_dir: bool = True
) -> Path:
    """Replace ``path`` with ``data`` atomically."""
    return atomic_write_with(path, lambda fh: fh.write(data), fsync=fsync, sync_dir=sync_dir)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, fsync: bool = True, sync_dir: bool = True
) -> Path:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync, sync_dir=sync_dir)


def atomic_write_json(
    path: str | os.PathLike[str], obj: Any, *, fsync: bool = True, sync_dir: bool = True
) -> Path:
    """Replace ``path`` with indented, key-sorted JSON atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_text(path, text, fsync=fsync, sync_dir=sync_dir)


def _same_bytes(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file holding exactly ``data`` (never opens anything else,
    so a FIFO or device put in its place cannot block or be read)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
        return False
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def atomic_write_many(files: Mapping[Path, bytes], *, skip_same: bool = False) -> int:
    """Replace several files, each atomically as ``atomic_write_bytes`` does, with one flush
    for all: every temp file written and fsynced, then all renamed, then each directory
    fsynced once (not once per file). With ``skip_same`` a file already holding its bytes is
    left alone. Returns how many files were written."""
    todo = {Path(p): d for p, d in files.items() if not (skip_same and _same_bytes(Path(p), d))}
    temps: list[tuple[str, Path]] = []
    try:
        for target, data in todo.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            temps.append((tmp, target))
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, target in temps:
            os.replace(tmp, target)
    except BaseException as exc:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        refused = _os_refusal(exc, temps[-1][0]) if temps else None
        if refused is None:
            raise
        raise OSError(refused.errno, refused.strerror, str(temps[-1][1])) from exc
    for directory in sorted({target.parent for target in todo}):
        fsync_dir(directory)
    return len(todo)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's content to disk (before a rename makes it visible)."""
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_or_copy(src: Path, dst: Path) -> None:
    """Place ``src`` at ``dst`` atomically: a hard link when possible, else a copy that is
    fsynced before the rename (files placed this way are never modified in place)."""
    import errno
    import shutil

    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(src, tmp)
            fsync_file(tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(dst.parent)
