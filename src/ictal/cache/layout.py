"""Where things live under `cache.root`: committed key directories and in-progress builds.

`<root>/<key16>/` is a committed cache (its `manifest.json` is the commit marker);
`<root>/<key16>.building-<run>/` is a build in progress, `<root>/<key16>.staging/` a copy
being fetched by `ictal stage`; both are invisible to readers. `CacheRoot` names them all,
so no module spells a path under the root on its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ictal.io.lock import FileLock
from ictal.io.paths import writable_dir

if TYPE_CHECKING:
    from ictal.config import Config

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


@dataclass(frozen=True)
class CacheRoot:
    """The directory ``cache.root`` and the names of what lives under it, built once from the
    config so every module asks it for a key's directories and locks the same way."""

    path: Path

    @classmethod
    def of(cls, cfg: Config) -> CacheRoot:
        """The cache root a config names."""
        return cls(Path(cfg.cache.root))

    def writable(self) -> CacheRoot:
        """This root, made if missing; a usage error (exit 2) when it cannot be written."""
        writable_dir(self.path, "cache.root")
        return self

    def committed(self, key: str) -> Path:
        """The committed directory of a key (exists only once its build finished)."""
        return self.path / key16(key)

    def building(self, key: str, run: str) -> Path:
        """The in-progress directory of one build run of a key."""
        return self.path / f"{key16(key)}.building-{run}"

    def staging(self, key: str) -> Path:
        """The directory `ictal stage` fetches a published copy of a key into."""
        return self.path / f"{key16(key)}.staging"

    def key_lock_path(self, key: str) -> Path:
        """The lock file every build and stage of a key holds (``<root>/<key16>.lock``)."""
        return self.path / f"{key16(key)}.lock"

    def key_lock(self, key: str) -> FileLock:
        """The lock every build and stage of one key holds from its first check to its
        commit, so two of them never race for the same committed directory."""
        return FileLock(
            self.key_lock_path(key),
            f"the cache {key16(key)} under {self.path}",
            "another build or stage of this cache is running: wait for it to finish (`ictal "
            "explain` shows its progress), then run the command again",
        )

    def entries(self, *, links: bool = False) -> list[Entry]:
        """Directories here named like a committed cache, a build or a staging copy, sorted
        by name. Symbolic links are left out (nothing may follow them) unless ``links``."""
        if not self.path.is_dir():
            return []
        out: list[Entry] = []
        for name in sorted(os.listdir(self.path)):
            path = self.path / name
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

    def builds_of(self, key: str) -> list[Entry]:
        """Interrupted or running builds of this key, newest run last."""
        k16 = key16(key)
        return [e for e in self.entries() if e.building and not e.staging and e.key16 == k16]
