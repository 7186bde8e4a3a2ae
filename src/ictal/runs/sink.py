"""Push a run or evaluation directory to a sink (any fsspec URL: s3://, gs://, a path).

Results are pushed by the job, never pulled by hand from remote machines. Files go first and
`_PUSHED.json` (the list of what was pushed) last, so a reader of the sink knows the copy is
complete. Credentials and endpoints come from the environment (e.g. AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ictal.errors import PreflightError
from ictal.io.redact import redact
from ictal.io.storage import describe, files_to_copy, make_dirs, open_url
from ictal.ui import log

MARKER = "_PUSHED.json"
STARTED = "_STARTED.json"


@dataclass(frozen=True)
class Pushed:
    """Where a directory went and how much of it."""

    url: str
    files: int
    bytes: int


def check_sink(url: str, name: str) -> str:
    """Before expensive work: the sink accepts a write (`<url>/<name>/_STARTED.json`)."""
    dest = f"{url.rstrip('/')}/{name}"
    fs, root = open_url(dest, "sink.url")
    body = json.dumps({"name": name, "started": time.time()}).encode()
    try:
        make_dirs(fs, root)
        fs.pipe_file(f"{root}/{STARTED}", body)
    except Exception as exc:  # any backend error means the results could not be pushed
        raise PreflightError(
            f"sink {redact(dest)} is not writable: {describe(exc)}",
            "fix sink.url or its credentials (environment variables), or unset sink.url",
        ) from exc
    return dest


def push_dir(local: Path, url: str, name: str | None = None) -> Pushed:
    """Copy `local` to `<url>/<name or local.name>/`, marker last; raises on failure."""
    dest = f"{url.rstrip('/')}/{name or local.name}"
    fs, root = open_url(dest, "sink.url")
    files = files_to_copy(local)
    total = 0
    make_dirs(fs, root)
    for path in files:
        rel = path.relative_to(local).as_posix()
        target = f"{root}/{rel}"
        make_dirs(fs, target.rsplit("/", 1)[0])
        fs.put_file(str(path), target)
        total += path.stat().st_size
    listing = [{"path": p.relative_to(local).as_posix(), "bytes": p.stat().st_size} for p in files]
    marker = {"pushed": time.time(), "files": listing, "bytes": total}
    fs.pipe_file(f"{root}/{MARKER}", json.dumps(marker, indent=2).encode())
    log.info(f"pushed {len(files)} files ({total / 1e6:.1f} MB) from {local} to {redact(dest)}")
    return Pushed(redact(dest), len(files), total)


def try_push(local: Path, url: str | None, name: str | None = None) -> tuple[Pushed | None, str]:
    """push_dir that never raises: (result, error message) for the command's summary."""
    if not url:
        return None, ""
    try:
        return push_dir(local, url, name), ""
    except Exception as exc:  # local results are safe; the summary and exit code say it failed
        msg = f"push of {local} to {redact(url)} failed: {describe(exc)}"
        log.error(msg)
        return None, msg
