"""Build the cache for a config: each recording preprocessed once, in parallel, resumable.

Workers write `arrays/<id>.npy` then `records/<id>.json` (the per-recording completion or
failure record) into `<key16>.building-<run>/`; a rerun skips what is recorded. The table
and `manifest.json` are written last, then the directory is renamed to `<key16>/`. Output
bytes depend only on the corpus and the semantic config, never on workers or interruptions.
"""

from __future__ import annotations

import fcntl
import io
import os
import platform
import socket
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal import __version__
from ictal.cache import layout
from ictal.cache.executors import make_executor
from ictal.cache.manifest import read_json, sha256_bytes, table_bytes
from ictal.config import (
    CACHE_FORMAT_VERSION,
    PREPROCESSING_VERSION,
    Config,
    cache_key,
)
from ictal.corpus.discovery import RecordingRef, inventory_digest, scan
from ictal.errors import PreflightError
from ictal.io.atomic import atomic_write_bytes, atomic_write_json, fsync_dir
from ictal.ui import log, progress


@dataclass(frozen=True)
class Task:
    """One recording to build; everything a worker needs, picklable."""

    corpus_root: str
    ref: RecordingRef
    out_dir: str
    cfg: dict[str, Any]


@dataclass
class BuildReport:
    """What a build did; the CLI prints it as a table and derives the exit code."""

    key: str
    path: Path
    planned: int = 0
    built: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (rel, reason)
    up_to_date: bool = False
    hours: float = 0.0
    bytes_on_disk: int = 0
    seizure_events: int = 0
    wall_s: float = 0.0
    built_hours: float = 0.0
    off_layout: list[tuple[str, str]] = field(default_factory=list)
    max_failed_fraction: float = 0.05

    @property
    def failed_fraction(self) -> float:
        return len(self.failed) / self.planned if self.planned else 0.0

    @property
    def exit_code(self) -> int:
        """0 all built, 4 some failed within budget, 3 over the failure budget."""
        if self.failed_fraction > self.max_failed_fraction:
            return 3
        return 4 if self.failed else 0


def corpus_root(cfg: Config) -> str:
    """The corpus root as an absolute path or a URL (workers may run elsewhere)."""
    root = cfg.corpus.root
    return root if "://" in root else os.path.abspath(root)


def plan(cfg: Config) -> tuple[list[RecordingRef], str, list[tuple[str, str]]]:
    """Recordings of the configured splits, the inventory digest, and off-layout files."""
    root = corpus_root(cfg)
    found = scan(root)
    refs = [r for r in found.refs if r.split in cfg.corpus.splits]
    if not refs:
        raise PreflightError(
            f"no recordings in the TUSZ layout under {root} (splits {list(cfg.corpus.splits)})",
            "check corpus.root, or create a demo corpus with `ictal synth DIR`",
        )
    return refs, inventory_digest(root, refs), found.problems


# --- worker side -------------------------------------------------------------------------


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


# --- coordinator side --------------------------------------------------------------------


class BuildLock:
    """An exclusive flock on the building directory: one build per directory at a time."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / layout.LOCK
        self.fd: int | None = None

    def __enter__(self) -> BuildLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self.fd)
            raise PreflightError(
                f"another build is running in {self.path.parent}",
                "wait for it to finish (`ictal explain` shows its progress)",
            ) from exc
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def is_locked(directory: Path) -> bool:
    """True when a live build holds the directory's lock."""
    path = directory / layout.LOCK
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def load_records(directory: Path) -> dict[str, dict[str, Any]]:
    """The ledger: id -> record, keeping only done records whose array is complete."""
    records: dict[str, dict[str, Any]] = {}
    rec_dir = directory / layout.RECORDS
    if not rec_dir.is_dir():
        return records
    for name in os.listdir(rec_dir):
        if not name.endswith(".json"):
            continue  # temp files of a killed writer
        try:
            rec = read_json(rec_dir / name)
        except ValueError:
            continue  # cannot happen with atomic writes; redo the recording if it does
        if rec.get("status") == "done":
            array = directory / rec["array"]
            if not array.is_file() or array.stat().st_size != rec["bytes"]:
                continue
        records[rec["id"]] = rec
    return records


