"""``run.json``: who ran a run, with which code and on what (versions, commit, cache, host,
command), and every process that resumed it. Credentials in the command line are masked."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ictal import __version__
from ictal.io.atomic import atomic_write_json
from ictal.io.redact import redact
from ictal.io.untrusted import UnreadableInput, read_json


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD commit of the git repository around ``cwd`` (with '+dirty'), or None; never fails."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        suffix = "+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
        return head.stdout.strip() + suffix
    except (OSError, subprocess.SubprocessError):
        return None


def command_line() -> str:
    """This process's command line, credentials masked."""
    return redact(shlex.join(sys.argv))


def torch_version() -> str | None:
    """The torch this process runs, or would import: read from its installed metadata, not
    by importing it (an ONNX detect never loads torch: 1-2 s of start-up); None without it."""
    loaded = sys.modules.get("torch")
    if loaded is not None and isinstance(getattr(loaded, "__version__", None), str):
        return str(loaded.__version__)
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def run_metadata(device: str, **identity: Any) -> dict[str, Any]:
    """Versions, code commit, host and command line of this process, and what the run works
    on (``identity``: cache key and path for training, checkpoint for detection...)."""
    import numpy

    return {
        "ictal_version": __version__,
        "python": platform.python_version(),
        "torch": torch_version(),
        "numpy": numpy.__version__,
        "git_commit": git_commit(),
        **{k: str(v) if isinstance(v, Path) else v for k, v in identity.items()},
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device,
        "pid": os.getpid(),
        "start_time": time.time(),
        "command": command_line(),
        "cwd": os.getcwd(),
        "resumes": [],
    }


# run.json grows by a few hundred bytes per resume: far below this.
MAX_RUN_JSON_BYTES = 16 << 20


def read_run_json(path: Path) -> dict[str, Any]:
    """The run metadata, or {} when missing or unreadable (not a regular file, over
    ``MAX_RUN_JSON_BYTES``, not a JSON object): a report still renders."""
    try:
        meta = read_json(path, "run.json", MAX_RUN_JSON_BYTES)
    except (OSError, UnreadableInput):
        return {}
    return meta if isinstance(meta, dict) else {}


def record_resume(run_json: Path, device: str) -> None:
    """Append this process (time, host, pid, command) to run.json's list of resumes."""
    meta = read_run_json(run_json)
    meta.setdefault("resumes", []).append(
        {
            "time": time.time(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": device,
            "command": command_line(),
            "git_commit": git_commit(),
        }
    )
    atomic_write_json(run_json, meta)
