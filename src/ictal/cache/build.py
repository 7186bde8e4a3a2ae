"""Build the cache for a config: each recording preprocessed once, in parallel, resumable.

Workers write `arrays/<id>.npy` then `records/<id>.json` (the per-recording completion or
failure record) into `<key16>.building-<run>/`; a rerun skips what is recorded. The table
and `manifest.json` are written last, then the directory is renamed to `<key16>/`. Output
bytes depend only on the corpus and the semantic config, never on workers or interruptions.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ictal import __version__
from ictal.cache import layout
from ictal.cache.ledger import build_lock, is_locked, key_lock, load_records, sweep_temp_files
from ictal.cache.manifest import ManifestError, read_json, sha256_bytes, table_bytes
from ictal.cache.plan import Plan, plan
from ictal.cache.reuse import donor_records, reuse_one
from ictal.cache.worker import REUSED, Task, build_one
from ictal.config import (
    CACHE_FORMAT_VERSION,
    PREPROCESSING_VERSION,
    Config,
    cache_key,
)
from ictal.corpus.discovery import RecordingRef
from ictal.corpus.sources import Inventory
from ictal.errors import Ending, PreflightError
from ictal.io.atomic import atomic_write_bytes, atomic_write_json, fsync_dir
from ictal.io.paths import writable_dir
from ictal.parallel.engines import make_executor
from ictal.parallel.executors import NotShared
from ictal.ui import log, progress


@dataclass
class BuildReport:
    """What a build did; the CLI prints it as a table and derives the exit code."""

    key: str
    path: Path
    planned: int = 0
    built: int = 0
    reused: int = 0
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
    def ending(self) -> Ending:
        """Refused over the failure budget, partial when some failed within it."""
        if self.failed_fraction > self.max_failed_fraction:
            return Ending.REFUSED
        return Ending.PARTIAL if self.failed else Ending.DONE


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
    corpora: list[dict[str, Any]] | None = None,
    splits: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write the recordings table and the manifest (last); returns the manifest. A mixture's
    manifest names its corpora (name, format, root, split, planned recordings)."""
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
        **({"corpora": corpora} if corpora else {}),
        **({"splits": splits} if splits else {}),
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
    planned = plan(cfg)
    refs, digest, off_layout = planned.refs, planned.digest, planned.discovery.problems
    key = cache_key(cfg, digest)
    root = Path(cfg.cache.root)
    final = layout.committed_dir(root, key)
    report = BuildReport(key=key, path=final, planned=len(refs), off_layout=off_layout)
    report.max_failed_fraction = cfg.cache.max_failed_fraction
    for rel, reason in off_layout:
        log.warning(f"{rel}: {reason} (not built)")
    writable_dir(root, "cache.root")
    with key_lock(root, key):  # one build or stage of this key at a time, check to commit
        if (final / layout.MANIFEST).is_file():
            man = _committed_manifest(final)
            report.up_to_date = True
            report.skipped = man["totals"]["recordings"]
            report.failed = [(f["rel"], f["reason"]) for f in man["failed"]]
            _fill_totals(report, man)
            report.wall_s = time.monotonic() - t0
            return report
        if final.exists() or final.is_symlink():
            raise PreflightError(
                f"{final} exists but holds no manifest.json: a broken commit or a copy that did "
                "not finish, so this cache can be neither used nor built",
                f"move {final} aside (`ictal gc --yes` removes it when ictal made it), then "
                "build again",
            )
        manifest = _build_locked(cfg, planned, key, root, final, report, workers, retry_failed, t0)
    report.failed = [(f["rel"], f["reason"]) for f in manifest["failed"]]
    _fill_totals(report, manifest)
    return report


def _build_locked(
    cfg: Config,
    planned: Plan,
    key: str,
    root: Path,
    final: Path,
    report: BuildReport,
    workers: int | None,
    retry_failed: bool | None,
    t0: float,
) -> dict[str, Any]:
    """The build proper, under the key lock: resume or start a building directory, build what
    is missing, finalize, and commit by rename; returns the manifest."""
    refs, digest = planned.refs, planned.digest
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
    with build_lock(directory):
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
        todo, by_content = _reuse(cfg, final, directory, todo, planned.discovery, records, report)
        executor = make_executor(cfg.cache.executor, workers or cfg.cache.workers, cfg.ray,
                                 coordinator_works=True)  # fmt: skip
        log.info(
            f"building {len(todo)} recordings ({report.skipped} already done"
            + (f", {len(by_content)} to link if their content is unchanged" if by_content else "")
            + f") with {executor.workers} worker(s) into {directory}"
        )
        cfg_dump = cfg.model_dump(mode="json")
        found = planned.discovery
        tasks = (
            Task(found.root_of(r), r, str(directory), cfg_dump, found.signature(r),
                 by_content.get(r.id))
            for r in todo
        )  # fmt: skip
        results = contextlib.closing(executor.map_unordered(build_one, tasks))
        with progress("build", total=len(todo)) as tick, results as done:
            for rec in done:
                if rec.pop(REUSED, False):
                    records[rec["id"]] = rec
                    report.reused += 1
                    tick.advance(1)
                    continue
                records[rec["id"]] = rec
                if rec["status"] == "done":
                    _arrived(directory, rec)
                    report.built += 1
                    report.built_hours += rec["n_samples"] / cfg.signal.fs / 3600
                else:
                    log.warning(f"failed: {rec['reason']}")
                tick.advance(1)
        found = planned.discovery
        corpora = found.corpora(refs) if found.mixture else None
        splits = found.splits(refs, cfg.corpus.split)
        manifest = _finalize(directory, cfg, key, digest, refs, records, corpora, splits)
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
                "last_run_reused": report.reused,
                "last_run_skipped": report.skipped,
            },
        )
        # Commit: the rename makes the complete directory visible under its key at once.
        try:
            os.rename(directory, final)
        except OSError as exc:
            raise PreflightError(
                f"cannot commit {directory} as {final}: {os.strerror(exc.errno or 0)}",
                f"move {final} aside, then run the build again (it finishes at once)",
            ) from exc
        fsync_dir(root)
    return manifest


