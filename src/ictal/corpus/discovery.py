"""Find the recordings of a TUSZ-layout corpus on a local path or any fsspec URL, and the
types every corpus format shares (`RecordingRef`, `Discovery`).

One `fs.find` over `<root>/edf` lists everything (fast for thousands of files, one request
per page on object stores); the layout regex gives split, patient, session and montage.
BIDS corpora are found by `corpus/bids.py`, both through `corpus/sources.py`.

Symbolic links in a local corpus (``link_problems``): a link to a file inside the corpus is
read like the file; a link leading out of the corpus makes its recording unusable (one line,
nothing read through it), and a link to a directory is not followed (one line).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import fsspec

from ictal.errors import UsageError
from ictal.io.paths import is_inside
from ictal.io.storage import is_local, open_url, storage_errors

LAYOUT = re.compile(
    r"edf/(train|dev|eval)/([a-z]{8})/(s\d{3}_\d{4}_\d{2}_\d{2})/"
    r"(01_tcp_ar|02_tcp_le|03_tcp_ar_a)/\2_(s\d{3})_(t\d{3})\.edf"
)
SIDECARS = (".csv_bi", ".csv")
_INVENTORY_SUFFIXES = (".edf", *SIDECARS)


@dataclass(frozen=True)
class RecordingRef:
    """One EDF file of the corpus; `id` is the file stem `<patient>_<sNNN>_<tNNN>` (TUSZ
    bname), unique across the corpus because session numbers are unique per patient."""

    rel: str
    split: str
    patient: str
    session: str  # session folder, e.g. s001_2003_01_01
    token: str
    montage: str
    id: str
    size: int = field(default=-1, compare=False)
    format: str = "tusz"  # tusz | bids: which files come with the EDF
    corpus: str = ""  # the corpus's name in a mixture ("" for a single corpus)

    def sidecar(self, suffix: str) -> str:
        """Relative path of a file next to a TUSZ EDF (`.csv_bi` or `.csv`)."""
        return self.rel[: -len(".edf")] + suffix

    def files(self) -> dict[str, str]:
        """Every input file of the recording by kind (the EDF first), relative to its root:
        TUSZ's two annotation files, or BIDS's events table and EEG sidecar."""
        if self.format == "bids":
            stem = self.rel[: -len("_eeg.edf")]
            return {"edf": self.rel, "tsv": stem + "_events.tsv", "json": stem + "_eeg.json"}
        return {"edf": self.rel, **{s.lstrip("."): self.sidecar(s) for s in SIDECARS}}

    def labels(self, source: str) -> tuple[str, str]:
        """(kind, relative path) of the annotation file that gives the labels: TUSZ's
        `labels.source` (csv_bi or csv), or a BIDS recording's events table."""
        if self.format == "bids":
            return "tsv", self.files()["tsv"]
        return source, self.sidecar("." + source)

    @property
    def shown(self) -> str:
        """The EDF as a person finds it: its path, after the corpus's name in a mixture."""
        return f"{self.corpus}: {self.rel}" if self.corpus else self.rel


@dataclass
class Discovery:
    """Recordings that match the layout, EDF files that do not (with the reason), and the
    (size, mtime) of every EDF and annotation file from the same single listing."""

    refs: list[RecordingRef]
    problems: list[tuple[str, str]]  # (rel path, reason), sorted
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # rel -> (size, mtime)
    # Dataset-level files every recording depends on (BIDS: participants.tsv, which gives the
    # splits) and what else decides the recordings' fields (the split rule): both enter the
    # digest. TUSZ has neither, so its digest is what it always was.
    shared: tuple[str, ...] = ()
    salt: dict[str, Any] = field(default_factory=dict)
    split_from: str = "layout"  # where the splits came from (the manifest records it)

    def signature(self, ref: RecordingRef) -> dict[str, list[Any] | None]:
        """(size, mtime) of a recording's EDF and annotation files (None when absent): equal
        signatures mean the same inputs, so a built recording can be reused."""
        out: dict[str, list[Any] | None] = {}
        for kind, rel in ref.files().items():
            sig = self.files.get(rel)
            out[kind] = None if sig is None else list(sig)
        return out

    def digest(self, refs: list[RecordingRef] | None = None) -> str:
        """sha256 over sorted (rel, size, mtime) of the inventory files (of `refs` and their
        sidecars when given, and the shared files); part of the cache key."""
        files = self.files
        if refs is not None:
            keep = {rel for r in refs for rel in r.files().values()} | set(self.shared)
            files = {rel: sig for rel, sig in files.items() if rel in keep}
        rows: list[Any] = [[rel, size, when] for rel, (size, when) in sorted(files.items())]
        if self.salt:
            rows = [self.salt, rows]
        return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


LAYOUT_HINT = "expected edf/{train,dev,eval}/<patient>/<session>/<montage>/*.edf"
_UNREACHABLE_FIX = "check corpus.root (the path or URL) and its credentials (environment)"


