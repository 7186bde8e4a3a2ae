"""Build the cache for a config: each recording preprocessed once, in parallel, resumable.

Workers write `arrays/<id>.npy` then `records/<id>.json` (the per-recording completion or
failure record) into `<key16>.building-<run>/`; a rerun skips what is recorded. The table
and `manifest.json` are written last, then the directory is renamed to `<key16>/` (the
building directory's lifecycle is `writer.CacheWriter`). Output bytes depend only on the
corpus and the semantic config, never on workers or interruptions.
"""

from __future__ import annotations

import contextlib
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ictal import __version__
from ictal.cache import layout
from ictal.cache.manifest import ManifestError, read_json
from ictal.cache.plan import plan
from ictal.cache.reuse import Reuse
from ictal.cache.worker import WORKER_IMPORTS, Task, build_one
from ictal.cache.writer import CacheWriter
from ictal.config import Config, cache_key
from ictal.errors import Ending, PreflightError
from ictal.parallel.engines import make_executor
from ictal.parallel.executors import Executor, started
from ictal.ui import log, progress


@dataclass
class BuildReport:
    """What a build did; the CLI prints it as a table and ends as its ``ending`` says."""

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
        """DONE when every recording built, PARTIAL when some failed within the budget
        (``cache.max_failed_fraction``), REFUSED when more failed than it allows."""
        if self.failed_fraction > self.max_failed_fraction:
            return Ending.REFUSED
        return Ending.PARTIAL if self.failed else Ending.DONE


def build_cache(
    cfg: Config, *, workers: int | None = None, retry_failed: bool | None = None
) -> BuildReport:
    """Build (or resume, or confirm) the cache of this config; never touches other keys."""
    t0 = time.monotonic()
    executor = make_executor(cfg.cache.executor, workers or cfg.cache.workers, cfg.ray,
                             coordinator_works=True)  # fmt: skip
    with started(executor, build_one, WORKER_IMPORTS):  # children import while this plans
        return _plan_and_build(cfg, executor, retry_failed, t0)


def _plan_and_build(
    cfg: Config, executor: Executor, retry_failed: bool | None, t0: float
) -> BuildReport:
    """Plan, then confirm the committed cache or build into the locked building directory."""
    planned = plan(cfg)
    key = cache_key(cfg, planned.digest)
    root = layout.CacheRoot.of(cfg)
    final = root.committed(key)
    report = BuildReport(
        key=key, path=final, planned=len(planned.refs), off_layout=planned.discovery.problems
    )
    report.max_failed_fraction = cfg.cache.max_failed_fraction
    for rel, reason in report.off_layout:
        log.warning(f"{rel}: {reason} (not built)")
    root.writable()
    with root.key_lock(key):  # one build or stage of this key at a time, check to commit
        if (final / layout.MANIFEST).is_file():
            man = _committed_manifest(final)
            report.up_to_date = True
            report.skipped = man["totals"]["recordings"]
            _fill_from(report, man)
            report.wall_s = time.monotonic() - t0
            return report
        _refuse_broken_commit(final)
        retry = cfg.cache.retry_failed if retry_failed is None else retry_failed
        with CacheWriter.open(cfg, planned, key) as writer:
            manifest = _build_into(writer, report, executor, retry, t0)
    _fill_from(report, manifest)
    return report


def _build_into(
    writer: CacheWriter, report: BuildReport, executor: Executor, retry: bool, t0: float
) -> dict[str, Any]:
    """The build proper, in the locked building directory: link what earlier caches hold,
    build what is missing, finalize, and commit by rename; returns the manifest."""
    cfg = writer.cfg
    todo = writer.pending(retry)
    report.skipped = len(writer.planned.refs) - len(todo)
    reuse = writer.link_unchanged(todo)
    report.reused += len(reuse.linked)
    linking = len(reuse.by_content)
    log.info(
        f"building {len(reuse.left)} recordings ({report.skipped} already done"
        + (f", {linking} to link if their content is unchanged" if linking else "")
        + f") with {executor.workers} worker(s) into {writer.directory}"
    )
    _run(writer, executor, reuse, report)
    manifest = writer.finish()
    report.wall_s = time.monotonic() - t0
    writer.commit(_build_info(cfg, executor, report))
    return manifest


def _run(writer: CacheWriter, executor: Executor, reuse: Reuse, report: BuildReport) -> None:
    """Build the recordings left by reuse on the executor, taking each record as it comes."""
    found, directory = writer.planned.discovery, str(writer.directory)
    cfg_dump = writer.cfg.model_dump(mode="json")
    tasks = (
        Task(found.root_of(r), r, directory, cfg_dump, found.signature(r),
             reuse.by_content.get(r.id))
        for r in reuse.left
    )  # fmt: skip
    results = contextlib.closing(executor.map_unordered(build_one, tasks))
    with progress("build", total=len(reuse.left), unit="recordings") as tick, results as done:
        for rec in done:
            outcome = writer.add(rec)
            if outcome == "reused":
                report.reused += 1
            elif outcome == "built":
                report.built += 1
                report.built_hours += rec["n_samples"] / writer.cfg.signal.fs / 3600
            else:
                log.warning(f"failed: {rec['reason']}")
            tick.advance(1)


def _build_info(cfg: Config, executor: Executor, report: BuildReport) -> dict[str, Any]:
    """Where, with what and how fast this run built (``build.json``; not part of the key)."""
    return {
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
    }


def _refuse_broken_commit(final: Path) -> None:
    """Refuse a committed directory without a manifest: it can be neither used nor built."""
    if final.exists() or final.is_symlink():
        raise PreflightError(
            f"{final} exists but holds no manifest.json: a broken commit or a copy that did "
            "not finish, so this cache can be neither used nor built",
            f"move {final} aside (`ictal gc --yes` removes it when ictal made it), then "
            "build again",
        )


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


def _fill_from(report: BuildReport, manifest: dict[str, Any]) -> None:
    """The failures and totals of a finished cache, from its manifest."""
    report.failed = [(f["rel"], f["reason"]) for f in manifest["failed"]]
    totals = manifest["totals"]
    report.hours = totals["hours"]
    report.bytes_on_disk = totals["bytes"]
    report.seizure_events = totals["seizure_events"]
