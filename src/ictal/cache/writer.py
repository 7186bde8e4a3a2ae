"""The building directory of one cache key, as a writer with a lifecycle: open (resume the
interrupted build or start a new one), enter (lock it, sweep temps, read the ledger), add the
records workers return, finish (recordings table, then manifest) and commit (build info, then
one rename to ``<key16>/``). Nothing is visible under the key until that rename.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from ictal.cache import layout
from ictal.cache.ledger import build_lock, load_records, sweep_temp_files
from ictal.cache.manifest import sha256_bytes, table_bytes
from ictal.cache.plan import Plan
from ictal.cache.reuse import Reuse, plan_reuse, reuse_one
from ictal.cache.worker import REUSED
from ictal.config import CACHE_FORMAT_VERSION, PREPROCESSING_VERSION, Config
from ictal.corpus.discovery import RecordingRef
from ictal.errors import PreflightError
from ictal.ids import new_run_id
from ictal.io.atomic import atomic_write_bytes, atomic_write_json, fsync_dir
from ictal.io.lock import FileLock, is_locked
from ictal.parallel.executors import NotShared
from ictal.ui import log

Outcome = Literal["built", "reused", "failed"]


class CacheWriter:
    """Owns one build run's directory under the key lock: its ledger of records, the links
    from earlier caches, and the table, manifest and rename that commit it."""

    def __init__(self, cfg: Config, planned: Plan, key: str, directory: Path) -> None:
        self.cfg = cfg
        self.planned = planned
        self.key = key
        self.root = layout.CacheRoot.of(cfg)
        self.directory = directory
        self.records: dict[str, dict[str, Any]] = {}
        self._lock: FileLock | None = None

    @property
    def final(self) -> Path:
        """Where the cache is committed."""
        return self.root.committed(self.key)

    @classmethod
    def open(cls, cfg: Config, planned: Plan, key: str) -> CacheWriter:
        """Resume the newest interrupted build of the key, or start a new run directory;
        refuses while another build of the key holds every one of them."""
        root = layout.CacheRoot.of(cfg)
        existing = root.builds_of(key)
        resumable = [e for e in existing if not is_locked(e.path / layout.LOCK)]
        if existing and not resumable:
            raise PreflightError(
                f"another build of this cache is running in {existing[-1].path}",
                "wait for it to finish (`ictal explain` shows its progress)",
            )
        if resumable:
            directory = resumable[-1].path
            log.info(f"resuming the interrupted build in {directory}")
        else:
            directory = root.building(key, new_run_id())
            directory.mkdir(parents=True)
            fsync_dir(root.path)
        (directory / layout.ARRAYS).mkdir(exist_ok=True)
        (directory / layout.RECORDS).mkdir(exist_ok=True)
        return cls(cfg, planned, key, directory)

    def __enter__(self) -> CacheWriter:
        self._lock = build_lock(self.directory).acquire()
        try:
            self._recover()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()

    def _recover(self) -> None:
        """Write the plan on a first run, remove temps of killed writers, read the ledger of
        the planned recordings."""
        refs = self.planned.refs
        if not (self.directory / layout.PLAN).exists():
            atomic_write_json(
                self.directory / layout.PLAN,
                {"key": self.key, "semantic": self.cfg.semantic(),
                 "source_digest": self.planned.digest, "recordings": [r.id for r in refs]},
            )  # fmt: skip
        swept = sweep_temp_files(self.directory)
        if swept:
            log.info(f"removed {swept} partial file(s) left by an interrupted build")
        wanted = {r.id for r in refs}
        self.records = {k: v for k, v in load_records(self.directory).items() if k in wanted}

    def pending(self, retry: bool) -> list[RecordingRef]:
        """Recordings with no record yet (and failed ones when retrying): largest files first
        for load balance, then by path, so the order is deterministic."""
        ordered = sorted(self.planned.refs, key=lambda r: (-r.size, r.rel))
        return [
            r
            for r in ordered
            if r.id not in self.records or (retry and self.records[r.id]["status"] == "failed")
        ]

    def link_unchanged(self, todo: list[RecordingRef]) -> Reuse:
        """Link what earlier caches of this config hold unchanged; the rest is to build."""
        found = plan_reuse(self.cfg, self.final, todo, self.planned.discovery)
        for ref, donor, rec in found.linked:
            reuse_one(self.directory, donor, rec)
            self.records[ref.id] = rec
        if found.linked:
            log.info(
                f"reused {len(found.linked)} unchanged recordings from earlier caches of this "
                "config"
            )
        if found.by_content:
            log.info(
                f"{len(found.by_content)} recordings have new timestamps but the sizes of an "
                "earlier cache's files: their sha256 decide whether they are linked or built"
            )
        return found

    def add(self, rec: dict[str, Any]) -> Outcome:
        """Take a record a worker returned (and wrote): linked by content, built, or failed."""
        if rec.pop(REUSED, False):
            self.records[rec["id"]] = rec
            return "reused"
        self.records[rec["id"]] = rec
        if rec["status"] != "done":
            return "failed"
        self._arrived(rec)
        return "built"

    def _arrived(self, rec: dict[str, Any]) -> None:
        """Refuse a record whose array this machine cannot see at its size: a worker wrote it
        somewhere else (a cluster node whose cache.root is not the shared file system)."""
        path = self.directory / rec["array"]
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        if size != rec["bytes"]:
            raise NotShared(
                f"a worker built {rec['rel']} but {path} is "
                f"{'missing' if size < 0 else 'short'} here: cache.root is not shared with the "
                "workers",
                "put cache.root on a file system every node mounts at the same path, then run "
                "the build again (it resumes)",
            )

    def finish(self) -> dict[str, Any]:
        """Write the recordings table, then the manifest; returns the manifest. A mixture's
        manifest names its corpora (name, format, root, split, planned recordings)."""
        for sub in (layout.ARRAYS, layout.RECORDS):  # the workers' renames, durable at once
            fsync_dir(self.directory / sub)
        records = self.records.values()
        done = sorted((r for r in records if r["status"] == "done"), key=lambda r: r["id"])
        failed = sorted(
            ({"id": r["id"], "rel": r["rel"], "reason": r["reason"]} for r in records
             if r["status"] == "failed"),
            key=lambda r: r["id"],
        )  # fmt: skip
        table = table_bytes(done)
        atomic_write_bytes(self.directory / layout.TABLE, table)
        manifest = _manifest(self.cfg, self.planned, self.key, done, failed, table)
        atomic_write_json(self.directory / layout.MANIFEST, manifest)
        return manifest

    def commit(self, build_info: dict[str, Any]) -> Path:
        """Write the build info, then rename the complete directory to its key: it becomes
        visible under the key at once. Returns the committed directory."""
        atomic_write_json(self.directory / layout.BUILD_INFO, build_info)
        final = self.final
        try:
            os.rename(self.directory, final)
        except OSError as exc:
            raise PreflightError(
                f"cannot commit {self.directory} as {final}: {os.strerror(exc.errno or 0)}",
                f"move {final} aside, then run the build again (it finishes at once)",
            ) from exc
        fsync_dir(self.root.path)
        return final


def _tally(
    done: list[dict[str, Any]], fs: float
) -> tuple[dict[str, dict[str, float]], Counter[str], Counter[str]]:
    """Per-split totals (recordings, hours, seizures), repairs and counts of built records."""
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
    return per_split, repairs, counts


def _manifest(
    cfg: Config,
    planned: Plan,
    key: str,
    done: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    table: bytes,
) -> dict[str, Any]:
    """The manifest of a finished build: config, source, layout, table hash and totals."""
    from ictal.signal.montage import montage_channels

    refs, found, fs = planned.refs, planned.discovery, cfg.signal.fs
    corpora = found.corpora(refs) if found.mixture else None
    splits = found.splits(refs, cfg.corpus.split)
    per_split, repairs, counts = _tally(done, fs)
    manifest = {
        "format_version": CACHE_FORMAT_VERSION,
        "preprocessing_version": PREPROCESSING_VERSION,
        "key": key,
        "semantic": cfg.semantic(),
        "source": {"digest": planned.digest, "recordings": len(refs)},
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
    channels = done[0]["n_channels"] if done else None
    assert channels is None or channels == len(manifest["channels"])
    return manifest
