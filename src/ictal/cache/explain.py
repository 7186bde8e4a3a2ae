"""Explain why the cache of a config is or is not there, and how each other cache differs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
    semantic = cfg.semantic()
    entries: list[EntryReport] = []
    for entry in layout.CacheRoot.of(cfg).entries(links=True):
        if entry.path.is_symlink():
            entries.append(EntryReport(entry.path, "symbolic link (not followed)"))
            continue
        made = ictal_made(entry)
        if made is None:
            entries.append(EntryReport(entry.path, "not an Ictal cache (left alone)"))
            continue
        if made == "plan" and not entry.building:
            entries.append(
                EntryReport(entry.path, "broken commit", ["no manifest.json (`ictal gc` lists it)"])
            )
            continue
        if entry.staging:
            running = is_locked(entry.path / layout.LOCK)
            state = "staging (running)" if running else "staging (`ictal stage` resumes it)"
            entries.append(EntryReport(entry.path, state, []))
            continue
        if entry.building:
            running = is_locked(entry.path / layout.LOCK)
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
            entries.append(rep)
            continue
        man = read_manifest(entry.path)
        assert man is not None  # ictal_made found it
        is_current = located.path is not None and entry.path == located.path
        diffs = [
            f"{k}: {a!r} (current {b!r})" for k, a, b in diff_semantic(man["semantic"], semantic)
        ]
        if man.get("preprocessing_version") != PREPROCESSING_VERSION:
            diffs.append(
                f"preprocessing_version: {man.get('preprocessing_version')!r} "
                f"(current {PREPROCESSING_VERSION!r})"
            )
        if located.source_digest and man["source"]["digest"] != located.source_digest:
            diffs.append("source: built from a different corpus inventory")
        entries.append(EntryReport(entry.path, "current" if is_current else "other", diffs))
    if located.committed:
        verdict = f"the cache for this config exists: {located.path}"
    elif located.key is None:
        verdict = "no cache matches this config, and the corpus is not reachable to build one"
    elif any(e.state == "broken commit" and e.path.name == layout.key16(located.key)
             for e in entries):  # fmt: skip
        broken = layout.CacheRoot.of(cfg).committed(located.key)
        verdict = (
            f"the directory of this config's cache, {broken}, has no manifest.json (a broken "
            "commit): `ictal gc --yes` removes it, then `ictal build` builds it again"
        )
    else:
        resumable = [
            e for e in entries
            if e.state.startswith("building") and e.path.name.startswith(layout.key16(located.key))
        ]  # fmt: skip
        verdict = f"no committed cache for this config (key {layout.key16(located.key)})"
        if resumable:
            verdict += f"; an interrupted build can be resumed: {resumable[-1].path.name}"
    if located.note:
        verdict += f" ({located.note})"
    return Explanation(located, verdict, entries)
