"""Per-recording probability files of an evaluation: written once each (atomic), found
again on resume, streamed back one recording at a time for every scoring pass.

They live in ``<out>/probs/<id>.npy``; ``identity.json`` beside them refuses to mix the
probabilities of another checkpoint, cache or windowing into the same directory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ictal.cache.manifest import CacheView
from ictal.errors import UsageError
from ictal.events.operating_points import RecordingTrace
from ictal.events.postprocess import Event
from ictal.events.szcore import subject_of
from ictal.io.atomic import atomic_write_json, atomic_write_with
from ictal.io.untrusted import UnreadableInput, read_json
from ictal.models import inference
from ictal.runs.directory import EvalDir
from ictal.runs.heartbeat import LiveStatus
from ictal.ui import log, progress


@dataclass
class RecordingInfo:
    """What evaluation keeps of one recording between passes (never its trace)."""

    id: str
    duration_s: float
    export_duration_s: float
    n_out: int
    ref_events: list[Event]
    subject: str = ""  # the patient, for SzCORE's per-subject pooling


def _subject(row: dict[str, Any]) -> str:
    """The recording's patient: the cache row's (unique across a mixture's corpora), else
    taken from the recording id and named with its corpus (names may repeat across corpora)."""
    if row.get("patient"):
        return str(row["patient"])
    patient = subject_of(str(row["id"]).split(".")[-1])
    return f"{row['corpus']}.{patient}" if row.get("corpus") else patient


def recording_infos(
    view: CacheView, rows: list[dict[str, Any]], stride: int
) -> list[RecordingInfo]:
    fs = view.fs
    infos = []
    for r in rows:
        n = int(r["n_samples"])
        infos.append(
            RecordingInfo(
                id=r["id"],
                duration_s=n / fs,
                export_duration_s=float(r.get("source_duration_s") or n / fs),
                n_out=math.ceil(n / stride),
                ref_events=[(s / fs, e / fs) for s, e in r["seizures"]],
                subject=_subject(r),
            )
        )
    return infos


def probs_complete(path: Path, n_out: int) -> bool:
    """True when ``path`` is a float32 probability file of ``n_out`` steps (written atomically;
    anything but a regular file is not one, and is never opened: a FIFO would block)."""
    if not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    ok = arr.shape == (n_out,) and arr.dtype == np.float32
    del arr
    return ok


def check_identity(out: EvalDir, identity: dict[str, Any]) -> None:
    """Refuse to mix probabilities of different checkpoints, caches or windowing in one dir."""
    path = out.identity
    if path.exists():
        try:
            old = read_json(path, "evaluation identity", 1 << 20)
        except UnreadableInput as exc:
            raise UsageError(
                f"{exc}: pass another --out, or remove {out.path} to redo it"
            ) from None
        if not isinstance(old, dict):
            old = {}
        differ = [k for k in identity if k != "checkpoint" and old.get(k) != identity[k]]
        if differ:
            raise UsageError(
                f"{out.path} holds an evaluation of another checkpoint or cache (differs in "
                f"{', '.join(differ)}): pass another --out, or remove {out.path} to redo it"
            )
    else:
        atomic_write_json(path, identity)


def infer_split(
    view: CacheView,
    rows: list[dict[str, Any]],
    model: nn.Module,
    *,
    window: int,
    stride: int,
    hop: int,
    pad: int,
    out: EvalDir,
    batch_size: int,
    device: str,
    live: LiveStatus,
) -> tuple[int, int, list[tuple[str, str]]]:
    """Probabilities for every recording not yet done; returns (inferred, resumed, failed)."""
    inferred = resumed = 0
    failed: list[tuple[str, str]] = []
    total = len(rows)
    with progress("inference", total, unit="recordings") as tick:
        for k, r in enumerate(rows):
            n_out = math.ceil(int(r["n_samples"]) / stride)
            target = out.probs_of(r["id"])
            live.stage("inference", k, total)
            if probs_complete(target, n_out):
                resumed += 1
                tick.advance()
                continue
            try:
                array = np.load(view.array_path(r), mmap_mode="r", allow_pickle=False)
                probs = inference.infer_recording(
                    model, array, window, stride, hop, batch_size, device,
                    on_batch=live.touch, pad=pad,
                )  # fmt: skip
                del array
            except (OSError, ValueError) as exc:
                log.error(f"{r['id']}: inference failed: {exc}")
                failed.append((r["id"], str(exc)))
                tick.advance()
                continue
            atomic_write_with(target, lambda fh, p=probs: np.save(fh, p, allow_pickle=False))
            inferred += 1
            tick.advance(note=r["id"])
        live.stage("inference", total, total)
    return inferred, resumed, failed


def stream_traces(
    infos: list[RecordingInfo], out: EvalDir, fs_out: float, live: LiveStatus, stage: str
) -> Iterator[RecordingTrace]:
    """Stream the recordings' traces back from disk, one at a time."""
    with progress(stage, len(infos), unit="recordings") as tick:
        for k, info in enumerate(infos):
            live.stage(stage, k, len(infos))
            probs = np.load(out.probs_of(info.id), allow_pickle=False)
            yield RecordingTrace(info.id, probs, fs_out, info.ref_events, info.duration_s)
            tick.advance()
        live.stage(stage, len(infos), len(infos))
