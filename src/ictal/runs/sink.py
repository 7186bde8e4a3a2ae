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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from ictal.errors import Ending, PreflightError, UnsafePathError
from ictal.io.atomic import atomic_write_json, fsync_dir
from ictal.io.digest import file_sha256
from ictal.io.paths import (
    check_name,
    check_relative,
    is_safe_name,
    linked_below,
    plain_file,
    writable_dir,
)
from ictal.io.redact import redact
from ictal.io.storage import (
    describe,
    fetch_file,
    is_local,
    make_dirs,
    open_url,
    storage_errors,
)
from ictal.io.untrusted import loads_json, read_json
from ictal.runs.directory import CONFIG, EVAL_PREFIX, HEARTBEAT, PULL_INDEX, PUSHED, STARTED
from ictal.ui import log, progress


def _not_writable(dest: str, exc: BaseException) -> PreflightError:
    return PreflightError(
        f"sink {redact(dest)} is not writable: {describe(exc)}",
        "fix sink.url or its credentials (environment variables), or unset sink.url",
    )


def check_sink(url: str, name: str) -> str:
    """Before expensive work: ``name`` is a run name (``is_run_name``: a checkpoint's run id
    or an output's name never climbs out of the sink) and the sink accepts a write
    (`<url>/<name>/_STARTED.json`)."""
    if not is_run_name(name):
        raise UnsafePathError(
            f"sink.url {redact(url)}: {name[:80]!r} is not a run name to push under (plain "
            "names only: letters, digits, '_', '-', '.', '+')",
            "the checkpoint's run id or the output directory's name is not plain: rename "
            "the output (--out) or unset sink.url",
        )
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


MAX_SINK_JSON = 16 << 20  # a marker of a run with many thousands of files is a few MB


def _cat_json(fs: fsspec.AbstractFileSystem, path: str) -> Any:
    """A small JSON object of a sink (heartbeat, marker), or None when it is missing, larger
    than ``MAX_SINK_JSON``, a link (local sinks) or not JSON: never a traceback."""
    try:
        if is_local(fs) and not plain_file(path):
            return None
        data = fs.cat_file(path, start=0, end=MAX_SINK_JSON + 1)
        if len(data) > MAX_SINK_JSON:
            return None
        return loads_json(data, path)
    except (FileNotFoundError, ValueError):
        return None


def read_marker(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, Any] | None:
    """The ``_PUSHED.json`` of a pushed directory, or None while it is not complete."""
    doc = _cat_json(fs, f"{root}/{PUSHED}")
    return doc if isinstance(doc, dict) and isinstance(doc.get("files"), list) else None


def is_run_name(name: str) -> bool:
    """A run or evaluation as a sink holds it: ``<run>`` (a plain name, ``check_name``'s
    rule) or ``<run>/<output>`` (an evaluation's directory name as the user chose it: one
    component, not ``.`` or ``..``). An object named ``..`` or ``a//b`` is no run."""
    run, sep, out = name.partition("/")
    if not is_safe_name(run):
        return False
    if not sep:
        return True
    return out not in ("", ".", "..") and out.isprintable() and not any(c in out for c in "/\\")


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
            if not is_run_name(name):
                log.warning(
                    f"{redact(url)}: {name[:80]!r} is not a run name (plain names only): not listed"
                )
                continue
            beat = _cat_json(fs, path)
            out.append((name, beat if isinstance(beat, dict) else None))
    return out


@dataclass
class Pulled:
    """What ``ictal pull`` fetched, and the objects it would not take (with the reason)."""

    source: str  # redacted
    dest: Path
    files: int = 0
    bytes: int = 0
    unchanged: int = 0
    complete: bool = False  # the run's final push was done and every file matches it
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (object, why), redacted

    @property
    def ending(self) -> Ending:
        """PARTIAL when an object of the listing was refused (each named in its own line)."""
        return Ending.PARTIAL if self.skipped else Ending.DONE


def _signature(info: dict[str, Any]) -> list[Any]:
    """What says a remote file changed: its size and its ETag or modification time."""
    tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return [int(info.get("size") or 0), str(tag)]


RUN_URL_FIX = "give the URL of one pushed run: <sink.url>/<run id>"


def run_url(url: str) -> tuple[str, str]:
    """``RUN_URL`` as ``ictal pull`` reads it (no trailing '/') and the run's name, its last
    part, which must be a plain name (exit 3 otherwise): ``.``, ``..`` or an empty part
    never name a run; on an object store a bucket alone, or a ``.`` or ``..`` part anywhere,
    is refused too (keys are literal there: it would name other objects than it seems to)."""
    scheme, sep, path = url.partition("://")
    if not sep:
        scheme, path = "", url
    trimmed = path.rstrip("/")
    name = trimmed.rsplit("/", 1)[-1]
    check_name(name, f"RUN_URL {redact(url)}: its last part", RUN_URL_FIX)
    parts = trimmed.split("/")
    if scheme not in ("", "file", "local") and (len(parts) < 2 or {".", ".."} & set(parts)):
        raise UnsafePathError(
            f"RUN_URL {redact(url)}: a bucket alone, or a '.' or '..' part (keys are literal: "
            "it names other objects than it seems to), is no pushed run",
            RUN_URL_FIX,
        )
    return (f"{scheme}://{trimmed}" if sep else trimmed), name


