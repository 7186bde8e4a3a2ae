"""The build task of one recording: read, label, preprocess, write array then record.

Runs in a worker process; a failure becomes a 'failed' record naming the file and the reason,
so one bad recording never stops the build (DESIGN.md invariant 10).
"""

from __future__ import annotations

import io
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ictal.cache import layout
from ictal.cache.manifest import sha256_bytes
from ictal.config import Config
from ictal.corpus.discovery import RecordingRef
from ictal.io.atomic import atomic_write_bytes, atomic_write_json


@dataclass(frozen=True)
class Task:
    """One recording to build; everything a worker needs, picklable."""

    corpus_root: str
    ref: RecordingRef
    out_dir: str
    cfg: dict[str, Any]
    source: dict[str, Any]  # (size, mtime) of the EDF and annotation files: reuse key


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


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


def build_one(task: Task) -> dict[str, Any]:
    """Preprocess one recording and write its array and record; returns the record.

    Any failure becomes a 'failed' record naming the file and the reason: one bad
    recording never stops the build.
    """
    from ictal.corpus.annotations import AnnotationError, read_annotation, seizure_events
    from ictal.corpus.edf import RecordingError, read_eeg
    from ictal.signal.pipeline import preprocess

    cfg = Config.model_validate(task.cfg)
    ref = task.ref
    out = Path(task.out_dir)
    base = {
        "id": ref.id,
        "rel": ref.rel,
        "split": ref.split,
        "patient": ref.patient,
        "session": ref.session,
        "token": ref.token,
        "montage": ref.montage,
        "source": task.source,
    }
    sep = "" if task.corpus_root.endswith("/") else "/"
    edf_path = f"{task.corpus_root}{sep}{ref.rel}"
    label_path = f"{task.corpus_root}{sep}{ref.sidecar('.' + cfg.labels.source)}"
    policy = cfg.corpus.policy
    try:
        rec = read_eeg(edf_path, cfg.signal.channels, missing=policy.missing_channels)
        ann = read_annotation(label_path)
        events, label_repairs = seizure_events(
            ann,
            edf_duration=rec.duration_s,
            overlap_policy=policy.annotation_overlap,
            out_of_range_policy=policy.annotation_out_of_range,
            duration_tolerance_s=policy.duration_tolerance_s,
        )
        unknown = sorted({e.label for e in events} - set(cfg.labels.seizure_codes) - {"seiz"})
        if unknown:
            raise AnnotationError(label_path, f"labels outside labels.seizure_codes: {unknown}")
        pre = preprocess(rec.data, rec.fs, cfg.signal)
    except (RecordingError, AnnotationError) as exc:
        return _fail(out, base, str(exc))
    except ValueError as exc:
        return _fail(out, base, f"{edf_path}: {exc}")
    except Exception as exc:  # a bug or an unforeseen defect: record it, keep building
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return _fail(out, base, f"{edf_path}: unexpected error: {detail}")

    n = int(pre.data.shape[0])
    payload = _npy_bytes(pre.data)
    array_rel = f"{layout.ARRAYS}/{ref.id}.npy"
    atomic_write_bytes(out / array_rel, payload)
    seizures, labels = _intervals(events, pre.fs, n)
    record = {
        **base,
        "status": "done",
        "source_fs": rec.fs,
        "source_duration_s": rec.duration_s,
        "n_samples": n,
        "n_channels": int(pre.data.shape[1]),
        "array": array_rel,
        "bytes": len(payload),
        "sha256": sha256_bytes(payload),
        "seizures": seizures,
        "seizure_labels": labels,
        "stats": pre.stats,
        "repairs": {**rec.repairs, **label_repairs},
        "counts": pre.counts,
    }
    atomic_write_json(out / layout.RECORDS / f"{ref.id}.json", record)
    return record


def _fail(out: Path, base: dict[str, Any], reason: str) -> dict[str, Any]:
    record = {**base, "status": "failed", "reason": reason}
    atomic_write_json(out / layout.RECORDS / f"{base['id']}.json", record)
    return record
