"""Explicit garbage collection: only `ictal gc --yes` removes caches (DESIGN.md invariant 5)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ictal.cache import layout
from ictal.cache.ledger import is_locked
from ictal.cache.locate import locate
from ictal.config import Config
from ictal.errors import PreflightError


@dataclass(frozen=True)
class Removal:
    """A directory gc would remove, why, and the bytes that frees."""

    path: Path
    reason: str
    bytes: int


def _size(path: Path) -> int:
    """Bytes that removing `path` frees: arrays hard-linked into another cache (reused
    recordings) stay on disk, so they are not counted."""
    return sum(
        st.st_size for p in path.rglob("*") if p.is_file() and (st := p.stat()).st_nlink == 1
    )


def plan_gc(cfg: Config) -> list[Removal]:
    """Everything under cache.root but the current key's cache and its resumable build."""
    located = locate(cfg)
    if located.key is None:
        raise PreflightError(
            "cannot tell which cache is current: the corpus is unreachable and no cache "
            "matches this config, so gc would remove everything",
            "make corpus.root reachable or pass the config the current cache was built with",
        )
    current = layout.key16(located.key)
    out = []
    for entry in layout.list_entries(Path(cfg.cache.root)):
        if entry.building:
            if is_locked(entry.path):
                continue  # a live build: never touch it
            if entry.key16 == current and not located.committed:
                continue  # the current config's interrupted build or stage: a rerun resumes it
            kind = "staging" if entry.staging else "build"
            reason = f"stale {kind} directory" + (
                " (its cache is committed)" if entry.key16 == current else ""
            )
            out.append(Removal(entry.path, reason, _size(entry.path)))
        elif entry.key16 != current:
            out.append(Removal(entry.path, "cache of another config or corpus", _size(entry.path)))
    return out


def remove(removals: list[Removal]) -> None:
    """Delete the planned directories (only called with --yes)."""
    for r in removals:
        shutil.rmtree(r.path)
