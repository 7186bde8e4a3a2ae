"""Continuous push of a run directory to its sink: a background thread copies what changed
every ``sink.every_s`` seconds (at once when started, and soon after each checkpoint), so a run
on a remote machine is visible from anywhere while it runs, and after a kill.

- Append-only files (``metrics.jsonl``, logs, TensorBoard events) send only their new bytes
  where the backend can append (a local or mounted path; S3 once the object is large enough
  for a server-side copy), else the file is rewritten; a file that was rewritten locally
  (a resume trims ``metrics.jsonl``) is rewritten remotely.
- Every other file (heartbeat, run.json, config, checkpoints) is uploaded when it changed, as
  a complete object: an object store replaces it at once, a local sink gets it through a
  temporary name and a rename, so a reader never takes half a checkpoint.
- Failures never reach the command: they are retried with backoff and counted, and the
  heartbeat carries ``push_lag_s``, ``push_failures`` and the last error (redacted).
- The last push writes ``_PUSHED.json`` (every file with its size and sha256) last: the copy is
  complete when it is there. A push that starts again (a resume) removes it first.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ictal.io.digest import file_sha256
from ictal.io.paths import linked_below
from ictal.io.redact import redact
from ictal.io.storage import describe, files_to_copy, is_local, make_dirs, open_url
from ictal.runs.directory import LOCAL_ONLY, METRICS, PUSHED
from ictal.runs.heartbeat import LiveStatus
from ictal.ui import log

APPEND_NAMES = (METRICS,)
APPEND_SUFFIXES = (".log",)
S3_APPEND_MIN = 5 * 2**20  # S3 appends by a server-side copy of parts of at least 5 MiB
MAX_BACKOFF_S = 60.0


def is_append_only(rel: str) -> bool:
    """Files that only grow while a run writes them (metrics, logs, TensorBoard events)."""
    name = rel.rsplit("/", 1)[-1]
    return (
        name in APPEND_NAMES
        or name.endswith(APPEND_SUFFIXES)
        or (rel.startswith("tb/") and "tfevents" in name)
    )


@dataclass(frozen=True)
class Signature:
    """What identifies a version of a local file: its inode, size and modification time."""

    ino: int
    size: int
    mtime_ns: int


@dataclass
class PushOutcome:
    """How pushing a directory went, for the command's summary."""

    url: str | None = None  # redacted destination
    files: int = 0  # file uploads or appends
    bytes: int = 0  # bytes sent
    failures: int = 0  # failed attempts (retried)
    error: str = ""  # the last error, when the final push failed
    complete: bool = False  # _PUSHED.json written

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class Pusher:
    """Keeps ``<url>/<name>/`` a copy of ``local``; ``start`` runs it in a thread."""

    local: Path
    url: str
    name: str
    every_s: float = 60.0
    live: LiveStatus | None = None
    exclude: Callable[[str], bool] = lambda rel: False
    outcome: PushOutcome = field(default_factory=PushOutcome)
    _state: dict[str, Signature] = field(default_factory=dict)
    _remote_size: dict[str, int] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sync_lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.dest = f"{self.url.rstrip('/')}/{self.name}"
        self.fs, self.root = open_url(self.dest, "sink.url")
        self.outcome.url = redact(self.dest)
        self._marker_cleared = False

    # ------------------------------------------------------------------ the thread

    def start(self) -> Pusher:
        """Push once now (in the thread), then every ``every_s`` seconds."""
        self._thread = threading.Thread(target=self._run, name="ictal-pusher", daemon=True)
        self._thread.start()
        return self

    def nudge(self) -> None:
        """Push soon (a checkpoint was written)."""
        self._wake.set()

    def _run(self) -> None:
        delay, backoff = 0.0, 1.0
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
                delay, backoff = self.every_s, 1.0
            except Exception as exc:  # a push failure never reaches the command
                self._failed(exc)
                delay, backoff = min(self.every_s, backoff), min(2 * backoff, MAX_BACKOFF_S)

    def _failed(self, exc: BaseException) -> None:
        self.outcome.failures += 1
        message = f"push to {self.outcome.url} failed: {describe(exc)}"
        if self.outcome.failures in (1, 10, 100) or self.outcome.failures % 1000 == 0:
            log.warning(f"{message} (failure {self.outcome.failures}; retrying)")
        if self.live is not None:
            self.live.update(push_failures=self.outcome.failures, push_error=message)

    def close(self, *, final: bool = True) -> PushOutcome:
        """Stop the thread; with ``final``, push everything and write the marker last. Never
        raises: a failure is in the outcome (and the local run is intact)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if not final:
            return self.outcome
        for attempt in range(2):
            try:
                self.sync()
                self._write_marker()
                self.outcome.complete = True
                self.outcome.error = ""
                log.info(
                    f"pushed {self.local} to {self.outcome.url} ({self.outcome.files} uploads, "
                    f"{self.outcome.bytes / 1e6:.1f} MB, {self.outcome.failures} retried failures)"
                )
                break
            except Exception as exc:  # the local run is safe; the summary says it
                self.outcome.failures += 1
                self.outcome.error = f"push of {self.local} to {self.outcome.url} failed: " + (
                    describe(exc)
                )
                time.sleep(0.5 * (attempt + 1))
        if self.outcome.error:
            log.error(self.outcome.error)
        return self.outcome

    # ------------------------------------------------------------------ one pass

    def sync(self) -> int:
        """Send what changed since the last pass; returns the uploads made. Raises on a
        storage error (what was sent stays sent)."""
        with self._sync_lock:
            if not self._marker_cleared:
                make_dirs(self.fs, self.root)
                if self.fs.exists(f"{self.root}/{PUSHED}"):  # pushing again: not complete now
                    self.fs.rm_file(f"{self.root}/{PUSHED}")
                self._marker_cleared = True
            # Whole files (checkpoints) are captured first and sent after the append-only logs:
            # the sink never holds a checkpoint newer than its metrics, so a run resumed from
            # the sink has every metrics line up to its checkpoint, whenever the push stopped.
            snapshots: list[tuple[Path, str, Signature]] = []
            logs: list[tuple[Path, str, Signature]] = []
            linked: list[Path] = []
            try:
                for path in files_to_copy(self.local, LOCAL_ONLY):
                    rel = path.relative_to(self.local).as_posix()
                    if self.exclude(rel):
                        continue
                    if is_append_only(rel):
                        logs.append((path, rel, Signature(0, 0, 0)))
                        continue
                    snap = path.with_name(f".{path.name}.{secrets.token_hex(4)}.push.tmp")
                    try:
                        os.link(path, snap)  # this version, even if replaced meanwhile
                        linked.append(snap)
                    except FileNotFoundError:
                        continue  # replaced or removed since the listing: next pass
                    except OSError:
                        snap = path  # no hard links here: send the file as it is then
                    try:
                        st = snap.stat()
                    except FileNotFoundError:
                        continue
                    snapshots.append((snap, rel, Signature(st.st_ino, st.st_size, st.st_mtime_ns)))
                uploads = 0
                for path, rel, sig in logs + snapshots:
                    if not sig.ino:
                        try:
                            st = path.stat()
                        except FileNotFoundError:
                            continue
                        sig = Signature(st.st_ino, st.st_size, st.st_mtime_ns)
                    if self._state.get(rel) == sig:
                        continue
                    self._push_file(path, rel, sig)
                    self._state[rel] = sig
                    uploads += 1
            finally:
                for snap in linked:
                    snap.unlink(missing_ok=True)
            if self.live is not None:
                self.live.update(push_ok_at=time.time(), push_error=None)
            return uploads

    def _push_file(self, path: Path, rel: str, sig: Signature) -> None:
        target = f"{self.root}/{rel}"
        if is_local(self.fs):  # a link someone left in a local sink is never written through
            behind = linked_below(self.root, target)
            if behind is not None:
                raise OSError(f"{behind} in the sink is a symbolic link; not pushed through it")
        make_dirs(self.fs, target.rsplit("/", 1)[0])
        before = self._state.get(rel)
        sent = self._remote_size.get(rel)
        growing = (
            is_append_only(rel)
            and before is not None
            and before.ino == sig.ino
            and sent is not None
            and sig.size > sent
        )
        if growing and self._can_append(sent or 0) and self._remote_size_is(target, sent or 0):
            with open(path, "rb") as fh:
                fh.seek(sent or 0)
                data = fh.read(sig.size - (sent or 0))
            with self.fs.open(target, "ab") as out:
                out.write(data)
            self._remote_size[rel] = (sent or 0) + len(data)
            self.outcome.bytes += len(data)
        else:
            size = self._put_whole(path, target)
            self._remote_size[rel] = size
            self.outcome.bytes += size
        self.outcome.files += 1

    def _can_append(self, remote_size: int) -> bool:
        """True where appending sends only the new bytes: a local path, or S3 once the
        object is big enough for a server-side copy of the old part."""
        if is_local(self.fs):
            return True
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
        return bool({"s3", "s3a"} & set(protocols)) and remote_size >= S3_APPEND_MIN

    def _remote_size_is(self, target: str, size: int) -> bool:
        """The remote file still has the size this pusher left (else rewrite it whole)."""
        try:
            return int(self.fs.info(target).get("size") or -1) == size
        except FileNotFoundError:
            return False

    def _put_whole(self, path: Path, target: str) -> int:
        """Upload a file as one complete object (local sinks: temporary name, then rename).
        Returns the bytes sent (the file may have grown while being read)."""
        if is_local(self.fs):
            tmp = f"{target}.{secrets.token_hex(4)}.tmp"
            self.fs.put_file(str(path), tmp)
            self.fs.mv(tmp, target)
        else:
            self.fs.put_file(str(path), target)
        return int(self.fs.size(target) or 0)

    def _write_marker(self) -> None:
        listing = []
        total = 0
        for path in files_to_copy(self.local, LOCAL_ONLY):
            rel = path.relative_to(self.local).as_posix()
            if self.exclude(rel):
                continue
            size = path.stat().st_size
            listing.append({"path": rel, "bytes": size, "sha256": file_sha256(path)})
            total += size
        marker = {"pushed": time.time(), "files": listing, "bytes": total}
        self.fs.pipe_file(f"{self.root}/{PUSHED}", json.dumps(marker, indent=2).encode())
