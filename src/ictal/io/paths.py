"""Containment of untrusted relative paths: names read from a manifest, a recordings table or
a remote listing are joined to their root only when they stay inside it.

A name is refused when it is empty, absolute, holds a '..' or empty component, or when the
joined path resolves (symlinks followed) outside the root. The error names the entry.
A run name (a run directory, a pushed run in a sink) is a plain name (``check_name``).
Symbolic links: ``is_inside`` says whether a path, resolved, lies inside a root (what may be
read or quoted through a link); ``linked_below`` finds a link between a root and a path (what
Ictal never writes or deletes through, and never reads a run's files through);
``plain_file`` is a regular file that is not a link.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath

from ictal.errors import UnsafePathError

# A recording id is one path component of plain characters (TUSZ bnames, BIDS entity names).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}$")


def is_safe_name(name: object) -> bool:
    """True for a single, plain file-name component (no separators, no '..', not hidden)."""
    return isinstance(name, str) and bool(_SAFE_NAME.match(name)) and ".." not in name


TAMPERED = "the file was not written by ictal or was tampered with: rebuild or re-fetch it"


def check_name(name: object, what: str, fix: str = TAMPERED) -> str:
    """``name`` when it is a safe single component, else UnsafePathError naming ``what``
    (and ``fix``). Recording ids, file names from sidecars and run names all pass here."""
    if not is_safe_name(name):
        shown = name[:80] if isinstance(name, str) else name
        raise UnsafePathError(
            f"{what}: {shown!r} is not a plain name (letters, digits, '_', '-', '.', '+'; "
            "no path separators, no '..')",
            fix,
        )
    assert isinstance(name, str)
    return name


def check_relative(rel: object, what: str) -> str:
    """``rel`` when it is a relative POSIX path without '..' or empty parts, else refuse."""
    ok = isinstance(rel, str) and rel != "" and "\\" not in rel and "\x00" not in rel
    parts = PurePosixPath(rel).parts if ok else ()  # type: ignore[arg-type]
    if (
        not ok
        or rel.startswith("/")  # type: ignore[union-attr]
        or any(p in ("", ".", "..") for p in rel.split("/"))  # type: ignore[union-attr]
        or not parts
    ):
        raise UnsafePathError(
            f"{what}: {rel!r} is not a relative path inside its directory (absolute paths "
            "and '..' are refused)",
            TAMPERED,
        )
    assert isinstance(rel, str)
    return rel


def contained(root: Path, rel: object, what: str) -> Path:
    """``root / rel`` after checking that ``rel`` is relative and the result, with symlinks
    resolved, stays inside ``root``; UnsafePathError (exit 3) naming ``what`` otherwise."""
    checked = check_relative(rel, what)
    path = root / checked
    base = root.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePathError(
            f"{what}: {checked!r} resolves to {resolved}, outside {base}",
            "remove the symbolic link or the entry; ictal never reads or writes outside its roots",
        )
    return path


def contained_all(root: Path, entries: list[tuple[object, str]]) -> None:
    """``contained`` for many relative paths at directory cost rather than per-file cost:
    each name is checked as text, each distinct parent directory is resolved once, and only
    the entries that are symbolic links (one ``scandir`` per directory) are resolved. Raises
    UnsafePathError naming the first entry that escapes; a cache's 10,000 rows take ms."""
    by_parent: dict[str, list[tuple[str, str]]] = {}
    for rel, what in entries:
        checked = check_relative(rel, what)
        parent, _, name = checked.rpartition("/")
        by_parent.setdefault(parent, []).append((name, what))
    base = root.resolve()
    for parent, names in by_parent.items():
        directory = root / parent if parent else root
        if parent:
            contained(root, parent, names[0][1])
        try:
            links = {e.name for e in os.scandir(directory) if e.is_symlink()}
        except OSError:
            continue  # a missing directory: the files are reported missing by the caller
        for name, what in names:
            if name in links:
                resolved = (directory / name).resolve()
                if base not in resolved.parents:
                    raise UnsafePathError(
                        f"{what}: {parent + '/' if parent else ''}{name} resolves to "
                        f"{resolved}, outside {base}",
                        "remove the symbolic link; ictal never reads outside its roots",
                    )


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when ``path``, with every symbolic link resolved, is ``root`` (resolved) or below
    it: the rule before reading or quoting a file found under a root (a corpus, an archive,
    a run), so a link never makes Ictal read or print bytes from outside its roots."""
    base, resolved = Path(root).resolve(), Path(path).resolve()
    return resolved == base or base in resolved.parents


def linked_below(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path | None:
    """The first symbolic link among ``path`` and its parents below ``root`` (``root``
    itself is the user's and may be a link), or None; a part that does not exist ends the
    search. ``path`` must lie under ``root`` as written."""
    base, target = Path(root), Path(path)
    rel = target.relative_to(base)
    here = base
    for part in rel.parts:
        here = here / part
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                return here
        except (FileNotFoundError, NotADirectoryError):
            return None
    return None


def plain_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file that is not a symbolic link (``os.lstat``, nothing followed)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def own_file(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """True for a regular file under ``root`` reached through no symbolic link below it."""
    return linked_below(root, path) is None and plain_file(path)


def plain_dir(path: str | os.PathLike[str]) -> bool:
    """True for a directory that is not a symbolic link."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


_ENV_VAR = re.compile(r"\$(\w+|\{[^}]*\})")


def literal_entry(entry: str) -> str | None:
    """Why a path read from a list file cannot be taken as written, or None. Ictal never
    expands ``$VAR``, ``${VAR}`` or ``~`` in what it reads (a list could make it print a
    secret from the environment, or reach into a home directory)."""
    found = _ENV_VAR.search(entry)
    if found:
        return (
            f"names the environment variable {found.group(0)[:40]}, which ictal does not "
            "expand in list files; write the path out"
        )
    bare = entry.split("://", 1)[1] if entry.startswith(("file://", "local://")) else entry
    if bare.startswith("~"):
        return "starts with '~', which ictal does not expand in list files; write the path out"
    return None


def writable_dir(path: str | Path, setting: str) -> Path:
    """``path`` as a directory Ictal can write into, made if missing; else a usage error
    (exit 2) naming the setting, the path and what the system said."""
    import errno
    import tempfile

    from ictal.errors import UsageError

    target = Path(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ictal-probe-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR) or (target.exists() and not target.is_dir()):
            why = "a file is in the way (it must be a directory)"
        raise UsageError(
            f"{setting} {target} is not a writable directory: {why}; set {setting} to a "
            "directory this process can write"
        ) from exc
    return target
