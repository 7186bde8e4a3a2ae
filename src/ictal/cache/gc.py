"""Explicit garbage collection: only `ictal gc --yes` removes caches, and only directories
Ictal made (a committed cache with its manifest, or a build or staging copy with the marker
Ictal wrote first). Anything else named like a key is listed and left alone; symbolic links
are never followed, and a directory whose manifest or marker is a link is not Ictal's."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ictal.cache import layout
from ictal.cache.locate import ictal_made, locate
from ictal.config import Config
from ictal.errors import PreflightError
from ictal.io.lock import is_locked


@dataclass(frozen=True)
class Removal:
    """A directory gc would remove, why, and the bytes that frees."""

    path: Path
    reason: str
    bytes: int


@dataclass(frozen=True)
class LeftAlone:
    """A directory named like a cache that gc will not touch, and why."""

    path: Path
    reason: str


@dataclass
class GcPlan:
    """What `ictal gc` would remove and what it leaves alone."""

    removals: list[Removal]
    left_alone: list[LeftAlone]


def _size(path: Path) -> int:
    """Bytes that removing `path` frees: arrays hard-linked into another cache (reused
    recordings) stay on disk, so they are not counted."""
    total = 0
    for p in path.rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink() and st.st_nlink == 1:
            total += st.st_size
    return total


def _linked_identity(entry: layout.Entry) -> bool:
    """The file that would prove Ictal made ``entry`` (manifest, plan or stage marker) is a
    symbolic link."""
    names = (layout.STAGE_MARKER if entry.staging else layout.PLAN,)
    if not entry.building:
        names += (layout.MANIFEST,)
    return any((entry.path / name).is_symlink() for name in names)


def plan_gc(cfg: Config) -> GcPlan:
    """Every Ictal directory under cache.root but the current key's cache and its resumable
    build; what is not Ictal's is listed as left alone."""
    located = locate(cfg)
    if located.key is None:
        raise PreflightError(
            "cannot tell which cache is current: the corpus is unreachable and no cache "
            "matches this config, so gc would remove everything",
            "make corpus.root reachable or pass the config the current cache was built with",
        )
    root = layout.CacheRoot.of(cfg)
    current = layout.key16(located.key)
    plan = GcPlan([], [])
    for entry in root.entries(links=True):
        if entry.path.is_symlink():
            plan.left_alone.append(LeftAlone(entry.path, "symbolic link (never followed)"))
            continue
        made = ictal_made(entry)
        if made is None:
            what = "no manifest.json" if not entry.building else "no marker ictal writes"
            if _linked_identity(entry):
                what = "its identity file is a symbolic link (never trusted)"
            plan.left_alone.append(LeftAlone(entry.path, f"not an Ictal cache ({what})"))
            continue
        if is_locked(entry.path / layout.LOCK) or is_locked(root.key_lock_path(entry.key16)):
            continue  # a live build or stage: never touch it
        if entry.building:
            if entry.key16 == current and not located.committed:
                continue  # the current config's interrupted build or stage: a rerun resumes it
            kind = "staging" if entry.staging else "build"
            reason = f"stale {kind} directory" + (
                " (its cache is committed)" if entry.key16 == current else ""
            )
            plan.removals.append(Removal(entry.path, reason, _size(entry.path)))
        elif made == "plan":
            plan.removals.append(
                Removal(entry.path, "broken commit: ictal build left it without manifest.json",
                        _size(entry.path))
            )  # fmt: skip
        elif entry.key16 != current:
            plan.removals.append(
                Removal(entry.path, "cache of another config or corpus", _size(entry.path))
            )
    return plan


def remove(removals: list[Removal]) -> None:
    """Delete the planned directories (only called with --yes); a directory that became a
    symbolic link since the plan, or whose identity file did, is skipped (``rmtree`` never
    follows a link inside), and a storage error is a refusal naming it."""
    for r in removals:
        if r.path.is_symlink() or not r.path.is_dir():
            continue
        identity = (layout.MANIFEST, layout.PLAN, layout.STAGE_MARKER)
        if any((r.path / name).is_symlink() for name in identity):
            continue  # its identity became a link since the plan: not Ictal's to delete
        try:
            shutil.rmtree(r.path)
        except OSError as exc:
            raise PreflightError(
                f"cannot remove {r.path}: {os.strerror(exc.errno) if exc.errno else exc}",
                "run gc where cache.root is writable (a read-only shared cache is listed, "
                "not changed)",
            ) from exc
