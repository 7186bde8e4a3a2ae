"""The per-recording task of ``ictal detect``, run in a worker: read the EDF, preprocess it as
the checkpoint's cache was, infer over the whole recording, post-process, and append one
record to this worker's segment of the record log before saying it is done.

The same task runs in local worker processes, in the caller (serial) or on a cluster; a
failure of one recording becomes an error record and never stops the others.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal.config import SignalConfig
from ictal.detect.inputs import unusable
from ictal.detect.outputs import PROBS
from ictal.detect.records import LOG_DIR, encode
from ictal.io.framelog import SegmentWriter
from ictal.io.redact import note_url, redact
from ictal.models.trust import ModelTrust
from ictal.parallel.ahead import read_ahead
from ictal.parallel.executors import require_visible
from ictal.stitch import Predict

# Per worker process: the model (loaded once) and this process's segment writer.
_MODELS: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
_WRITERS: dict[str, SegmentWriter] = {}


@dataclass(frozen=True)
class LogSettings:
    """Where records go and how the log commits them (picklable)."""

    out_dir: str
    fsync_s: float
    segment_bytes: int
    segment_age_s: float


@dataclass(frozen=True)
class Task:
    """One recording to detect on; everything a worker needs, picklable."""

    url: str
    key: str
    name: str
    size: int
    mtime: str
    checkpoint: str
    model_sha256: str
    settings: dict[str, Any]  # signal config, windowing, post-processing, channel policy
    settings_sha256: str
    log: LogSettings
    batch_size: int = 16
    save_probs: bool = False
    trust: ModelTrust = field(default_factory=ModelTrust)  # the coordinator's, never wider


def _model(task: Task) -> tuple[Any, dict[str, Any]]:
    key = (task.checkpoint, task.model_sha256)
    if key not in _MODELS:
        if Path(task.checkpoint).is_dir():  # an ONNX export: onnxruntime, no torch
            from ictal.export.runtime import load_exported

            _MODELS.clear()
            exported = load_exported(task.checkpoint)
            _MODELS[key] = (exported.predict, exported.meta)
            return _MODELS[key]
        from ictal.models.checkpoint import load_model

        _MODELS.clear()
        # The coordinator's decision on the model's code and version, taken again here.
        _MODELS[key] = load_model(task.checkpoint, "cpu", trust=task.trust)
    return _MODELS[key]


def _predict(task: Task, model: Any) -> Predict:
    """The model as a ``Predict``: an export's already is one, a torch module is wrapped."""
    if Path(task.checkpoint).is_dir():
        return model
    from ictal.models.inference import torch_predict

    return torch_predict(model, "cpu")


def remember_model(checkpoint: str, sha256: str, model: Any, meta: dict[str, Any]) -> None:
    """Give this process's task the model already loaded (the serial executor's caller)."""
    _MODELS.clear()
    _MODELS[(checkpoint, sha256)] = (model, meta)