def sweep_temp_files(directory: Path) -> int:
    """Remove temp files left by writers killed mid-write (only under the build lock)."""
    n = 0
    for sub in (layout.ARRAYS, layout.RECORDS, "."):
        d = directory / sub
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
                n += 1
    return n


def _plan_order(refs: list[RecordingRef]) -> list[RecordingRef]:
    """Largest files first (better load balance across workers), then by path: deterministic."""
    return sorted(refs, key=lambda r: (-r.size, r.rel))


def _finalize(
    directory: Path,
    cfg: Config,
    key: str,
    digest: str,
    refs: list[RecordingRef],
    records: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Write the recordings table and the manifest (last); returns the manifest."""
    done = sorted((r for r in records.values() if r["status"] == "done"), key=lambda r: r["id"])
    failed = sorted(
        ({"id": r["id"], "rel": r["rel"], "reason": r["reason"]} for r in records.values()
         if r["status"] == "failed"),
        key=lambda r: r["id"],
    )  # fmt: skip
    fs = cfg.signal.fs
    per_split: dict[str, dict[str, float]] = {}
    repairs: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for r in done:
        s = per_split.setdefault(
            r["split"],
            {"recordings": 0, "hours": 0.0, "seizure_events": 0, "seizure_seconds": 0.0},
        )
        s["recordings"] += 1
        s["hours"] += r["n_samples"] / fs / 3600
        s["seizure_events"] += len(r["seizures"])
        s["seizure_seconds"] += sum(b - a for a, b in r["seizures"]) / fs
        repairs.update(r.get("repairs", {}))
        counts.update(r.get("counts", {}))
    for s in per_split.values():
        s["hours"] = round(s["hours"], 6)
        s["seizure_seconds"] = round(s["seizure_seconds"], 6)
    table = table_bytes(done)
    atomic_write_bytes(directory / layout.TABLE, table)
    channels = done[0]["n_channels"] if done else None
    from ictal.signal.montage import montage_channels

    manifest = {
        "format_version": CACHE_FORMAT_VERSION,
        "preprocessing_version": PREPROCESSING_VERSION,
        "key": key,
        "semantic": cfg.semantic(),
        "source": {"digest": digest, "recordings": len(refs)},
        "fs": fs,
        "dtype": cfg.signal.dtype,
        "channels": list(montage_channels(cfg.signal.montage)),
        "layout": "time-major (n_samples, n_channels) .npy per recording",
        "table": {"file": layout.TABLE, "sha256": sha256_bytes(table), "bytes": len(table)},
        "totals": {
            "planned": len(refs),
            "recordings": len(done),
            "failed": len(failed),
            "samples": sum(r["n_samples"] for r in done),
            "bytes": sum(r["bytes"] for r in done),
            "hours": round(sum(s["hours"] for s in per_split.values()), 6),
            "seizure_events": sum(len(r["seizures"]) for r in done),
        },
        "per_split": per_split,
        "failed": failed,
        "repairs": dict(sorted(repairs.items())),
        "counts": dict(sorted(counts.items())),
    }
    assert channels is None or channels == len(manifest["channels"])
    atomic_write_json(directory / layout.MANIFEST, manifest)
    return manifest


def build_cache(
    cfg: Config, *, workers: int | None = None, retry_failed: bool | None = None
) -> BuildReport:
    """Build (or resume, or confirm) the cache of this config; never touches other keys."""
    t0 = time.monotonic()
    refs, digest, off_layout = plan(cfg)
    key = cache_key(cfg, digest)
    root = Path(cfg.cache.root)
    final = layout.committed_dir(root, key)
    report = BuildReport(key=key, path=final, planned=len(refs), off_layout=off_layout)
    report.max_failed_fraction = cfg.cache.max_failed_fraction
    for rel, reason in off_layout:
        log.warning(f"{rel}: {reason} (not built)")
    if (final / layout.MANIFEST).is_file():
        man = read_json(final / layout.MANIFEST)
        report.up_to_date = True
        report.skipped = man["totals"]["recordings"]
        report.failed = [(f["rel"], f["reason"]) for f in man["failed"]]
        _fill_totals(report, man)
        report.wall_s = time.monotonic() - t0
        return report

    existing = layout.building_dirs_for(root, key)
    resumable = [e for e in existing if not is_locked(e.path)]
    if existing and not resumable:
        raise PreflightError(
            f"another build of this cache is running in {existing[-1].path}",
            "wait for it to finish (`ictal explain` shows its progress)",
        )
    if resumable:
        directory = resumable[-1].path
        log.info(f"resuming the interrupted build in {directory}")
    else:
        directory = layout.building_dir(root, key, layout.new_run_id())
        directory.mkdir(parents=True)
        fsync_dir(root)
    (directory / layout.ARRAYS).mkdir(exist_ok=True)
    (directory / layout.RECORDS).mkdir(exist_ok=True)

    retry = cfg.cache.retry_failed if retry_failed is None else retry_failed
    with BuildLock(directory):
        if not (directory / layout.PLAN).exists():
            atomic_write_json(
                directory / layout.PLAN,
                {"key": key, "semantic": cfg.semantic(), "source_digest": digest,
                 "recordings": [r.id for r in refs]},
            )  # fmt: skip
        swept = sweep_temp_files(directory)
        if swept:
            log.info(f"removed {swept} partial file(s) left by an interrupted build")
        records = load_records(directory)
        wanted = {r.id for r in refs}
        records = {k: v for k, v in records.items() if k in wanted}
        todo = [
            r
            for r in _plan_order(refs)
            if r.id not in records or (retry and records[r.id]["status"] == "failed")
        ]
        report.skipped = len(refs) - len(todo)
        executor = make_executor(cfg.cache.executor, workers or cfg.cache.workers)
        log.info(
            f"building {len(todo)} recordings ({report.skipped} already done) "
            f"with {executor.workers} worker(s) into {directory}"
        )
        root_url = corpus_root(cfg)
        cfg_dump = cfg.model_dump(mode="json")
        tasks = (Task(root_url, r, str(directory), cfg_dump) for r in todo)
        with progress("build", total=len(todo)) as tick:
            for rec in executor.map_unordered(build_one, tasks):
                records[rec["id"]] = rec
                if rec["status"] == "done":
                    report.built += 1
                    report.built_hours += rec["n_samples"] / cfg.signal.fs / 3600
                else:
                    log.warning(f"failed: {rec['reason']}")
                tick.advance(1)
        manifest = _finalize(directory, cfg, key, digest, refs, records)
        report.wall_s = time.monotonic() - t0
        atomic_write_json(
            directory / layout.BUILD_INFO,
            {
                "ictal_version": __version__,
                "host": socket.gethostname(),
                "python": platform.python_version(),
                "workers": executor.workers,
                "executor": cfg.cache.executor,
                "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "last_run_wall_s": round(report.wall_s, 3),
                "last_run_built": report.built,
                "last_run_skipped": report.skipped,
            },
        )
        # Commit: the rename makes the complete directory visible under its key at once.
        os.rename(directory, final)
        fsync_dir(root)
    report.failed = [(f["rel"], f["reason"]) for f in manifest["failed"]]
    _fill_totals(report, manifest)
    return report


def _fill_totals(report: BuildReport, manifest: dict[str, Any]) -> None:
    totals = manifest["totals"]
    report.hours = totals["hours"]
    report.bytes_on_disk = totals["bytes"]
    report.seizure_events = totals["seizure_events"]