def _is_link(info: dict[str, Any]) -> bool:
    """A listing entry that is a symbolic link (local sinks): never followed or copied."""
    return bool(info.get("islink")) or info.get("type") == "other"


def pull(url: str, dest: Path) -> Pulled:
    """Fetch a pushed run into ``dest``: every file when its final push is done (checked
    against ``_PUSHED.json``), else whatever is there now. Files arrive through temporary
    names; a second pull fetches only what changed. Names from the listing are untrusted:
    an object whose name would land outside ``dest``, a symbolic link in a local sink, and
    a file whose place in ``dest`` lies behind a link are each skipped with one line (exit
    4); a ``dest`` that is itself a link is refused (exit 3)."""
    url, _ = run_url(url)
    fs, root = open_url(url, "RUN_URL")
    fix = "check the URL and its credentials (environment variables), then pull again"
    shown = redact(url)
    result = Pulled(shown, Path(dest))
    with storage_errors(url, "reading", fix):
        if not fs.exists(root):
            raise PreflightError(f"nothing is pushed at {shown}", "check the run URL")
        marker = read_marker(fs, root)
        listing = {
            name[len(root) + 1 :]: info
            for name, info in fs.find(root, detail=True).items()
            if info.get("type") != "directory" and name.startswith(root + "/")
        }
    if not {PUSHED, STARTED, HEARTBEAT, CONFIG} & set(listing):
        raise PreflightError(
            f"{shown} is not a pushed run (no {HEARTBEAT}, {CONFIG} or {PUSHED} in it)",
            RUN_URL_FIX,
        )
    if Path(dest).is_symlink():
        raise UnsafePathError(
            f"DEST {dest} is a symbolic link; ictal never writes a pull through a link",
            "give the directory it points to, or another DEST",
        )
    dest = writable_dir(dest, "DEST")
    wanted = []
    for rel, info in sorted(listing.items()):
        if rel in (PUSHED, STARTED) or rel.endswith(".tmp"):
            continue
        why = _refused(dest, rel, info, shown)
        if why is None:
            wanted.append(rel)
        else:
            named = rel if rel.isprintable() and len(rel) <= 200 else repr(rel[:200])
            _skip(result, f"{shown}/{named}", why)
    index_path = dest / PULL_INDEX
    index = _read_index(index_path)
    with storage_errors(url, "pulling from", fix), progress("pull", total=len(wanted)) as tick:
        for rel in wanted:
            local = dest / rel
            sig = _signature(listing[rel])
            if index.get(rel) == sig and plain_file(local):
                result.unchanged += 1
            else:
                fetch_file(fs, f"{root}/{rel}", local)
                index[rel] = sig
                result.files += 1
                result.bytes += sig[0]
            tick.advance(1)
    fsync_dir(dest)
    atomic_write_json(index_path, index)
    if marker is not None and not result.skipped:
        _check_against_marker(dest, marker, url, index, index_path)
        atomic_write_json(dest / PUSHED, marker)
        result.complete = True
    if result.skipped:
        state = f"{len(result.skipped)} object(s) not pulled (named above)"
    else:
        state = "complete" if result.complete else "the run has not finished its final push"
    log.info(
        f"pulled {result.source} into {dest}: {result.files} files, {result.bytes / 1e6:.1f} MB "
        f"({result.unchanged} unchanged); {state}"
    )
    return result


def _refused(dest: Path, rel: str, info: dict[str, Any], shown: str) -> str | None:
    """Why the listed object ``rel`` is not pulled into ``dest``, or None."""
    try:
        check_relative(rel, "object")
    except UnsafePathError:
        return "its name is not a relative path inside the run (absolute, '.' or '..' part)"
    if _is_link(info):
        return "a symbolic link in the sink (ictal never follows or copies links)"
    behind = linked_below(dest, dest / rel)
    if behind is not None and behind != dest / rel:
        return f"its place in {dest} lies behind the symbolic link {behind}"
    return None


def _skip(result: Pulled, what: str, why: str) -> None:
    """One refused object: named in one line, kept in the result."""
    log.warning(f"not pulled: {what}: {why}")
    result.skipped.append((what, why))


def _read_index(path: Path) -> dict[str, Any]:
    """What the last pull fetched (rel -> signature); empty when absent, a link or damaged
    (then every file is fetched again)."""
    if not plain_file(path):
        return {}
    try:
        index = read_json(path, "pull record")
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _check_against_marker(
    dest: Path, marker: dict[str, Any], url: str, index: dict[str, Any], index_path: Path
) -> None:
    """Every file the final push listed is here, a regular file (never a link) with its size
    and sha256; a file that is not is forgotten (fetched again next time, a link removed)
    and the pull is refused naming it."""
    bad = []
    for entry in marker["files"]:
        rel = entry.get("path") if isinstance(entry, dict) else None
        local = dest / check_relative(rel, f"{PUSHED} of {redact(url)}")
        if local.is_symlink():
            local.unlink()  # never keep a link in a pulled run: it is fetched again
        ok = (
            linked_below(dest, local) is None
            and plain_file(local)
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