def writer(log: LogSettings) -> SegmentWriter:
    """This process's segment writer for a log (``<host>-<pid>-<seq>`` segments)."""
    w = _WRITERS.get(log.out_dir)
    if w is None:
        w = SegmentWriter(
            Path(log.out_dir) / LOG_DIR,
            f"{socket.gethostname()}-{os.getpid()}",
            fsync_s=log.fsync_s,
            max_bytes=log.segment_bytes,
            max_age_s=log.segment_age_s,
        )
        _WRITERS[log.out_dir] = w
    return w


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread while the caller runs tasks itself, as a worker process does
    (``SINGLE_THREAD_ENV``): the same bytes whatever the executor, one worker on one core (two
    threads on a busy 2-core machine made inference 3x slower). Restored afterwards."""
    torch = sys.modules.get("torch")  # an export runs on onnxruntime, one thread already
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def close_writers() -> None:
    """Seal this process's open segments (the caller's own, for the serial executor)."""
    while _WRITERS:
        _, w = _WRITERS.popitem()
        w.close()


@dataclass
class Read:
    """A task's first stage: its recording read and preprocessed, or the record saying why it
    could not be (``failed``); what it took, in seconds."""

    seconds: float = 0.0
    failed: dict[str, Any] | None = None
    sha256: str = ""
    duration_s: float = 0.0
    repairs: Any = None
    data: Any = None  # the preprocessed (n_samples, C) array
    fs: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)


def read_task(task: Task) -> Read:
    """Read and preprocess a task's recording; writes nothing, so it may run ahead of the
    records before it (``ictal.parallel.ahead``). A failure is kept in ``Read.failed``."""
    note_url(task.url)  # this process masks the input's credentials wherever they are quoted
    t0 = time.monotonic()
    try:
        read = _read(task)
    except Exception as exc:  # one bad recording never stops the others
        read = Read(failed=_failure(exc))
    read.seconds = time.monotonic() - t0
    return read


def detect_one(task: Task, read: Read | None = None) -> dict[str, Any]:
    """Detect on one recording (``read`` is its first stage, if already done) and append its
    record; returns a small acknowledgement, sent only after the record's write returned (so
    every acknowledged record is in the log). Any failure becomes an error record; a log or
    checkpoint this worker cannot see (a cluster node without the shared file system) stops
    the command instead."""
    require_visible(Path(task.log.out_dir) / LOG_DIR, "detect --out")
    require_visible(task.checkpoint, "the checkpoint")
    if read is None:
        read = read_task(task)
    t0 = time.monotonic()
    base: dict[str, Any] = {
        "recording": task.key,
        "name": task.name,
        "source": {"size": task.size, "mtime": task.mtime},
        "model_sha256": task.model_sha256,
        "settings_sha256": task.settings_sha256,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    try:
        record = {**base, **(read.failed or _infer(task, read))}
    except Exception as exc:  # one bad recording never stops the others
        record = {**base, **_failure(exc)}
    total = read.seconds + time.monotonic() - t0
    record["timing"] = {**record.get("timing", {}), "total_s": round(total, 4)}
    record["time"] = time.time()
    writer(task.log).append(encode(record))  # acknowledged once this returns
    return {
        "recording": task.key,
        "status": record["status"],
        "events": len(record.get("events", [])),
        "duration_s": record.get("duration_s", 0.0),
        "error": record.get("error"),
    }


# Recordings read ahead hold a second recording's arrays in memory beside the one the model
# is on (about 3x the preprocessed float32 while it is made: 1.5 GB for an EDF this size).
# A longer one is read by the caller when its turn comes, one recording in memory at a time.
READ_AHEAD_MAX_BYTES = 256 << 20  # the EDF's size: 7 h of 19 channels at 256 Hz


def detect_ahead(tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
    """``detect_one`` over tasks in this process, the next recording read and preprocessed in
    a thread while the model runs on this one (unless it is larger than
    ``READ_AHEAD_MAX_BYTES``); the records are the same, in the same order."""
    with contextlib.closing(read_ahead(tasks, _read_if_small)) as pairs:
        for task, read in pairs:
            yield detect_one(task, read)


def _read_if_small(task: Task) -> Read | None:
    return read_task(task) if task.size <= READ_AHEAD_MAX_BYTES else None


def _failure(exc: Exception) -> dict[str, Any]:
    detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return {"status": "failed", "error": redact(detail)}


def _read(task: Task) -> Read:
    from ictal.corpus.annotations import AnnotationError
    from ictal.corpus.bids import line_frequency, sidecar_of
    from ictal.corpus.edf import RecordingError, read_eeg
    from ictal.io.digest import url_sha256
    from ictal.signal.pipeline import at_line_frequency, preprocess

    s = task.settings
    sig = SignalConfig.model_validate(s["signal"])
    t = time.monotonic()
    why = unusable(task.url) if "://" not in task.url else None
    if why is not None:  # replaced since it was listed (a FIFO would block this worker)
        return Read(failed={"status": "failed", "error": why})
    try:
        rec = read_eeg(task.url, sig.channels, missing=s["missing_channels"], montage=sig.montage)
    except RecordingError as exc:
        return Read(failed={"status": "failed", "error": redact(exc.reason)})
    sha = rec.sha256 or url_sha256(task.url)
    t_read = time.monotonic() - t
    t = time.monotonic()
    beside = sidecar_of(task.url)  # a BIDS recording's sidecar says its mains frequency
    why = unusable(beside) if beside is not None and "://" not in beside else None
    if why is not None and why != "does not exist":
        return Read(failed={"status": "failed", "error": f"the sidecar {beside} {why}"})
    try:
        mains = line_frequency(beside) if beside is not None else None
    except AnnotationError as exc:
        return Read(failed={"status": "failed", "error": redact(str(exc))})
    pre = preprocess(rec.data, rec.fs, at_line_frequency(sig, mains), pairs=rec.pairs)
    timing = {"read_s": t_read, "preprocess_s": time.monotonic() - t}
    return Read(sha256=sha, duration_s=float(rec.duration_s), repairs=rec.repairs,
                data=pre.data, fs=pre.fs, timing=timing)  # fmt: skip


def _infer(task: Task, read: Read) -> dict[str, Any]:
    from ictal.events.postprocess import PostProcess, events_from_probs
    from ictal.io.atomic import atomic_write_with
    from ictal.stitch import stitch

    s = task.settings
    model, _ = _model(task)
    t = time.monotonic()
    probs = stitch(
        _predict(task, model),
        read.data,
        s["window"],
        s["stride"],
        s["hop"],
        task.batch_size,
        pad=int(s.get("pad", 0)),
    )
    t_infer = time.monotonic() - t
    fs_out = read.fs / s["stride"]
    pp = PostProcess(**s["postprocess"])
    events = events_from_probs(probs, fs_out, pp)
    if task.save_probs:
        target = Path(task.log.out_dir) / PROBS / f"{task.name}.npy"
        atomic_write_with(target, lambda fh: np.save(fh, probs, allow_pickle=False))
    timing = {**read.timing, "infer_s": t_infer}
    return {
        "status": "done",
        "source_sha256": read.sha256,
        "duration_s": read.duration_s,
        "fs_out": fs_out,
        "events": [[a, b, peak(probs, fs_out, a, b)] for a, b in events],
        "repairs": read.repairs,
        "timing": {k: round(v, 4) for k, v in timing.items()},
    }


def peak(probs: np.ndarray, fs_out: float, start: float, stop: float) -> float:
    """The highest probability of the output steps an event covers."""
    a = round(start * fs_out)
    b = max(round(stop * fs_out), a + 1)
    return float(np.max(probs[a:b]))
