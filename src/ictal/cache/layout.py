"""Where things live under `cache.root`: committed key directories and in-progress builds.

`<root>/<key16>/` is a committed cache (its `manifest.json` is the commit marker);
`<root>/<key16>.building-<run>/` is a build in progress, `<root>/<key16>.staging/` a copy
being fetched by `ictal stage`; both are invisible to readers.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
TABLE = "recordings.json"
BUILD_INFO = "build.json"
PLAN = "plan.json"
ARRAYS = "arrays"
RECORDS = "records"
LOCK = ".lock"
STAGE_MARKER = "stage.json"  # written first into a staging directory by `ictal stage`

_COMMITTED = re.compile(r"^[0-9a-f]{16}$")
_BUILDING = re.compile(r"^([0-9a-f]{16})\.building-([0-9A-Za-z_-]+)$")
_STAGING = re.compile(r"^([0-9a-f]{16})\.staging$")


def key16(key: str) -> str:
    """Directory name of a cache: the first 16 hex digits of its key."""
    return key[:16]


def committed_dir(root: str | Path, key: str) -> Path:
    """The committed directory of a key (exists only once the build finished)."""
    return Path(root) / key16(key)


def key_lock_path(root: str | Path, key: str) -> Path:
    """The lock file every build and stage of a key holds (``<root>/<key16>.lock``)."""
    return Path(root) / f"{key16(key)}.lock"


def new_run_id() -> str:
    """A build run id: UTC time plus a random suffix (sortable, unique)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def building_dir(root: str | Path, key: str, run: str) -> Path:
    """The in-progress directory of one build run."""
    return Path(root) / f"{key16(key)}.building-{run}"


@dataclass(frozen=True)
class Entry:
    """A directory under cache.root: a committed cache, a build in progress, or a staging
    copy (``building`` and ``staging``: in progress, but not a build to resume)."""

    path: Path
    key16: str
    building: bool
    run: str | None = None
    staging: bool = False


def classify(path: Path) -> Entry | None:
    """The entry a directory name stands for (committed, building, staging), or None."""
    name = path.name
    if _COMMITTED.match(name):
        return Entry(path, name, building=False)
    m = _BUILDING.match(name)
    if m:
        return Entry(path, m.group(1), building=True, run=m.group(2))
    m = _STAGING.match(name)
    if m:
        return Entry(path, m.group(1), building=True, staging=True)
    return None


def list_entries(root: str | Path, *, links: bool = False) -> list[Entry]:
    """Directories under root named like a committed cache, a build or a staging copy, sorted
    by name. Symbolic links are left out (nothing may follow them) unless ``links``."""
    base = Path(root)
    if not base.is_dir():
        return []
    out: list[Entry] = []
    for name in sorted(os.listdir(base)):
        path = base / name
        entry = classify(path)
        if entry is None:
            continue
        if path.is_symlink():
            if links:
                out.append(entry)
            continue
        if path.is_dir():
            out.append(entry)
    return out


def building_dirs_for(root: str | Path, key: str) -> list[Entry]:
    """Interrupted or running builds of this key, newest run last."""
    return [e for e in list_entries(root) if e.building and not e.staging and e.key16 == key16(key)]
