"""Reading what Ictal is handed (configs, manifests, heartbeats, sidecars, scores, records,
list files): regular files only (a FIFO or a device would block or never end), a size limit,
and JSON whose nesting or numbers cannot crash the parser. Every refusal is an
``UnreadableInput`` (a ValueError) whose message names the file and what is wrong with it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 64 << 20  # a manifest of a very large corpus is a few MB
MAX_TEXT_BYTES = 64 << 20
_CHUNK = 1 << 20  # a read's buffer is allocated whole: a file that grew is read in pieces


class UnreadableInput(ValueError):
    """A file or document that Ictal refuses to read, with the reason."""


def regular_file(path: str | os.PathLike[str], what: str) -> os.stat_result:
    """``path``'s stat when it is a regular file (a link to one is followed); a FIFO, socket,
    device or directory is refused before anything opens it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnreadableInput(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UnreadableInput(f"{what} {path} is {kind} (a FIFO, device or socket never ends)")
    return st


def read_bytes(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes."""
    st = regular_file(path, what)
    if st.st_size > limit:
        raise UnreadableInput(
            f"{what} {path} is {st.st_size / 2**20:.1f} MiB, more than the {limit >> 20} MiB "
            "Ictal reads for it"
        )
    # Unbuffered: a scorer reads thousands of small files, and a file object costs more than
    # the read. Opened non-blocking, so a file swapped for a FIFO since the stat cannot block
    # the open (the descriptor's own stat then refuses it); read blocking, as a file system
    # mounted by FUSE (a bucket) may take O_NONBLOCK at its word.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableInput(f"{what} {path} is not a regular file (it was replaced)")
        os.set_blocking(fd, True)
        data = _read_up_to(fd, st.st_size + 1)  # limit + 1 would allocate the whole limit
        if len(data) > st.st_size:  # it grew since the stat: read on, up to the limit
            data += _read_up_to(fd, limit + 1 - len(data))
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise UnreadableInput(f"{what} {path} is larger than the {limit >> 20} MiB Ictal reads")
    return data


def _read_up_to(fd: int, n: int) -> bytes:
    """At most ``n`` bytes from ``fd``, fewer only at its end."""
    chunks, left = [], n
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_text(path: str | os.PathLike[str], what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """A regular UTF-8 text file of at most ``limit`` bytes."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableInput(f"{what} {path} is not UTF-8 text") from None


def loads_json(data: str | bytes, what: str) -> Any:
    """JSON parsed without the parser's own failure modes: nesting the parser cannot follow,
    integers of thousands of digits and invalid text are each an ``UnreadableInput`` naming
    ``what``."""
    if len(data) > MAX_JSON_BYTES:
        raise UnreadableInput(f"{what}: {len(data) >> 20} MiB of JSON is more than Ictal reads")
    try:
        return json.loads(data)
    except RecursionError:
        raise UnreadableInput(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, huge integers
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UnreadableInput(f"{what}: not valid JSON ({reason})") from None


def read_json(path: str | os.PathLike[str], what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """A regular file of at most ``limit`` bytes parsed by ``loads_json``."""
    return loads_json(read_bytes(path, what, limit), f"{what} {Path(path)}")
