"""The sink: where runs are pushed (any fsspec URL: s3://, gs://, a path), and how a pushed run
is checked, listed and pulled back.

``<sink.url>/<run id>/`` mirrors a run directory (its evaluations inside it);
``_PUSHED.json`` (every file with its size and sha256) is written last by the final push, so
a copy is complete when it is there. Results are pushed by the job, never pulled by hand from
remote machines; ``ictal pull`` brings a pushed run back for ``report`` or ``evaluate``.
Credentials and endpoints come from the environment (e.g. AWS_ENDPOINT_URL); no bucket is
ever created.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from ictal.errors import PreflightError
from ictal.io.atomic import atomic_write_json, fsync_dir
from ictal.io.digest import file_sha256
from ictal.io.paths import contained, writable_dir
from ictal.io.redact import redact
from ictal.io.storage import (
    describe,
    fetch_file,
    is_local,
    make_dirs,
    open_url,
    storage_errors,
)
from ictal.runs.directory import EVAL_PREFIX, HEARTBEAT, PULL_INDEX, PUSHED, STARTED
from ictal.ui import log, progress


def _not_writable(dest: str, exc: BaseException) -> PreflightError:
    return PreflightError(
        f"sink {redact(dest)} is not writable: {describe(exc)}",
        "fix sink.url or its credentials (environment variables), or unset sink.url",
    )


def check_sink(url: str, name: str) -> str:
    """Before expensive work: the sink accepts a write (`<url>/<name>/_STARTED.json`)."""
    dest = f"{url.rstrip('/')}/{name}"
    fs, root = open_url(dest, "sink.url")
    body = json.dumps({"name": name, "started": time.time()}).encode()
    try:
        make_dirs(fs, root)
        fs.pipe_file(f"{root}/{STARTED}", body)
    except Exception as exc:  # any backend error means the results could not be pushed
        raise _not_writable(dest, exc) from exc
    return dest


def probe_sink(url: str) -> None:
    """The sink takes a write now (a probe object, removed again) without leaving anything:
    a local sink not made yet is probed in its nearest existing parent, as a run would make it
    there; a bucket is never created."""
    fs, root = open_url(url, "sink.url")
    try:
        if is_local(fs):
            while not fs.exists(root) and root != os.path.dirname(root):
                root = os.path.dirname(root)
        probe = f"{root}/.ictal-probe-{socket.gethostname()}-{os.getpid()}"
        fs.pipe_file(probe, b"ictal write probe\n")
        fs.rm_file(probe)
    except Exception as exc:  # any backend error means the results could not be pushed
        raise _not_writable(url, exc) from exc


def read_marker(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, Any] | None:
    """The ``_PUSHED.json`` of a pushed directory, or None while it is not complete."""
    try:
        doc = json.loads(fs.cat_file(f"{root}/{PUSHED}"))
    except (FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("files"), list) else None


def pushed_heartbeats(
    url: str, missing_ok: bool = False
) -> list[tuple[str, dict[str, Any] | None]]:
    """(name, heartbeat) of every run and evaluation pushed under ``url`` (None when its
    heartbeat is unreadable; none when nothing is there yet and ``missing_ok``); a storage
    error is a refusal naming the URL."""
    fs, root = open_url(url, "status WHERE")
    fix = "check the URL and its credentials (environment variables)"
    with storage_errors(url, "listing the runs at", fix):
        if not fs.exists(root):
            if missing_ok:
                return []
            raise FileNotFoundError(f"{url} does not exist")
        patterns = (f"{root}/*/{HEARTBEAT}", f"{root}/*/{EVAL_PREFIX}*/{HEARTBEAT}")
        found = sorted({p for pattern in patterns for p in fs.glob(pattern)})
        out: list[tuple[str, dict[str, Any] | None]] = []
        for path in found:
            name = path[len(root) + 1 : -len(HEARTBEAT) - 1]
            try:
                beat = json.loads(fs.cat_file(path))
            except (ValueError, FileNotFoundError):
                beat = None
            out.append((name, beat if isinstance(beat, dict) else None))
    return out


@dataclass
class Pulled:
    """What ``ictal pull`` fetched."""

    source: str  # redacted
    dest: Path
    files: int = 0
    bytes: int = 0
    unchanged: int = 0
    complete: bool = False  # the run's final push was done and every file matches it


def _signature(info: dict[str, Any]) -> list[Any]:
    """What says a remote file changed: its size and its ETag or modification time."""
    tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return [int(info.get("size") or 0), str(tag)]


def pull(url: str, dest: Path) -> Pulled:
    """Fetch a pushed run into ``dest``: every file when its final push is done (checked
    against ``_PUSHED.json``), else whatever is there now. Files arrive through temporary
    names; a second pull fetches only what changed. Names from the listing are untrusted:
    one that would land outside ``dest`` is refused (exit 3)."""
    fs, root = open_url(url, "RUN_URL")
    fix = "check the URL and its credentials (environment variables), then pull again"
    result = Pulled(redact(url), Path(dest))
    with storage_errors(url, "reading", fix):
        if not fs.exists(root):
            raise PreflightError(f"nothing is pushed at {redact(url)}", "check the run URL")
        marker = read_marker(fs, root)
        listing = {
            name[len(root) + 1 :]: info
            for name, info in fs.find(root, detail=True).items()
            if info.get("type") != "directory" and name.startswith(root + "/")
        }
    wanted = sorted(
        rel for rel in listing
        if rel not in (PUSHED, STARTED) and not rel.endswith(".tmp")
    )  # fmt: skip
    dest = writable_dir(dest, "DEST")
    for rel in wanted:
        contained(dest, rel, f"remote object in {redact(url)}")
    index_path = dest / PULL_INDEX
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    with storage_errors(url, "pulling from", fix), progress("pull", total=len(wanted)) as tick:
        for rel in wanted:
            local = dest / rel
            sig = _signature(listing[rel])
            if index.get(rel) == sig and local.is_file():
                result.unchanged += 1
            else:
                fetch_file(fs, f"{root}/{rel}", local)
                index[rel] = sig
                result.files += 1
                result.bytes += sig[0]
            tick.advance(1)
    fsync_dir(dest)
    atomic_write_json(index_path, index)
    if marker is not None:
        _check_against_marker(dest, marker, url, index, index_path)
        atomic_write_json(dest / PUSHED, marker)
        result.complete = True
    log.info(
        f"pulled {result.source} into {dest}: {result.files} files, {result.bytes / 1e6:.1f} MB "
        f"({result.unchanged} unchanged); "
        + ("complete" if result.complete else "the run has not finished its final push")
    )
    return result


def _check_against_marker(
    dest: Path, marker: dict[str, Any], url: str, index: dict[str, Any], index_path: Path
) -> None:
    """Every file the final push listed is here with its size and sha256; a file that is not
    is forgotten (fetched again next time) and the pull is refused naming it."""
    bad = []
    for entry in marker["files"]:
        rel = entry.get("path")
        local = contained(dest, rel, f"{PUSHED} of {redact(url)}")
        ok = (
            local.is_file()
            and local.stat().st_size == entry.get("bytes")
            and file_sha256(local) == entry.get("sha256")
        )
        if not ok:
            bad.append(rel)
            index.pop(rel, None)
    if bad:
        atomic_write_json(index_path, index)
        raise PreflightError(
            f"the pulled copy of {redact(url)} differs from its {PUSHED} in {len(bad)} file(s), "
            f"first {bad[0]}",
            "pull again (those files are fetched again); if it fails again, the pushed copy "
            "is damaged: push the run again from where it ran",
        )
