"""BIDS-EEG corpora in the SzCORE convention (CHB-MIT, Siena, SeizeIT2, TUSZ as distributed
by epilepsy2bids): the layout, participants.tsv and its splits, `*_events.tsv` annotations
and the `*_eeg.json` sidecar.

`sub-<s>/[ses-<x>/]eeg/sub-<s>[_ses-<x>]_task-<t>[_<key>-<v>...]_eeg.edf`; the patient is
the subject, the recording id is the file name without `_eeg.edf`. Every event type that
starts with `sz` is a seizure, `bckg` is background, anything else is neither (the census
lists it). Everything read here is untrusted: a file off the layout or a bad table is a
problem naming the file, never a crash and never a path outside the root.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from typing import Any

import fsspec

from ictal.corpus.annotations import (
    AnnotationError,
    AnnotationFile,
    Row,
    is_seizure_label,
    parse_number,
)
from ictal.corpus.discovery import (
    Discovery,
    RecordingRef,
    link_problems,
    listing,
    mtime,
    without_linked,
)
from ictal.errors import UsageError
from ictal.io.redact import redact
from ictal.io.storage import is_local, storage_errors
from ictal.io.untrusted import UnreadableInput, loads_json, regular_file

DESCRIPTION = "dataset_description.json"
PARTICIPANTS = "participants.tsv"
LAYOUT_HINT = "expected sub-<s>/[ses-<x>/]eeg/sub-<s>[_ses-<x>]_task-<t>[_run-<n>]_eeg.edf"
EVENT_COLUMNS = ("onset", "duration", "eventType")
# Split names in participants.tsv as datasets write them -> Ictal's split.
SPLIT_NAMES = {
    "train": "train", "training": "train",
    "dev": "dev", "val": "dev", "valid": "dev", "validation": "dev",
    "eval": "eval", "test": "eval", "evaluation": "eval",
}  # fmt: skip
_ENTITY = re.compile(r"([a-z]+)-([A-Za-z0-9]+)")
# Folders BIDS keeps beside the raw data: never recordings of the dataset.
_SKIPPED = ("derivatives/", "sourcedata/", "code/", "stimuli/", ".")
_INVENTORY = ("_eeg.edf", "_events.tsv", "_eeg.json")
_FIX = "check corpus.root (the path or URL) and its credentials (environment)"
MAX_TABLE_BYTES = 64 * 2**20  # far above any events or participants table: never read whole
MAX_SIDECAR_BYTES = 1 << 20  # an *_eeg.json sidecar is a few KB


def _entities(name: str) -> dict[str, str] | None:
    """`sub-01_ses-02_task-x_run-03_eeg.edf` -> {sub: 01, ses: 02, task: x, run: 03}."""
    if not name.endswith("_eeg.edf"):
        return None
    out: dict[str, str] = {}
    for part in name[: -len("_eeg.edf")].split("_"):
        m = _ENTITY.fullmatch(part)
        if m is None or m.group(1) in out:
            return None
        out[m.group(1)] = m.group(2)
    return out if "sub" in out and "task" in out else None


def _parse_path(rel: str) -> tuple[dict[str, str] | None, str]:
    """Entities of an EDF path on the layout, or (None, why not)."""
    parts = rel.split("/")
    if len(parts) not in (3, 4) or parts[-2] != "eeg":
        return None, f"path does not match the BIDS layout ({LAYOUT_HINT})"
    ents = _entities(parts[-1])
    if ents is None:
        return None, f"file name does not match the BIDS layout ({LAYOUT_HINT})"
    if parts[0] != f"sub-{ents['sub']}":
        return None, f"file subject sub-{ents['sub']} is not its folder {parts[0]}"
    folder_ses = parts[1] if len(parts) == 4 else None
    file_ses = f"ses-{ents['ses']}" if "ses" in ents else None
    if folder_ses != file_ses:
        return None, f"file session {file_ses or 'none'} is not its folder {folder_ses or 'none'}"
    return ents, ""


def hash_split(subject: str, fractions: tuple[float, float, float], seed: int) -> str:
    """A subject's split from a hash of (seed, subject): deterministic, and adding a subject
    never moves another one."""
    digest = hashlib.sha256(f"{seed}:{subject}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "dev" if u < fractions[0] + fractions[1] else "eval"


def read_participants(fs: fsspec.AbstractFileSystem, base: str, url: str) -> dict[str, str] | None:
    """participant_id -> split from participants.tsv's ``split`` column; None when the file
    or the column is absent. A table that cannot be read is a refusal naming it (a split
    must never change silently)."""
    path = f"{base}/{PARTICIPANTS}"
    where = f"{redact(url).rstrip('/')}/{PARTICIPANTS}"
    with storage_errors(url, "reading participants.tsv of", _FIX):
        if not fs.exists(path):
            return None
        try:
            _local_regular(fs, path, "participants table")
        except AnnotationError as exc:
            raise UsageError(f"{where}: {exc.reason}; fix or remove it") from None
        data = fs.cat_file(path, start=0, end=MAX_TABLE_BYTES + 1)
    if len(data) > MAX_TABLE_BYTES:
        raise UsageError(f"{where}: over {MAX_TABLE_BYTES >> 20} MB, not a participants table")
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter="\t")
        twice = _repeated(reader.fieldnames or [])
        if twice:
            raise UsageError(
                f"{where}: line 1: column {twice[:40]!r} appears twice (which one holds the "
                "split is ambiguous); keep one"
            )
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(
            f"{where}: not a UTF-8 tab-separated table ({exc}); fix or remove it"
        ) from None
    columns = set(rows[0]) if rows else set()
    if "split" not in columns:
        return None
    if "participant_id" not in columns:
        raise UsageError(f"{where}: a split column but no participant_id column; add it")
    out: dict[str, str] = {}
    for lineno, row in enumerate(rows, start=2):
        subject = (row.get("participant_id") or "").strip()
        value = (row.get("split") or "").strip()
        split = SPLIT_NAMES.get(value.lower())
        if split is None:
            raise UsageError(
                f"{where}: line {lineno}: split {value[:40]!r} of {subject[:40]!r} is not "
                f"one of {sorted(set(SPLIT_NAMES))}; fix the value (or drop the split column "
                "to split by corpus.split)"
            )
        if subject in out and out[subject] != split:
            raise UsageError(f"{where}: line {lineno}: {subject[:40]!r} listed twice")
        out[subject] = split
    return out


def scan(root: str, fs: fsspec.AbstractFileSystem, base: str, rule: Any) -> Discovery:
    """Every `*_eeg.edf` of the dataset at `root` with its split: participants.tsv's split
    column where it has one, else `rule` (corpus.split: fractions and seed by subject hash)."""
    found = listing(fs, base, root, under="")
    links = link_problems(fs, base, found)
    if PARTICIPANTS in links:
        raise UsageError(
            f"{redact(root).rstrip('/')}/{PARTICIPANTS}: {links[PARTICIPANTS]}; replace it with "
            "the dataset's own table (it gives the splits)"
        )
    files = {
        rel: (int(info.get("size") or 0), mtime(info))
        for rel, info in found.items()
        if rel.endswith(_INVENTORY) or rel == PARTICIPANTS
    }
    listed = read_participants(fs, base, root)
    refs: list[RecordingRef] = []
    problems: list[tuple[str, str]] = []
    for rel, info in sorted(found.items()):
        if not rel.lower().endswith(".edf") or rel.startswith(_SKIPPED):
            continue
        ents, why = _parse_path(rel)
        if ents is None:
            problems.append((rel, why))
            continue
        subject = f"sub-{ents['sub']}"
        split = (listed or {}).get(subject) or hash_split(subject, rule.fractions, rule.seed)
        refs.append(
            RecordingRef(
                rel=rel,
                split=split,
                patient=subject,
                session=f"ses-{ents['ses']}" if "ses" in ents else "",
                token=f"run-{ents['run']}" if "run" in ents else f"task-{ents['task']}",
                montage="bids",
                id=rel.rsplit("/", 1)[1][: -len("_eeg.edf")],
                size=int(info.get("size") or 0),
                format="bids",
            )
        )
    kept = {rel: why for rel, why in links.items() if not rel.startswith(_SKIPPED)}
    refs = without_linked(refs, kept, problems)
    unlisted = sorted({r.patient for r in refs} - set(listed or {}))
    salt: dict[str, Any] = {"format": "bids"}
    if listed is None or unlisted:
        salt["split"] = {"fractions": list(rule.fractions), "seed": rule.seed}
    split_from = PARTICIPANTS if listed is not None else "subject hash (corpus.split)"
    if listed is not None and unlisted:
        split_from += f", subject hash for {len(unlisted)} subjects it does not list"
    return Discovery(refs, problems, files, (PARTICIPANTS,), salt, split_from)


def parse_events(text: str, path: str) -> AnnotationFile:
    """A `*_events.tsv` as annotation rows on channel ``TERM`` labelled by event type.

    Needs onset, duration and eventType; recordingDuration, when present, must agree across
    rows and is checked against the EDF like a TUSZ header duration (NaN when absent).
    """
    try:
        reader = csv.DictReader(io.StringIO(text), delimiter="\t")
        fields = reader.fieldnames or []
        twice = _repeated(fields)
        if twice:
            raise AnnotationError(path, f"line 1: column {twice[:40]!r} appears twice; keep one")
        missing = [c for c in EVENT_COLUMNS if c not in fields]
        if missing:
            raise AnnotationError(path, f"line 1: missing column(s) {', '.join(missing)}")
        rows: list[Row] = []
        durations: set[float] = set()
        for lineno, rec in enumerate(reader, start=2):
            where = f"line {lineno}"
            kind = (rec.get("eventType") or "").strip()
            if not kind:
                raise AnnotationError(path, f"{where}: empty eventType")
            onset = parse_number(rec.get("onset") or "", path, where, "onset")
            length = parse_number(rec.get("duration") or "", path, where, "duration")
            total = (rec.get("recordingDuration") or "n/a").strip()
            if total != "n/a":
                durations.add(parse_number(total, path, where, "recordingDuration"))
            if length < 0 or (is_seizure_label("tsv", kind) and length <= 0):
                raise AnnotationError(path, f"{where}: {kind} has duration {length:g}")
            conf = (rec.get("confidence") or "n/a").strip()
            confidence = 1.0 if conf == "n/a" else parse_number(conf, path, where, "confidence")
            rows.append(Row("TERM", onset, onset + length, kind, confidence))
    except csv.Error as exc:
        raise AnnotationError(path, f"not a tab-separated table ({exc})") from None
    if len(durations) > 1:
        raise AnnotationError(path, f"rows disagree on recordingDuration: {sorted(durations)}")
    duration = durations.pop() if durations else math.nan
    return AnnotationFile(path=path, kind="tsv", bname="", duration=duration, rows=tuple(rows))


def read_events(path: str, fs: Any = None) -> AnnotationFile:
    """Read and parse one events table (a local path, an fsspec URL or a path inside `fs`)."""
    where = path
    if fs is None:
        fs, where = fsspec.core.url_to_fs(path)
    try:
        _local_regular(fs, where, "events table")
        with fs.open(where, "rb") as fh:
            data = fh.read(MAX_TABLE_BYTES + 1)
    except FileNotFoundError:
        raise AnnotationError(path, "missing events file") from None
    except IsADirectoryError:
        raise AnnotationError(path, "is a directory, not an events file") from None
    except AnnotationError as exc:
        raise AnnotationError(path, exc.reason) from None
    if len(data) > MAX_TABLE_BYTES:
        raise AnnotationError(path, f"over {MAX_TABLE_BYTES >> 20} MB, not an events table")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, f"not UTF-8 text (byte {exc.start})") from None
    return parse_events(text, path)


def _repeated(columns: list[str]) -> str | None:
    """The first column name a table header holds twice (csv keeps only the last one's
    values: a second ``split`` column would move subjects silently), or None."""
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            return name
        seen.add(name)
    return None


def _local_regular(fs: Any, where: str, what: str) -> None:
    """A local table or sidecar must be a regular file (a FIFO or a device would block or
    never end); object stores hold only objects."""
    if is_local(fs):
        try:
            regular_file(where, what)
        except UnreadableInput as exc:
            reason = str(exc).removeprefix(f"{what} {where} ")
            raise AnnotationError(where, reason) from None


def sidecar_of(edf_path: str) -> str | None:
    """The `*_eeg.json` sidecar beside a BIDS EDF (`*_eeg.edf`), or None for another name."""
    return edf_path[: -len(".edf")] + ".json" if edf_path.endswith("_eeg.edf") else None


def line_frequency(path: str, fs: Any = None) -> float | None:
    """PowerLineFrequency of an `*_eeg.json` sidecar (Hz); None when there is no sidecar or
    it says none (the field absent or "n/a"). A sidecar that is not a JSON object, or a value
    that is not a frequency, is an AnnotationError naming the file: never a silent fallback
    to another notch."""
    where = path
    if fs is None:
        fs, where = fsspec.core.url_to_fs(path)
    try:
        _local_regular(fs, where, "sidecar")
        with fs.open(where, "rb") as fh:
            data = fh.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        return None
    except AnnotationError as exc:
        raise AnnotationError(path, exc.reason) from None
    except OSError as exc:
        raise AnnotationError(path, f"cannot read the sidecar ({exc})") from None
    if len(data) > MAX_SIDECAR_BYTES:
        raise AnnotationError(path, f"over {MAX_SIDECAR_BYTES >> 20} MB, not a sidecar")
    try:
        doc = loads_json(data.decode("utf-8-sig"), "sidecar")
    except (UnicodeDecodeError, UnreadableInput):
        raise AnnotationError(path, "not a JSON sidecar") from None
    if not isinstance(doc, dict):
        raise AnnotationError(path, "not a JSON object")
    value = doc.get("PowerLineFrequency", "n/a")
    if value == "n/a":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnnotationError(path, f"PowerLineFrequency {str(value)[:40]!r} is not a number")
    if not (0 < value < 1000 and math.isfinite(value)):
        raise AnnotationError(path, f"PowerLineFrequency {value!r} is not a frequency in Hz")
    return float(value)