def open_fs(root: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """File system and root path inside it (no trailing slash) for a path or URL."""
    return open_url(root, "corpus.root")


class CorpusMissing(UsageError):
    """A local corpus root that does not exist (exit 2; 'unreachable' to cache lookups)."""


def _missing_local(fs: fsspec.AbstractFileSystem, base: str, root: str) -> None:
    """A local corpus root that does not exist is a config error naming the setting."""
    if is_local(fs) and not fs.exists(base):
        raise CorpusMissing(
            f"the corpus {root} does not exist; point corpus.root (or the CORPUS argument) at "
            f"a TUSZ-layout corpus ({LAYOUT_HINT})"
        )


def _rel(path: str, root: str) -> str:
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")


def listing(
    fs: fsspec.AbstractFileSystem, root: str, url: str, under: str = "edf"
) -> dict[str, dict[str, Any]]:
    """rel path -> fsspec info of every file under root/under (one find call; the whole root
    when `under` is empty). A storage error (no bucket, host down, no credentials) is a
    refusal saying it, never an empty corpus."""
    base = f"{root}/{under}" if under else root
    _missing_local(fs, root, url)
    with storage_errors(url, "listing the corpus at", _UNREACHABLE_FIX):
        if not fs.exists(base):
            fs.ls(root)  # raises what is really wrong when the root itself cannot be read
            return {}
        found = fs.find(base, detail=True)
    return {_rel(p, root): info for p, info in found.items() if info.get("type") != "directory"}


LINK_OUT = "a symbolic link leading out of the corpus: nothing is read through it"
LINK_DIR = "a symbolic link to a directory: not followed (link the files, or copy them in)"


def link_problems(
    fs: fsspec.AbstractFileSystem, root: str, found: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """rel -> reason for the listed entries of a local corpus that are symbolic links Ictal
    does not read through: those leading out of ``root`` (resolved) and those to a
    directory. A link to a file inside the corpus is fine (absent here)."""
    if not is_local(fs):
        return {}
    out: dict[str, str] = {}
    base = os.path.realpath(root)
    for rel, info in found.items():
        if not info.get("islink"):
            continue
        path = os.path.join(root, rel)
        if os.path.isdir(path):
            out[rel] = LINK_DIR
        elif not is_inside(path, base):
            out[rel] = LINK_OUT
    return out


def without_linked(
    refs: list[RecordingRef], links: dict[str, str], problems: list[tuple[str, str]]
) -> list[RecordingRef]:
    """``refs`` less the recordings any of whose files is a refused link, each added to
    ``problems`` with the file and the reason; links to directories are problems too."""
    if not links:
        return refs
    kept = []
    for ref in refs:
        bad = [rel for rel in ref.files().values() if rel in links]
        if bad:
            why = links[bad[0]]
            named = bad[0].rsplit("/", 1)[-1]
            problems.append((ref.rel, why if bad[0] == ref.rel else f"{named}: {why}"))
        else:
            kept.append(ref)
    problems.extend((rel, why) for rel, why in links.items() if why == LINK_DIR)
    problems.sort()
    return kept


def scan(root: str) -> Discovery:
    """Parse every `.edf` under `<root>/edf` (a TUSZ-layout corpus); files off the layout and
    duplicate ids are returned as problems rather than raised, so one stray file never stops
    a census."""
    fs, base = open_fs(root)
    refs: list[RecordingRef] = []
    problems: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    found = listing(fs, base, root)
    files = {
        rel: (int(info.get("size") or 0), mtime(info))
        for rel, info in found.items()
        if rel.endswith(_INVENTORY_SUFFIXES)
    }
    for rel, info in sorted(found.items()):
        if not rel.lower().endswith(".edf"):
            continue
        m = LAYOUT.fullmatch(rel)
        if m is None:
            problems.append((rel, "path does not match the TUSZ layout"))
            continue
        split, patient, session, montage, sess_no, token = m.groups()
        if not session.startswith(sess_no):
            problems.append((rel, f"file session {sess_no} is not its folder {session}"))
            continue
        rid = f"{patient}_{sess_no}_{token}"
        if rid in seen:
            problems.append((rel, f"duplicate recording id {rid} (also {seen[rid]})"))
            continue
        seen[rid] = rel
        refs.append(
            RecordingRef(
                rel=rel,
                split=split,
                patient=patient,
                session=session,
                token=token,
                montage=montage,
                id=rid,
                size=int(info.get("size") or 0),
            )
        )
    refs = without_linked(refs, link_problems(fs, base, found), problems)
    return Discovery(refs=refs, problems=problems, files=files)


def mtime(info: dict[str, Any]) -> str:
    """Modification time as a string, whatever the backend calls it (or '' if none)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is not None:
            return str(value)
    return ""
