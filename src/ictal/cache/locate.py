"""Find the cache of a config under `cache.root`: by exact key when the corpus is reachable,
by semantic config (and version) when only the cache is (a staged copy on a cloud box).
A cache is a real directory with a regular manifest.json: symbolic links are not followed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal.cache import layout
from ictal.cache.manifest import matches, read_json, read_manifest
from ictal.cache.plan import plan
from ictal.config import Config, cache_key
from ictal.corpus.discovery import CorpusMissing
from ictal.errors import PreflightError
from ictal.io.paths import plain_dir, plain_file


@dataclass
class Located:
    """Where the cache of a config is (or would be), and how we know."""

    key: str | None  # None when the corpus is unreachable and no cache matches
    path: Path | None
    committed: bool
    corpus_reachable: bool
    source_digest: str | None
    n_source: int = 0
    note: str = ""


def corpus_digest(cfg: Config) -> tuple[str, int] | None:
    """Inventory digest of the corpus and its recording count, or None when unreachable."""
    try:
        planned = plan(cfg)
    except (PreflightError, CorpusMissing, OSError):
        return None
    return planned.digest, len(planned.refs)


def locate(cfg: Config, *, use_corpus: bool = True) -> Located:
    """The committed cache for this config, if any."""
    root = layout.CacheRoot.of(cfg)
    found = corpus_digest(cfg) if use_corpus else None
    if found is not None:
        digest, n = found
        key = cache_key(cfg, digest)
        path = root.committed(key)
        committed = plain_dir(path) and plain_file(path / layout.MANIFEST)
        return Located(key, path, committed, True, digest, n)
    found_caches = []
    for entry in root.entries():
        if entry.building:
            continue
        man = _own_manifest(entry.path)
        if man is not None and matches(man, cfg):
            found_caches.append((entry.path, man))
    note = f"corpus {cfg.corpus.root} not reachable: completeness against it not checked"
    if len(found_caches) == 1:
        path, man = found_caches[0]
        return Located(man["key"], path, True, False, man["source"]["digest"], note=note)
    if len(found_caches) > 1:
        names = ", ".join(p.name for p, _ in found_caches)
        raise PreflightError(
            f"{len(found_caches)} caches under {root.path} match this config ({names}) and the "
            f"corpus {cfg.corpus.root} is not reachable to tell which is current",
            "make corpus.root reachable, or remove the old ones with `ictal gc`",
        )
    return Located(None, None, False, False, None, note=note)


def same_semantic_other_source(cfg: Config, located: Located) -> list[Path]:
    """Committed caches with this config but built from a different corpus inventory."""
    out = []
    for entry in layout.CacheRoot.of(cfg).entries():
        if entry.building or (located.path is not None and entry.path == located.path):
            continue
        man = _own_manifest(entry.path)
        if man is not None and matches(man, cfg):
            out.append(entry.path)
    return out


def _marker_key(path: Path, name: str) -> str | None:
    """The key an Ictal marker file (plan.json, stage.json) in ``path`` names, or None."""
    try:
        doc = read_json(path / name)
    except ValueError:
        return None
    key = doc.get("key") if isinstance(doc, dict) else None
    return key if isinstance(key, str) else None


def _own_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a cache directory when it is a real directory holding a regular
    manifest.json; a link (to the directory or the manifest) is never read through."""
    if not plain_dir(path) or not plain_file(path / layout.MANIFEST):
        return None
    return read_manifest(path)


def ictal_made(entry: layout.Entry) -> str | None:
    """What Ictal wrote that proves it made this directory ('manifest', 'plan', 'stage'),
    or None when nothing there is Ictal's. An identity file that is a symbolic link proves
    nothing (it could name any file): such a directory is never Ictal's to delete."""
    if not entry.building:
        man = _own_manifest(entry.path)
        if man is not None and str(man.get("key", "")).startswith(entry.key16):
            return "manifest"
    marker = layout.STAGE_MARKER if entry.staging else layout.PLAN
    if not plain_dir(entry.path) or not plain_file(entry.path / marker):
        return None
    key = _marker_key(entry.path, marker)
    if key is not None and key.startswith(entry.key16):
        return "stage" if entry.staging else "plan"
    return None
