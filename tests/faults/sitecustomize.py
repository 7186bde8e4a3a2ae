"""Storage faults injected into a real ictal process (tests only; on PYTHONPATH by tests).

CI runs as root, so permissions cannot make a write fail; this makes the operating system's
answer happen instead. With ICTAL_FAULT_ERRNO (ENOSPC, EROFS, ...) and ICTAL_FAULT_MATCH (an
fnmatch pattern of absolute paths) set, every write-open, mkdir, rename or unlink of a
matching path raises that OSError, after ICTAL_FAULT_AFTER (default 0) matching writes were
let through in this process. Spawned workers inherit the environment and the fault.
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

    def _fault_os_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & _WRITE and _hit(path):
            _fail(path)
        return _os_open(path, flags, *args, **kwargs)

    def _fault_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, str | bytes | os.PathLike) and set(mode) & set("wax+") and _hit(file):
            _fail(file)
        return _open(file, mode, *args, **kwargs)

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
    os.mkdir = _fault_mkdir
    os.rename = _fault_move(_rename)
    os.replace = _fault_move(_replace)
    os.unlink = os.remove = _fault_remove(_unlink)
    os.rmdir = _fault_remove(_rmdir)
