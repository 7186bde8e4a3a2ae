"""The corpora of a config: one root (TUSZ or BIDS, found from the root when ``auto``) or a
mixture of named roots, listed once as one `Inventory`.

In a mixture every recording carries its corpus's name, and its id and patient are prefixed
with it (`tusz.aaaaaaaa_s001_t000`), so two corpora never share an id or a patient; a corpus
may send all its recordings to one split (`split: eval` holds a whole dataset out). The
inventory's digest covers every root's files, format and split rule: it is the source part
of the cache key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from ictal.corpus import bids, discovery
from ictal.corpus.discovery import Discovery, RecordingRef, open_fs
from ictal.io.redact import redact
from ictal.io.storage import is_local, storage_errors

FORMATS = ("tusz", "bids")
HINT = (
    f"a TUSZ-layout corpus ({discovery.LAYOUT_HINT}) or a BIDS dataset "
    f"({bids.DESCRIPTION} at the root)"
)
_FIX = "check the corpus root (the path or URL) and its credentials (environment)"


@dataclass(frozen=True)
class Source:
    """One corpus: its name ("" for a lone corpus), root (absolute path or URL), resolved
    format, where its recordings go (``auto`` keeps its splits) and its config setting."""

    name: str
    root: str
    format: str
    split: str = "auto"
    setting: str = "corpus.root"


def _absolute(root: str) -> str:
    return root if "://" in root else os.path.abspath(root)


def detect_format(root: str, wanted: str = "auto", setting: str = "corpus.root") -> str:
    """`wanted` unless ``auto``: then BIDS when the root holds dataset_description.json, TUSZ
    when it holds edf/, and a refusal naming the setting when it holds neither."""
    if wanted in FORMATS:
        return wanted
    fs, base = open_fs(root)
    if is_local(fs) and not fs.exists(base):
        raise discovery.CorpusMissing(
            f"the corpus {redact(root)} does not exist; point {setting} at {HINT}"
        )
    with storage_errors(root, "reading the corpus at", _FIX):
        if fs.exists(f"{base}/{bids.DESCRIPTION}"):
            return "bids"
        if fs.exists(f"{base}/edf"):
            return "tusz"
        fs.ls(base)  # a missing bucket or directory, a down host or no credentials: say so
    raise discovery.CorpusMissing(f"{redact(root)} ({setting}) is neither {HINT}")


def sources(corpus: Any, root: str | None = None) -> list[Source]:
    """The corpora the ``corpus`` config section names (or the one at `root`, a CORPUS
    argument), formats resolved."""
    if root is not None or not corpus.roots:
        where = _absolute(root or corpus.root)
        return [Source("", where, detect_format(where, corpus.format))]
    out = []
    for k, s in enumerate(corpus.roots):
        setting = f"corpus.roots[{k}] ({s.name})"
        where = _absolute(s.root)
        out.append(Source(s.name, where, detect_format(where, s.format, setting), s.split, setting))
    return out


def scan_source(source: Source, rule: Any) -> Discovery:
    """One corpus listed: its recordings (named and split as the source says) and problems."""
    if source.format == "bids":
        fs, base = open_fs(source.root)
        found = bids.scan(source.root, fs, base, rule)
    else:
        found = discovery.scan(source.root)
    if not source.name and source.split == "auto":
        return found
    refs = [
        dataclasses.replace(
            r,
            corpus=source.name,
            id=f"{source.name}.{r.id}" if source.name else r.id,
            patient=f"{source.name}.{r.patient}" if source.name else r.patient,
            split=r.split if source.split == "auto" else source.split,
        )
        for r in found.refs
    ]
    return dataclasses.replace(found, refs=refs)


@dataclass
class Inventory:
    """Every corpus of a config listed once: recordings, problems, signatures and digest."""

    parts: list[tuple[Source, Discovery]]

    @property
    def mixture(self) -> bool:
        return any(s.name for s, _ in self.parts)

    @property
    def refs(self) -> list[RecordingRef]:
        return [r for _, d in self.parts for r in d.refs]

    @property
    def problems(self) -> list[tuple[str, str]]:
        """(file, reason) of every file off its layout, after its corpus's name in a mixture."""
        return [
            (f"{s.name}: {rel}" if s.name else rel, why)
            for s, d in self.parts
            for rel, why in d.problems
        ]

    def _part(self, ref: RecordingRef) -> tuple[Source, Discovery]:
        for source, found in self.parts:
            if source.name == ref.corpus:
                return source, found
        raise KeyError(ref.corpus)

    def root_of(self, ref: RecordingRef) -> str:
        """The root (absolute path or URL) of the corpus a recording belongs to."""
        return self._part(ref)[0].root

    def signature(self, ref: RecordingRef) -> dict[str, list[Any] | None]:
        """(size, mtime) of a recording's input files (see `Discovery.signature`)."""
        return self._part(ref)[1].signature(ref)

    def digest(self, refs: list[RecordingRef]) -> str:
        """The source digest of the cache key: a lone corpus's own digest (a TUSZ corpus's is
        what it always was); a mixture's covers every corpus's name, format, split and files."""
        if not self.mixture:
            return self.parts[0][1].digest(refs)
        rows = []
        for source, found in self.parts:
            mine = [r for r in refs if r.corpus == source.name]
            rows.append([source.name, source.format, source.split, found.digest(mine)])
        return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()

    def splits(self, refs: list[RecordingRef], rule: Any) -> list[dict[str, Any]]:
        """Where each corpus's splits came from and its patients per split: the manifest
        keeps it, so a split can be checked and never changes unseen."""
        out = []
        for source, found in self.parts:
            mine = [r for r in refs if r.corpus == source.name]
            entry: dict[str, Any] = {"corpus": source.name, "format": source.format}
            if source.split != "auto":
                entry["from"] = f"{source.setting}: all {source.split}"
            else:
                entry["from"] = found.split_from
                if "split" in found.salt:
                    entry["rule"] = {"fractions": list(rule.fractions), "seed": rule.seed}
            patients: dict[str, set[str]] = {}
            for r in mine:
                patients.setdefault(r.split, set()).add(r.patient)
            entry["patients"] = {k: len(v) for k, v in sorted(patients.items())}
            out.append(entry)
        return out

    def corpora(self, refs: list[RecordingRef]) -> list[dict[str, Any]]:
        """Name, format, root (credentials masked) and planned recordings of each corpus."""
        return [
            {
                "name": s.name,
                "format": s.format,
                "root": redact(s.root),
                "split": s.split,
                "recordings": sum(r.corpus == s.name for r in refs),
            }
            for s, _ in self.parts
        ]


def inventory(corpus: Any, root: str | None = None) -> Inventory:
    """List every corpus of the ``corpus`` config section (or the one at `root`) once."""
    return Inventory([(s, scan_source(s, corpus.split)) for s in sources(corpus, root)])
