"""The build ledger: per-recording records in a locked building directory, so a killed
build resumes where it stopped and never redoes a completed recording."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ictal.cache import layout
from ictal.cache.manifest import read_json
from ictal.errors import UnsafePathError
from ictal.io.lock import FileLock
from ictal.io.paths import check_name, contained


def build_lock(directory: Path) -> FileLock:
    """An exclusive lock on a building or staging directory: one process in it at a time."""
    return FileLock(
        directory / layout.LOCK,
        f"the build directory {directory}",
        "wait for it to finish (`ictal explain` shows its progress)",
    )


def record_problem(directory: Path, rec: Any, name: str) -> str | None:
    """Why a ledger record cannot be trusted (not a dict, unsafe id or array), or None."""
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
        return f"{name}: not a ledger record"
    try:
        check_name(rec["id"], f"{directory / layout.RECORDS / name}: id")
        if rec.get("status") == "done":
            contained(directory, rec.get("array"), f"{directory / layout.RECORDS / name}: array")
    except UnsafePathError as exc:
        return exc.problem
    return None


def load_records(directory: Path) -> dict[str, dict[str, Any]]:
    """The ledger: id -> record, keeping only done records whose array is complete; records
    with an unsafe id or array path (not written by ictal) are ignored and redone."""
    records: dict[str, dict[str, Any]] = {}
    rec_dir = directory / layout.RECORDS
    if not rec_dir.is_dir():
        return records
    for name in os.listdir(rec_dir):
        if not name.endswith(".json") or name.startswith("."):
            continue  # temp files of a killed writer
        try:
            rec = read_json(rec_dir / name)
        except ValueError:
            continue  # cannot happen with atomic writes; redo the recording if it does
        if record_problem(directory, rec, name) is not None:
            continue
        if rec.get("status") == "done":
            array = directory / rec["array"]
            if not array.is_file() or array.stat().st_size != rec.get("bytes"):
                continue
        records[rec["id"]] = rec
    return records


def sweep_temp_files(directory: Path) -> int:
    """Remove temp files left by writers killed mid-write (only under the build lock)."""
    n = 0
    for sub in (layout.ARRAYS, layout.RECORDS, "."):
        d = directory / sub
        if not d.is_dir() or d.is_symlink():
            continue
        for p in d.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp") and not p.is_symlink():
                p.unlink(missing_ok=True)
                n += 1
    return n
