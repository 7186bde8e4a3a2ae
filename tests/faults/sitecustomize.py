"""Storage faults injected into a real ictal process (tests only; on PYTHONPATH by tests).

CI runs as root, so permissions cannot make a write fail; this makes the operating system's
answer happen instead. With ICTAL_FAULT_ERRNO (ENOSPC, EROFS, ...) and ICTAL_FAULT_MATCH (an
fnmatch pattern of absolute paths) set, every write-open, mkdir, rename or unlink of a
matching path raises that OSError, after ICTAL_FAULT_AFTER (default 0) matching writes were
let through in this process. Spawned workers inherit the environment and the fault.

With ICTAL_FAULT_AT=write (ENOSPC only), a matching write-open succeeds and the disk refuses
the bytes instead, as when it fills while a file is written: the descriptor is /dev/full's
(the kernel fails every write with ENOSPC) under the file's name.

With ICTAL_FAULT_STALL (an fnmatch pattern of absolute paths) set instead, the write-open
(``os.open``, as tempfile and the atomic writes use it) of a matching path, after
ICTAL_FAULT_AFTER were let through, waits, in short sleeps: a process a test must catch in the
middle of its work (to signal it) cannot finish first, however loaded the machine. With
ICTAL_FAULT_STALL_AT=write, the ``os.write`` calls to a descriptor ``os.open`` opened for such
a path are counted instead (an append-only log: one write per line), only those whose bytes
hold ICTAL_FAULT_STALL_CONTAINS when it is set (one line of the log). The wait lasts until the
path ICTAL_FAULT_RELEASE exists (a signal whose handler only sets a flag, as training's) or,
without it, until a signal's exception ends it as it would end the write; after 10 minutes
(a test that failed before it signalled) the process goes on.
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import os

_CODE = os.environ.get("ICTAL_FAULT_ERRNO")
if _CODE:
    _errno = getattr(errno, _CODE)
    _pattern = os.environ["ICTAL_FAULT_MATCH"]
    _left = [int(os.environ.get("ICTAL_FAULT_AFTER", "0"))]
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _hit(path: object, dir_fd: int | None = None) -> bool:
        try:
            text = os.fsdecode(path)  # type: ignore[arg-type]
        except TypeError:
            return False
        if dir_fd is not None and not os.path.isabs(text):  # shutil.rmtree works by fd
            text = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
        text = os.path.abspath(text)
        if not fnmatch.fnmatch(text, _pattern):
            return False
        if _left[0] > 0:
            _left[0] -= 1
            return False
        return True

    def _fail(path: object) -> None:
        raise OSError(_errno, os.strerror(_errno), os.fsdecode(path))  # type: ignore[arg-type]

    _os_open, _open, _mkdir = os.open, builtins.open, os.mkdir
    _rename, _replace, _unlink, _rmdir = os.rename, os.replace, os.unlink, os.rmdir
    _fchmod = os.fchmod
    _AT_WRITE = os.environ.get("ICTAL_FAULT_AT") == "write"
    _full: dict[int, str] = {}  # descriptors turned into /dev/full's, by the file they name

    def _fill(fd: int, path: object) -> None:
        full = _os_open("/dev/full", os.O_WRONLY)
        os.dup2(full, fd)
        os.close(full)
        _full[fd] = os.fsdecode(path)  # type: ignore[arg-type]

    def _fault_os_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        hit = flags & _WRITE and _hit(path)
        if hit and not _AT_WRITE:
            _fail(path)
        fd = _os_open(path, flags, *args, **kwargs)
        _full.pop(fd, None)
        if hit:
            _fill(fd, path)
        return fd

    def _fault_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        hit = isinstance(file, str | bytes | os.PathLike) and set(mode) & set("wax+")
        hit = hit and _hit(file)
        if hit and not _AT_WRITE:
            _fail(file)
        fh = _open(file, mode, *args, **kwargs)
        if hit:
            _fill(fh.fileno(), file)
        return fh

    def _fault_fchmod(fd, mode):  # type: ignore[no-untyped-def]
        if fd in _full:  # the file's mode, never /dev/full's
            return os.chmod(_full[fd], mode)
        return _fchmod(fd, mode)

    def _fault_mkdir(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if _hit(path):
            _fail(path)
        return _mkdir(path, *args, **kwargs)

    def _fault_move(real):  # type: ignore[no-untyped-def]
        def move(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
            if _hit(dst):
                _fail(dst)
            return real(src, dst, *args, **kwargs)

        return move

    def _fault_remove(real):  # type: ignore[no-untyped-def]
        def remove(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if _hit(path, kwargs.get("dir_fd")):
                _fail(path)
            return real(path, *args, **kwargs)

        return remove

    os.open = _fault_os_open
    builtins.open = _fault_open
    if _AT_WRITE:  # only the bytes are refused: names are made, renamed and removed
        os.fchmod = _fault_fchmod
    else:
        os.mkdir = _fault_mkdir
        os.rename = _fault_move(_rename)
        os.replace = _fault_move(_replace)
        os.unlink = os.remove = _fault_remove(_unlink)
        os.rmdir = _fault_remove(_rmdir)

_STALL = os.environ.get("ICTAL_FAULT_STALL")
if _STALL:
    import time

    _stall_left = [int(os.environ.get("ICTAL_FAULT_AFTER", "0"))]
    _stall_release = os.environ.get("ICTAL_FAULT_RELEASE")
    _stall_at_write = os.environ.get("ICTAL_FAULT_STALL_AT", "open") == "write"
    _stall_contains = os.environ.get("ICTAL_FAULT_STALL_CONTAINS", "").encode()
    _STALL_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    _unstalled_open, _unstalled_write, _unstalled_close = os.open, os.write, os.close
    _watched: set[int] = set()  # descriptors of matching paths (ICTAL_FAULT_STALL_AT=write)

    def _stall_here() -> None:
        if _stall_left[0] > 0:
            _stall_left[0] -= 1
            return
        give_up = time.monotonic() + 600.0  # a test that failed before its signal
        while not (_stall_release and os.path.exists(_stall_release)):
            if time.monotonic() > give_up:
                return
            time.sleep(0.02)

    def _stalling_os_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        hit = flags & _STALL_WRITE and fnmatch.fnmatch(os.path.abspath(os.fsdecode(path)), _STALL)
        if hit and not _stall_at_write:
            _stall_here()
        fd = _unstalled_open(path, flags, *args, **kwargs)
        _watched.discard(fd)
        if hit:
            _watched.add(fd)
        return fd

    def _stalling_os_write(fd, data):  # type: ignore[no-untyped-def]
        if _stall_at_write and fd in _watched and _stall_contains in bytes(data):
            _stall_here()
        return _unstalled_write(fd, data)

    def _stalling_os_close(fd):  # type: ignore[no-untyped-def]
        _watched.discard(fd)
        return _unstalled_close(fd)

    os.open, os.write, os.close = _stalling_os_open, _stalling_os_write, _stalling_os_close
