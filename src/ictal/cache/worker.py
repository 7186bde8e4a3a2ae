"""The build task of one recording: read, label, preprocess, write array then record.

Runs in a worker process; a failure becomes a 'failed' record naming the file and the reason,
so one bad recording never stops the build (docs/design.md, invariant 10). Every record keeps the
sha256 of its source files, so a recording whose files only got new timestamps (a copied or
restored corpus) is linked from an earlier cache instead of being preprocessed again.
Arrays and records are fsynced before their rename; their directories are fsynced once, by
the writer before the manifest (a rename lost to a power cut only means that recording is
found missing by the ledger and built again).
"""

from __future__ import annotations

import hashlib
import io
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ictal.cache import layout
from ictal.config import Config
from ictal.corpus.discovery import RecordingRef
from ictal.io.atomic import atomic_write_json, atomic_write_with, link_or_copy
from ictal.io.digest import url_sha256
from ictal.parallel.executors import require_visible

if TYPE_CHECKING:
    from ictal.corpus.edf import EegRecording
    from ictal.signal.pipeline import Preprocessed


# What build_one imports when it first runs: a spawned worker imports it while it starts.
WORKER_IMPORTS = (
    "ictal.corpus.annotations",
    "ictal.corpus.bids",
    "ictal.corpus.edf",
    "ictal.corpus.labels",
    "ictal.signal.pipeline",
)


@dataclass(frozen=True)
class Task:
    """One recording to build; everything a worker needs, picklable."""

    corpus_root: str
    ref: RecordingRef
    out_dir: str
    cfg: dict[str, Any]
    source: dict[str, Any]  # (size, mtime) of the EDF and annotation files: reuse key
    # An earlier cache's record of this recording whose files differ only in mtime: reused
    # when the files' sha256 still match it. (cache directory, record)
    donor: tuple[str, dict[str, Any]] | None = None


def _npy_parts(array: np.ndarray) -> tuple[bytes, memoryview]:
    """The ``.npy`` file of a C-contiguous array as its header and a view of the data: written
    and hashed without a copy of the samples (the same bytes ``np.save`` writes)."""
    buf = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue(), memoryview(np.ascontiguousarray(array)).cast("B")


def _intervals(events: list[Any], fs: float, n: int) -> tuple[list[list[int]], list[str]]:
    """Seizure events in seconds -> half-open sample intervals at the cache rate, and labels."""
    spans, labels = [], []
    for ev in events:
        start = min(max(round(ev.start * fs), 0), n)
        stop = min(max(round(ev.stop * fs), 0), n)
        if stop > start:
            spans.append([start, stop])
            labels.append(ev.label)
    return spans, labels


@dataclass(frozen=True)
class _Inputs:
    """Where one recording's files are: the corpus prefix, the EDF, and its labels."""

    prefix: str
    edf: str
    label_kind: str
    labels: str

    @classmethod
    def of(cls, task: Task, cfg: Config) -> _Inputs:
        sep = "" if task.corpus_root.endswith("/") else "/"
        prefix = f"{task.corpus_root}{sep}"
        label_kind, label_rel = task.ref.labels(cfg.labels.source)
        return cls(prefix, f"{prefix}{task.ref.rel}", label_kind, f"{prefix}{label_rel}")


@dataclass(frozen=True)
class _Prepared:
    """A recording read, labelled and preprocessed, ready to be written."""

    rec: EegRecording
    pre: Preprocessed
    events: list[Any]
    label_repairs: dict[str, int]
    mains: float | None


def build_one(task: Task) -> dict[str, Any]:
    """Preprocess one recording and write its array and record; returns the record.

    Any failure becomes a 'failed' record naming the file and the reason: one bad
    recording never stops the build.
    """
    from ictal.corpus.annotations import AnnotationError
    from ictal.corpus.edf import RecordingError

    cfg = Config.model_validate(task.cfg)
    out = Path(task.out_dir)
    require_visible(out / layout.RECORDS, "cache.root")  # never a node's own disk instead
    if "://" not in task.corpus_root:
        require_visible(task.corpus_root, "corpus.root")
    base = _base_record(task)
    where = _Inputs.of(task, cfg)
    known: dict[str, str | None] | None = None  # source hashes, once taken
    if task.donor is not None:
        reused, known = _reuse_by_content(task, out, where.prefix, base)
        if reused is not None:
            return reused
    try:
        made = _prepare(task.ref, cfg, where)
    except (RecordingError, AnnotationError) as exc:
        return _fail(out, base, str(exc))
    except ValueError as exc:
        return _fail(out, base, f"{where.edf}: {exc}")
    except Exception as exc:  # a bug or an unforeseen defect: record it, keep building
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return _fail(out, base, f"{where.edf}: unexpected error: {detail}")
    try:
        hashes = known or source_sha256(
            where.prefix, task.ref, task.source, edf_sha256=made.rec.sha256
        )
    except OSError as exc:
        return _fail(out, base, f"{where.edf}: cannot read it again to hash it: {exc}")
    return _write_done(out, base, made, hashes)


