"""Explain why the cache of a config is or is not there, and how each other cache differs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ictal.cache import layout
from ictal.cache.locate import Located, ictal_made, locate
from ictal.cache.manifest import read_json, read_manifest
from ictal.config import PREPROCESSING_VERSION, Config, diff_semantic
from ictal.io.lock import is_locked


@dataclass
class EntryReport:
    """One directory under cache.root and how it relates to the current config."""

    path: Path
    state: str  # current | other | building (resumable) | building (running) | broken
    differences: list[str] = field(default_factory=list)
    progress: str = ""


@dataclass
class Explanation:
    """The verdict for the current config and every directory under cache.root."""

    located: Located
    verdict: str
    entries: list[EntryReport]


def _building_progress(path: Path) -> str:
    done = len(list((path / layout.RECORDS).glob("*.json")))
    try:
        planned = len(read_json(path / layout.PLAN)["recordings"])
    except (ValueError, KeyError):
        return f"{done} recordings recorded"
    return f"{done}/{planned} recordings recorded"


def explain(cfg: Config) -> Explanation:
    """Compare the current config with every cache and build under cache.root."""
    located = locate(cfg)
    root, semantic = layout.CacheRoot.of(cfg), cfg.semantic()
    entries = [_report(entry, located, semantic) for entry in root.entries(links=True)]
    verdict = _verdict(root, located, entries)
    if located.note:
        verdict += f" ({located.note})"
    return Explanation(located, verdict, entries)


def _report(entry: layout.Entry, located: Located, semantic: dict[str, Any]) -> EntryReport:
    """What one directory under cache.root is, and how it differs from the current config."""
    if entry.path.is_symlink():
        return EntryReport(entry.path, "symbolic link (not followed)")
    made = ictal_made(entry)
    if made is None:
        return EntryReport(entry.path, "not an Ictal cache (left alone)")
    if made == "plan" and not entry.building:
        return EntryReport(entry.path, "broken commit", ["no manifest.json (`ictal gc` lists it)"])
    running = entry.building and is_locked(entry.path / layout.LOCK)
    if entry.staging:
        state = "staging (running)" if running else "staging (`ictal stage` resumes it)"
        return EntryReport(entry.path, state, [])
    if entry.building:
        state = "building (running)" if running else "building (resumable)"
        rep = EntryReport(entry.path, state, progress=_building_progress(entry.path))
        try:
            plan = read_json(entry.path / layout.PLAN)
            rep.differences = [
                f"{k}: {a!r} (current {b!r})"
                for k, a, b in diff_semantic(plan["semantic"], semantic)
            ]
            if located.source_digest and plan.get("source_digest") != located.source_digest:
                rep.differences.append("source: built from a different corpus inventory")
        except (ValueError, KeyError):
            rep.differences = ["no readable plan.json"]
        return rep
    man = read_manifest(entry.path)
    assert man is not None  # ictal_made found it
    is_current = located.path is not None and entry.path == located.path
    diffs = [f"{k}: {a!r} (current {b!r})" for k, a, b in diff_semantic(man["semantic"], semantic)]
    if man.get("preprocessing_version") != PREPROCESSING_VERSION:
        diffs.append(
            f"preprocessing_version: {man.get('preprocessing_version')!r} "
            f"(current {PREPROCESSING_VERSION!r})"
        )
    if located.source_digest and man["source"]["digest"] != located.source_digest:
        diffs.append("source: built from a different corpus inventory")
    return EntryReport(entry.path, "current" if is_current else "other", diffs)


def _verdict(root: layout.CacheRoot, located: Located, entries: list[EntryReport]) -> str:
    """One sentence on the current config's cache: there, broken, resumable or missing."""
    if located.committed:
        return f"the cache for this config exists: {located.path}"
    if located.key is None:
        return "no cache matches this config, and the corpus is not reachable to build one"
    k16 = layout.key16(located.key)
    if any(e.state == "broken commit" and e.path.name == k16 for e in entries):
        return (
            f"the directory of this config's cache, {root.committed(located.key)}, has no "
            "manifest.json (a broken commit): `ictal gc --yes` removes it, then `ictal build` "
            "builds it again"
        )
    resumable = [
        e for e in entries if e.state.startswith("building") and e.path.name.startswith(k16)
    ]
    verdict = f"no committed cache for this config (key {k16})"
    if resumable:
        verdict += f"; an interrupted build can be resumed: {resumable[-1].path.name}"
    return verdict