def _arrived(directory: Path, rec: dict[str, Any]) -> None:
    """Refuse a record whose array this machine cannot see at its size: a worker wrote it
    somewhere else (a cluster node whose cache.root is not the shared file system)."""
    path = directory / rec["array"]
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    if size != rec["bytes"]:
        raise NotShared(
            f"a worker built {rec['rel']} but {path} is {'missing' if size < 0 else 'short'} "
            "here: cache.root is not shared with the workers",
            "put cache.root on a file system every node mounts at the same path, then run "
            "the build again (it resumes)",
        )


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


def _reuse(
    cfg: Config,
    final: Path,
    directory: Path,
    todo: list[RecordingRef],
    discovery: Inventory,
    records: dict[str, dict[str, Any]],
    report: BuildReport,
) -> tuple[list[RecordingRef], dict[str, tuple[str, dict[str, Any]]]]:
    """Link unchanged recordings (same size and mtime) from sibling caches now; returns what
    is left to build, and for those whose files differ only in mtime the donor that the
    worker reuses if the files' sha256 still match."""
    donors = donor_records(cfg, final)
    by_rel: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for donor in donors.values():
        by_rel.setdefault(donor[1]["rel"], []).append(donor)
    left: list[RecordingRef] = []
    by_content: dict[str, tuple[str, dict[str, Any]]] = {}
    for ref in todo:
        found = donors.get(ref.id)
        if found is None or not _same_recording(found[1], ref):
            left.append(ref)
            # The same file under another name (a corpus built alone, now in a mixture, or
            # moved to another split): linked only if its sha256 are the donor's.
            sig = discovery.signature(ref)
            for donor, rec in by_rel.get(ref.rel, []):
                if rec.get("source_sha256") and _same_sizes(rec["source"], sig):
                    by_content[ref.id] = (str(donor), rec)
                    break
            continue
        donor, rec = found
        sig = discovery.signature(ref)
        if rec["source"] != sig:
            left.append(ref)
            if rec.get("source_sha256") and _same_sizes(rec["source"], sig):
                by_content[ref.id] = (str(donor), rec)
            continue
        reuse_one(directory, donor, rec)
        records[ref.id] = rec
        report.reused += 1
    if report.reused:
        log.info(f"reused {report.reused} unchanged recordings from earlier caches of this config")
    if by_content:
        log.info(
            f"{len(by_content)} recordings have new timestamps but the sizes of an earlier "
            "cache's files: their sha256 decide whether they are linked or built"
        )
    return left, by_content


def _same_sizes(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same files present with the same sizes (signatures are (size, mtime) per file)."""
    if set(a) != set(b):
        return False
    return all((a[k] is None) == (b[k] is None) and (a[k] is None or a[k][0] == b[k][0]) for k in a)


def _committed_manifest(final: Path) -> dict[str, Any]:
    """The manifest of the committed cache, or a refusal naming it when it is damaged."""
    try:
        man = read_json(final / layout.MANIFEST)
        ok = (
            isinstance(man, dict)
            and isinstance(man.get("totals"), dict)
            and isinstance(man["totals"].get("recordings"), int)
            and isinstance(man.get("failed"), list)
        )
        if not ok:
            raise ManifestError(f"{final / layout.MANIFEST}: not an ictal manifest")
    except ManifestError as exc:
        raise PreflightError(
            f"the committed cache {final} is damaged: {exc}",
            f"move {final} aside (or `ictal gc --yes` with another config), then build again",
        ) from exc
    return man


def _fill_totals(report: BuildReport, manifest: dict[str, Any]) -> None:
    totals = manifest["totals"]
    report.hours = totals["hours"]
    report.bytes_on_disk = totals["bytes"]
    report.seizure_events = totals["seizure_events"]