def _base_record(task: Task) -> dict[str, Any]:
    """The fields every record of this recording carries, done or failed."""
    ref = task.ref
    return {
        "id": ref.id,
        "rel": ref.rel,
        "split": ref.split,
        "patient": ref.patient,
        "session": ref.session,
        "token": ref.token,
        "montage": ref.montage,
        "source": task.source,
        **({"corpus": ref.corpus} if ref.corpus else {}),
    }


def _prepare(ref: RecordingRef, cfg: Config, where: _Inputs) -> _Prepared:
    """Read the EDF and its labels, check the seizure vocabulary, and preprocess (notch at
    the sidecar's mains frequency for BIDS); raises on anything that makes it unusable."""
    from ictal.corpus.annotations import AnnotationError, seizure_events
    from ictal.corpus.bids import line_frequency
    from ictal.corpus.edf import read_eeg
    from ictal.corpus.labels import read_labels
    from ictal.signal.pipeline import at_line_frequency, preprocess

    policy = cfg.corpus.policy
    rec = read_eeg(
        where.edf,
        cfg.signal.channels,
        missing=policy.missing_channels,
        montage=cfg.signal.montage,
    )
    ann = read_labels(where.labels, where.label_kind)
    events, label_repairs = seizure_events(
        ann,
        edf_duration=rec.duration_s,
        overlap_policy=policy.annotation_overlap,
        out_of_range_policy=policy.annotation_out_of_range,
        duration_tolerance_s=policy.duration_tolerance_s,
    )
    unknown = sorted({e.label for e in events} - set(cfg.labels.seizure_codes) - {"seiz"})
    if unknown and where.label_kind != "tsv":  # SzCORE: every sz* type is a seizure
        raise AnnotationError(where.labels, f"labels outside labels.seizure_codes: {unknown}")
    mains = line_frequency(where.prefix + ref.files()["json"]) if ref.format == "bids" else None
    pre = preprocess(rec.data, rec.fs, at_line_frequency(cfg.signal, mains), pairs=rec.pairs)
    return _Prepared(rec, pre, events, label_repairs, mains)


def _write_done(
    out: Path, base: dict[str, Any], made: _Prepared, hashes: dict[str, str | None]
) -> dict[str, Any]:
    """Write the array, then the record that says it is complete; returns the record."""
    rec, pre = made.rec, made.pre
    n = int(pre.data.shape[0])
    head, samples = _npy_parts(pre.data)
    array_rel = f"{layout.ARRAYS}/{base['id']}.npy"
    atomic_write_with(out / array_rel, lambda fh: (fh.write(head), fh.write(samples)),
                      sync_dir=False)  # fmt: skip
    digest = hashlib.sha256(head)
    digest.update(samples)
    seizures, labels = _intervals(made.events, pre.fs, n)
    record = {
        **base,
        "status": "done",
        "source_fs": rec.fs,
        "source_duration_s": rec.duration_s,
        "n_samples": n,
        "n_channels": int(pre.data.shape[1]),
        "array": array_rel,
        "bytes": len(head) + samples.nbytes,
        "sha256": digest.hexdigest(),
        "seizures": seizures,
        "seizure_labels": labels,
        "stats": pre.stats,
        "repairs": {**rec.repairs, **made.label_repairs},
        "counts": pre.counts,
        "source_sha256": hashes,
        **({"line_frequency_hz": made.mains} if made.mains is not None else {}),
    }
    atomic_write_json(out / layout.RECORDS / f"{base['id']}.json", record, sync_dir=False)
    return record


def source_sha256(
    prefix: str, ref: RecordingRef, source: dict[str, Any], *, edf_sha256: str | None = None
) -> dict[str, str | None]:
    """sha256 of each source file the signature lists (``None`` where it has none); the EDF
    digest is reused when the reader already took it."""
    out: dict[str, str | None] = {}
    files = ref.files()
    for name in sorted(source):
        if source[name] is None:
            out[name] = None
        elif name == "edf":
            out[name] = edf_sha256 or url_sha256(prefix + ref.rel)
        else:
            out[name] = url_sha256(prefix + files[name])
    return out


REUSED = "_reused_by_content"  # marks a returned record (never written) as linked, not built


def _reuse_by_content(
    task: Task, out: Path, prefix: str, base: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, str | None] | None]:
    """(the donor's record with this build's names, split and file signature, its array
    linked under this build's id; the source hashes) when the files' sha256 are the donor's;
    (None, hashes or None) means build it, reusing the hashes already taken."""
    assert task.donor is not None
    donor_dir, donor = task.donor
    try:
        hashes = source_sha256(prefix, task.ref, task.source)
    except OSError:
        return None, None
    if hashes != donor.get("source_sha256"):
        return None, hashes
    array_rel = f"{layout.ARRAYS}/{task.ref.id}.npy"
    try:
        link_or_copy(Path(donor_dir) / donor["array"], out / array_rel)
    except OSError:
        return None, hashes
    kept = {k: v for k, v in donor.items() if k not in base and k != "corpus"}
    record = {**kept, **base, "array": array_rel}
    atomic_write_json(out / layout.RECORDS / f"{task.ref.id}.json", record)
    return {**record, REUSED: True}, hashes


def _fail(out: Path, base: dict[str, Any], reason: str) -> dict[str, Any]:
    record = {**base, "status": "failed", "reason": reason}
    atomic_write_json(out / layout.RECORDS / f"{base['id']}.json", record, sync_dir=False)
    return record
