"""Storage behind any fsspec URL or local path, with failures said as what they are.

One place turns a URL into a file system (an unknown protocol or a missing backend is a
usage error naming the URL and the fix) and turns a backend's own exception types (botocore,
aiohttp, OSError...) into a refusal that names the redacted URL and the storage error, never
a traceback or a misleading "nothing found".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator
from pathlib import Path

import fsspec

from ictal.errors import IctalError, PreflightError, UsageError
from ictal.io.atomic import fsync_file
from ictal.io.redact import note_url, redact

BACKENDS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
            "abfs": "adlfs"}  # fmt: skip


def open_url(url: str, setting: str = "URL") -> tuple[fsspec.AbstractFileSystem, str]:
    """File system and root path (no trailing slash) of a URL or local path; credentials in
    the URL are remembered so that every message masks them (``note_url``)."""
    note_url(url)
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        scheme = url.split("://", 1)[0]
        package = BACKENDS.get(scheme, f"the fsspec backend for {scheme}://")
        extra = " (pip install 'ictal[s3]')" if package == "s3fs" else ""
        raise UsageError(
            f"{setting} {redact(url)}: the file system for {scheme}:// is not installed; "
            f"install {package}{extra}"
        ) from exc
    except ValueError as exc:
        raise UsageError(
            f"{setting} {redact(url)}: unknown storage protocol ({exc}); use a local path or "
            "a URL such as s3://bucket/path"
        ) from exc
    return fs, root.rstrip("/") or "/"


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """True for the local file system (where directories exist and must be made)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return "file" in protocols or "local" in protocols


def make_dirs(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Directories on local file systems only: on object stores a mkdirs would create a
    bucket, and Ictal never creates storage the user did not set up."""
    if is_local(fs):
        fs.makedirs(path, exist_ok=True)


def describe(exc: BaseException) -> str:
    """``Type: message`` of a storage error, credentials redacted."""
    return redact(f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def storage_errors(url: str, doing: str, fix: str) -> Iterator[None]:
    """Backend failures inside the block (no bucket, no credentials, network, disk) become a
    refusal (exit 3) naming what was being done, the URL and the storage error."""
    try:
        yield
    except IctalError:
        raise
    except Exception as exc:  # fsspec backends raise their own types (botocore, aiohttp...)
        raise PreflightError(f"{doing} {redact(url)} failed: {describe(exc)}", fix) from exc


def fetch_file(fs: fsspec.AbstractFileSystem, remote: str, local: Path) -> None:
    """Copy one remote file to ``local`` atomically: fetched beside it under its temp name
    (what a killed fetch left there, or a link someone left, is removed and the file made
    anew here, never written through), fsynced, then renamed over ``local`` (a link there is
    replaced, never followed); a reader or a rerun never sees a torn file under its name."""
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(local.with_name(f".{local.name}.part.tmp"))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666))
    try:
        fs.get_file(remote, tmp)
        fsync_file(tmp)
        os.replace(tmp, local)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def files_to_copy(local: Path, local_only: Collection[str]) -> list[Path]:
    """Regular files of a directory worth copying elsewhere: all but the names that belong
    to this machine's copy (``local_only``: locks, pull records) and atomic-write temps
    (symbolic links are never followed or copied)."""
    return sorted(
        p
        for p in local.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and not p.name.endswith(".tmp")
        and p.name not in local_only
    )
