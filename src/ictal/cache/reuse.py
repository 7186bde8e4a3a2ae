"""Reuse of built recordings across caches: a recording whose EDF and annotation files are
unchanged (same size and mtime) under the same semantic config and preprocessing version has
the same bytes, so a new cache key (one corpus file edited, a file added) links its array
instead of preprocessing it again. The array is hard-linked (copied across file systems);
cache arrays are never modified in place, so sharing them is safe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ictal.cache import layout
from ictal.cache.ledger import load_records
from ictal.cache.manifest import matches, read_manifest
from ictal.config import Config
from ictal.corpus.discovery import RecordingRef
from ictal.corpus.sources import Inventory
from ictal.io.atomic import atomic_write_json, link_or_copy

Donor = tuple[Path, dict[str, Any]]  # an earlier cache's directory and its record


def donor_records(cfg: Config, exclude: Path) -> dict[str, Donor]:
    """Done records of committed caches with this semantic config and version, by id."""
    out: dict[str, Donor] = {}
    for entry in layout.CacheRoot.of(cfg).entries():
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


@dataclass
class Reuse:
    """What earlier caches can give a build: recordings to link now (unchanged files), what
    is left to build, and for those whose files differ only in mtime the donor a worker links
    if the files' sha256 still match (cache directory as text, record)."""

    linked: list[tuple[RecordingRef, Path, dict[str, Any]]] = field(default_factory=list)
    left: list[RecordingRef] = field(default_factory=list)
    by_content: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


def plan_reuse(cfg: Config, exclude: Path, todo: list[RecordingRef], found: Inventory) -> Reuse:
    """Sort ``todo`` by what the committed caches of this config (but ``exclude``) hold: the
    same recording with the same (size, mtime) is linked; the same sizes wait for a hash."""
    donors = donor_records(cfg, exclude)
    by_rel: dict[str, list[Donor]] = {}
    for donor in donors.values():
        by_rel.setdefault(donor[1]["rel"], []).append(donor)
    out = Reuse()
    for ref in todo:
        sig = found.signature(ref)
        same = donors.get(ref.id)
        if same is not None and not _same_recording(same[1], ref):
            same = None
        if same is not None and same[1]["source"] == sig:
            out.linked.append((ref, *same))
            continue
        out.left.append(ref)
        # The same recording with new timestamps; or the same file under another name (a
        # corpus built alone, now in a mixture, or moved to another split): linked only if
        # its sha256 are the donor's.
        candidates = [same] if same is not None else by_rel.get(ref.rel, [])
        for donor, rec in candidates:
            if rec.get("source_sha256") and _same_sizes(rec["source"], sig):
                out.by_content[ref.id] = (str(donor), rec)
                break
    return out


def _same_recording(rec: dict[str, Any], ref: RecordingRef) -> bool:
    """An earlier cache's record is of this recording, placed the same way: same file, split
    and corpus (a changed participants.tsv moves a recording; its record must not keep the
    old split)."""
    return (
        rec["rel"] == ref.rel
        and rec.get("split") == ref.split
        and rec.get("corpus", "") == ref.corpus
        and rec.get("patient") == ref.patient
    )


def _same_sizes(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same files present with the same sizes (signatures are (size, mtime) per file)."""
    if set(a) != set(b):
        return False
    return all((a[k] is None) == (b[k] is None) and (a[k] is None or a[k][0] == b[k][0]) for k in a)
