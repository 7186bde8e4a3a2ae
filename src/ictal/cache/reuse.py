"""Reuse of built recordings across caches: a recording whose EDF and annotation files are
unchanged (same size and mtime) under the same semantic config and preprocessing version has
the same bytes, so a new cache key (one corpus file edited, a file added) links its array
instead of preprocessing it again. The array is hard-linked (copied across file systems);
cache arrays are never modified in place, so sharing them is safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ictal.cache import layout
from ictal.cache.ledger import load_records
from ictal.cache.manifest import matches, read_manifest
from ictal.config import Config
from ictal.io.atomic import atomic_write_json, link_or_copy


def donor_records(cfg: Config, exclude: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Done records of committed caches with this semantic config and version, by id."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for entry in layout.list_entries(Path(cfg.cache.root)):
        if entry.building or entry.path == exclude:
            continue
        man = read_manifest(entry.path)
        if man is None or not matches(man, cfg):
            continue
        for rid, rec in load_records(entry.path).items():
            if rec.get("status") == "done" and rec.get("source"):
                out.setdefault(rid, (entry.path, rec))
    return out


def reuse_one(directory: Path, donor: Path, record: dict[str, Any]) -> None:
    """Link a donor's array into the building directory, then write its record (the ledger
    entry comes last, as for a built recording)."""
    link_or_copy(donor / record["array"], directory / record["array"])
    atomic_write_json(directory / layout.RECORDS / f"{record['id']}.json", record)
