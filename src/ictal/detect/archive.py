"""``ictal detect``: a checkpoint over an archive of EDF files, resumable by default.

The output directory is a run directory of its own (config, run.json, heartbeat, lock), with
the record log under ``log/`` and the outputs built from it. A rerun recovers the log (torn
tails of killed writers truncated, damaged frames cut out and said), skips every recording
whose valid record for this model and these settings is there (so a recording whose record
was lost or is invalid is detected again), and rebuilds the outputs; ``--watch`` keeps going
over new files.
With ``sink.url`` set, the directory (sealed segments included) is pushed as it grows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ictal.config import Config
from ictal.detect.inputs import Found, Source, assign_names, find_inputs
from ictal.detect.outputs import Summary, check_inside, kept_names, write_outputs
from ictal.detect.records import (
    LOG_DIR,
    Loaded,
    encode,
    load_local,
    load_url,
    newest,
    settings_hash,
)
from ictal.detect.task import (
    LogSettings,
    Task,
    close_writers,
    detect_ahead,
    detect_one,
    one_thread,
    remember_model,
    writer,
)
from ictal.errors import Ending, UsageError
from ictal.events.deployed import Point, Wanted, bare_threshold, same_point, tuned_point
from ictal.events.operating_points import at_threshold
from ictal.events.postprocess import PostProcess
from ictal.io.digest import file_sha256, url_sha256
from ictal.io.framelog import OPEN, SEALED, recover
from ictal.io.lock import FileLock
from ictal.io.paths import writable_dir
from ictal.io.redact import redact
from ictal.io.untrusted import UnreadableInput, read_text
from ictal.models.metadata import trained_edges
from ictal.models.trust import ModelTrust
from ictal.parallel.engines import make_executor, pool_workers
from ictal.runs.checkpoints import deployed_postprocess
from ictal.runs.directory import RunDir
from ictal.runs.heartbeat import LiveStatus
from ictal.runs.pusher import PushOutcome
from ictal.runs.session import RunSession
from ictal.stitch import default_hop, pad_for
from ictal.ui import is_terminal, log, progress

if TYPE_CHECKING:
    from ictal.export.runtime import Exported


@dataclass
class DetectResult:
    """What a detect (or collect) left in its output directory."""

    out: Path
    summary: Summary
    detected: int = 0  # recordings computed by this command
    skipped: int = 0  # already in the log (same source, model and settings)
    warnings: list[str] = field(default_factory=list)
    push: PushOutcome | None = None  # the final push, with a sink
    postprocess: str = ""  # where the operating point came from
    point: Point | None = None  # the operating point (None: --collect, which merges outputs)
    lost: int = 0  # --collect: sources, log stretches or records it could not use
    written: tuple[Any, ...] | None = field(default=None, repr=False)  # what outputs hold

    @property
    def ending(self) -> Ending:
        """Partial whenever the results hold a failed recording, or a collect lost records
        (detect computes lost ones again)."""
        return Ending.PARTIAL if self.summary.failed or self.lost else Ending.DONE

    def say(self, lines: list[str]) -> None:
        """Warn each line once (a --watch pass reads the same damage again)."""
        for line in lines:
            if line not in self.warnings:
                log.warning(line)
                self.warnings.append(line)


@dataclass(frozen=True)
class _Job:
    """What one detect command does on every pass: the model, its settings, the inputs and
    where the record log goes."""

    cfg: Config
    checkpoint: Path
    inputs: list[str]
    out: Path
    model_sha: str
    settings: dict[str, Any]
    settings_sha: str
    save_probs: bool
    trust: ModelTrust  # the model code the user accepts, carried to every worker
    sink_copy: str | None = None  # this output's copy in the sink (pruned segments live there)

    @property
    def logset(self) -> LogSettings:
        d = self.cfg.detect
        return LogSettings(str(self.out), d.fsync_s, int(d.segment_mb * 2**20), d.segment_age_s)

    def task(self, s: Source, name: str) -> Task:
        """The worker's task for one source."""
        return Task(s.url, s.key, name, s.size, s.mtime, str(self.checkpoint.resolve()),
                    self.model_sha, self.settings, self.settings_sha, self.logset,
                    self.cfg.evaluate.batch_size, self.save_probs, self.trust)  # fmt: skip


def resolve_postprocess(
    cfg: Config, checkpoint: Path, wanted: Wanted
) -> tuple[PostProcess, str, Point]:
    """The post-processing to apply, where it came from and its operating point
    (``runs.checkpoints.deployed_postprocess``: --threshold, --operating-point, the default)."""
    instead = f"using evaluate.threshold={cfg.evaluate.threshold}"
    deployed = deployed_postprocess(
        cfg, checkpoint, instead, point=wanted.point, threshold=wanted.threshold,
        points_file=wanted.file,
    )  # fmt: skip
    return deployed.postprocess, deployed.source, deployed.point


def exported_postprocess(
    cfg: Config, exported: Exported, wanted: Wanted
) -> tuple[PostProcess, str, Point]:
    """An export's post-processing: its sidecar's operating point, unless ``--threshold``
    (with the sidecar's other settings) or an operating-points file replace it; a point other
    than the sidecar's needs that file."""
    if wanted.threshold is not None:
        point = bare_threshold(wanted.threshold)
        pp = at_threshold(exported.postprocess, wanted.threshold)
        return pp, f"--threshold {wanted.threshold:g}", point
    if wanted.file is not None:
        tuned = tuned_point(wanted.file, wanted.point, cfg.detect.operating_point)
        if tuned is not None:
            return tuned
    own = exported.point
    if wanted.point is not None and not same_point(own, wanted.point):
        raise UsageError(
            f"--operating-point {wanted.point}: the export {exported.path} holds {own.name} "
            "only; pass --operating-points FILE (the run's dev operating_points.json) too, "
            "or --threshold T"
        )
    op = exported.sidecar["operating_point"]
    tuned = "dev-tuned" if op.get("tuned") else "NOT tuned"
    return exported.postprocess, f"{op.get('source')} ({tuned}, from {exported.path})", own


def detection_settings(meta: dict[str, Any], pp: PostProcess) -> dict[str, Any]:
    """Everything besides the weights that decides a recording's events: the checkpoint's
    preprocessing, its windowing and stitching, and the post-processing."""
    trained = meta.get("config") or {}
    try:
        signal_cfg = trained["signal"]
        missing = trained["corpus"]["policy"]["missing_channels"]
    except (KeyError, TypeError) as exc:
        raise UsageError(f"the checkpoint carries no preprocessing config ({exc})") from exc
    window, stride = int(meta["window"]), int(meta["output_stride"])
    return {
        "signal": signal_cfg,
        "missing_channels": missing,
        "window": window,
        "stride": stride,
        "hop": default_hop(window, stride),
        "pad": pad_for(trained_edges(meta), window, stride),
        "postprocess": {
            "threshold": pp.threshold,
            "hysteresis_low": pp.hysteresis_low,
            "min_duration_s": pp.min_duration_s,
            "merge_gap_s": pp.merge_gap_s,
            "max_event_s": pp.max_event_s,
        },
    }


def _have(rec: dict[str, Any] | None, src: Source, model: str, settings: str) -> bool:
    """True when ``rec`` is this source's result for this model and these settings (the
    file's size and mtime match, or, when only its mtime changed, its sha256 does)."""
    if rec is None or rec.get("model_sha256") != model or rec.get("settings_sha256") != settings:
        return False
    source = rec.get("source") or {}
    if source.get("size") == src.size and source.get("mtime") == src.mtime:
        return True
    if source.get("size") != src.size or not rec.get("source_sha256"):
        return False
    try:
        return url_sha256(src.url) == rec["source_sha256"]
    except OSError:
        return False


def _unusable(job: _Job, found: Found, results: dict[str, dict[str, Any]]) -> None:
    """Error records, and one warning each, for inputs that are not usable (missing,
    unreadable, not a regular file, not EDF) and not logged with that error already."""
    w = writer(job.logset)
    for key, reason in found.problems:
        had = results.get(key)
        if had is not None and had["status"] == "failed" and had.get("error") == redact(reason):
            continue
        log.warning(f"{key}: {reason}")
        w.append(
            encode({"recording": key, "name": "input", "status": "failed", "error": reason,
                    "model_sha256": job.model_sha, "settings_sha256": job.settings_sha,
                    "time": time.time()})
        )  # fmt: skip


def detect(
    cfg: Config,
    checkpoint: Path,
    inputs: list[str],
    out: Path,
    *,
    wanted: Wanted | None = None,
    watch: bool = False,
    save_probs: bool = False,
    redo: bool = False,
    prune_after_push: bool = False,
    trust: ModelTrust | None = None,
) -> DetectResult:
    """Run the detector of ``checkpoint`` over ``inputs`` into ``out`` (resumable); workers
    and executor come from ``detect.workers`` and ``detect.executor``."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():  # an ONNX export (`ictal export`): onnxruntime, no torch
        from ictal.export.runtime import load_exported

        exported = load_exported(checkpoint)
        model, meta, model_file = exported.predict, exported.meta, exported.model_file
        pp, pp_source, point = exported_postprocess(cfg, exported, wanted or Wanted())
    else:
        from ictal.models.checkpoint import load_model

        # A bad checkpoint, model code the user did not name, or code missing or of another
        # version, stops everything now; the workers load it again under the same trust.
        model, meta = load_model(checkpoint, "cpu", trust=trust)
        pp, pp_source, point = resolve_postprocess(cfg, checkpoint, wanted or Wanted())
        model_file = checkpoint
    settings = detection_settings(meta, pp)
    job = _Job(cfg, checkpoint, inputs, Path(out), file_sha256(model_file), settings,
               settings_hash(settings), save_probs, trust or ModelTrust())  # fmt: skip
    remember_model(str(checkpoint.resolve()), job.model_sha, model, meta)  # in-process work
    out = writable_dir(out, "--out")
    check_inside(out)
    lock = FileLock(RunDir(out).lock, f"the detect output {out}",
                    "wait for that detect to finish, or give another --out")  # fmt: skip
    identity = {"checkpoint": checkpoint.resolve(), "kind": "detect"}
    live = {"command": "detect", "phase": "detect"}
    result = DetectResult(out, Summary(), postprocess=pp_source, point=point)
    with RunSession.output(cfg, out, identity, live, lock, exclude=_not_pushed) as session:
        job = dataclasses.replace(job, sink_copy=session.sink_copy)
        try:
            _detect_pass(job, result, session.live, redo=redo)
            while watch:
                session.live.stage("watch")
                time.sleep(cfg.detect.poll_s)
                _detect_pass(job, result, session.live, redo=redo, settle=True)
                redo = False
        finally:
            close_writers()
            _recover(out, result)
            with contextlib.suppress(Exception):
                result.summary = _outputs(out, result, job.sink_copy)
    result.push = session.push
    if prune_after_push and session.push is not None and session.push.complete:
        _prune(out, str(session.sink_copy))
    return result


def _not_pushed(rel: str) -> bool:
    """Open segments change until sealed: only sealed ones go to the sink."""
    return rel.endswith(OPEN) or rel == ".lock"


PRUNED = ".pruned"  # in log/: some sealed segments live only in the sink (--prune-after-push)


def _under(url: str, roots: Sequence[str]) -> bool:
    """Whether ``url`` is one of ``roots`` or lies under one (whole path parts only, no
    ``.`` or ``..`` part that would climb out)."""
    url = url.rstrip("/")
    if any(part in (".", "..") for part in url.split("://", 1)[-1].split("/")):
        return False
    return any(url == r.rstrip("/") or url.startswith(r.rstrip("/") + "/") for r in roots if r)


def _records(out: Path, allowed: Sequence[str] = ()) -> Loaded:
    """The records of ``out``: its log, and the segments pruned locally from its copy in the
    sink. The marker saying where they are is a file like any other: its URL is read only
    when it lies in ``allowed`` (the sink the user configured, or a URL the user named)."""
    loaded = load_local(out)
    marker = out / LOG_DIR / PRUNED
    if not marker.exists():
        return loaded
    try:
        url = read_text(marker, "the pruned-segments marker", 4096).strip()
    except UnreadableInput as exc:
        return loaded + Loaded(warnings=[f"{exc}; pruned records not read"], lost=1)
    if not _under(url, allowed):
        why = (f"{marker}: sealed segments were pruned after a push to {redact(url)}, which "
               "is not in the sink.url of this command; their records are not read (set "
               "sink.url to that sink, or name the copy in `ictal detect --collect`)")  # fmt: skip
        return loaded + Loaded(warnings=[why], lost=1)
    return loaded + load_url(url)


def _recover(out: Path, result: DetectResult) -> None:
    """Seal the segments of dead writers; what their damage cost is said."""
    lines: list[str] = []
    for done in recover(out / LOG_DIR, lines):
        if done.damaged:
            lines.append(f"recovered {done.describe()}; recordings left without a record "
                         "are detected again")  # fmt: skip
        elif done.dropped:
            log.info(f"recovered {done.describe()} (the torn last frame of a killed writer)")
    result.say(lines)


def _outputs(out: Path, result: DetectResult, sink_copy: str | None = None) -> Summary:
    """The outputs rebuilt from the log; not rewritten when they already hold exactly these
    results, warnings and operating point (the end of a command after its last pass)."""
    loaded = _records(out, [sink_copy or ""])
    result.say(loaded.warnings)
    point = None if result.point is None else result.point.doc()
    results = newest(loaded.records)
    state = (results, list(result.warnings), point)
    if result.written is not None and result.written == state:
        return result.summary
    summary = write_outputs(out, results, result.warnings, point)
    result.written = state
    return summary


# Files seen growing by --watch: key -> (size, mtime, first time seen at that size).
_SEEN: dict[str, tuple[int, str, float]] = {}


def _settled(sources: list[Source], settle_s: float) -> list[Source]:
    """The sources whose size and mtime have not changed for ``settle_s`` (complete files)."""
    now = time.monotonic()
    ready = []
    for s in sources:
        seen = _SEEN.get(s.key)
        if seen is None or seen[:2] != (s.size, s.mtime):
            _SEEN[s.key] = (s.size, s.mtime, now)
            if settle_s > 0:
                continue
        if now - _SEEN[s.key][2] >= settle_s:
            ready.append(s)
    return ready


def _detect_pass(
    job: _Job, result: DetectResult, live: LiveStatus, *, redo: bool, settle: bool = False
) -> None:
    """One pass: recover the log, list the inputs, detect on what is not in the log yet."""
    out, cfg = job.out, job.cfg
    (out / LOG_DIR).mkdir(parents=True, exist_ok=True)  # workers check they can see it
    _recover(out, result)
    loaded = _records(out, [job.sink_copy or ""])
    result.say(loaded.warnings)
    results = newest(loaded.records)
    found = find_inputs(job.inputs)
    sources = _settled(found.sources, cfg.detect.settle_s) if settle else found.sources
    _unusable(job, found, results)
    names = assign_names(sorted({*results, *(s.key for s in found.sources)}), kept_names(results))
    todo = [
        s
        for s in sources
        if redo or not _have(results.get(s.key), s, job.model_sha, job.settings_sha)
    ]
    result.skipped = len(sources) - len(todo)
    if not todo:
        if not settle:
            log.info(f"nothing to detect: {result.skipped} recordings already in {out / LOG_DIR}")
            result.summary = _outputs(out, result, job.sink_copy)
        return
    _run_tasks(job, (job.task(s, names[s.key]) for s in todo), len(todo), result, live)
    close_writers()
    _recover(out, result)
    result.summary = _outputs(out, result, job.sink_copy)


def _run_tasks(
    job: _Job, tasks: Iterator[Task], n: int, result: DetectResult, live: LiveStatus
) -> None:
    """The tasks on the configured executor, each acknowledged as its record is durable."""
    kind = job.cfg.detect.executor
    workers = job.cfg.detect.workers  # Ray's default is the cluster's size
    if kind == "process":
        workers = pool_workers(workers, n)
    local_one = workers == 1 and kind == "process"  # one worker: this process, no spawn
    execu = make_executor("serial" if local_one else kind, workers, job.cfg.ray)
    # One worker reads the next recording in a thread while the model runs on this one.
    acks = detect_ahead(tasks) if local_one else execu.map_unordered(detect_one, tasks)
    log.info(
        f"detecting on {n} recordings ({result.skipped} already done) with "
        f"{execu.workers} worker(s) into {job.out}"
    )
    plain = not is_terminal()
    done = result.skipped  # the status counts the recordings a resumed run had already done
    live.stage("detect", done, done + n)
    with (
        one_thread() if local_one or kind == "serial" else contextlib.nullcontext(),
        progress("detect", total=n, unit="recordings") as tick,
        contextlib.closing(acks),
    ):
        for k, ack in enumerate(acks, start=1):
            result.detected += 1
            live.stage("detect", done + k, done + n)
            note = (f"{ack['status']}, {ack['events']} events" if ack["status"] == "done"
                    else f"failed: {ack['error']}")  # fmt: skip
            if plain:  # one line per acknowledged record: a log says exactly what is safe
                log.info(f"detect: acknowledged {k}/{n} {redact(ack['recording'])} ({note})")
            tick.advance(1)


def collect(sources: list[str], out: Path, sink_url: str | None = None) -> DetectResult:
    """Merge the record logs of detect output directories and sink URLs into ``out``'s
    outputs (one result per recording, the newest); the logs are only read. A directory's
    segments pruned into a sink are read from ``sink_url`` or a URL among ``sources``."""
    out = writable_dir(out, "--out")
    check_inside(out)
    loaded = Loaded()
    for source in sources:
        if "://" in source:
            loaded += load_url(source)
        elif not (Path(source) / LOG_DIR).is_dir():
            why = f"{source}: no {LOG_DIR}/ directory (not a detect output); nothing read"
            loaded += Loaded(warnings=[why], lost=1)
        else:
            named = [s for s in sources if "://" in s]
            loaded += _records(Path(source), [*named, sink_url or ""])
    result = DetectResult(out, Summary(), lost=loaded.lost)
    if loaded.lost:
        loaded.warnings.append(f"{loaded.lost} source(s), log stretch(es) or record(s) could "
                               "not be used (said above): the merged results may lack "
                               "recordings")  # fmt: skip
    result.say(loaded.warnings)
    result.summary = write_outputs(out, newest(loaded.records), result.warnings)
    return result


def _prune(out: Path, dest: str) -> None:
    """Delete local sealed segments whose copy in the sink has their size and sha256."""
    import hashlib

    from ictal.io.atomic import atomic_write_text
    from ictal.io.storage import open_url

    fs, root = open_url(dest, "sink.url")
    removed = 0
    atomic_write_text(out / LOG_DIR / PRUNED, dest + "\n")  # where the pruned ones are
    for path in sorted((out / LOG_DIR).glob(f"*{SEALED}")):
        remote = f"{root}/{LOG_DIR}/{path.name}"
        try:
            data = fs.cat_file(remote)
        except Exception as exc:  # keep the local copy; say why
            log.warning(f"{path.name} kept: its copy in the sink cannot be read ({exc})")
            continue
        if len(data) == path.stat().st_size and hashlib.sha256(data).hexdigest() == file_sha256(
            path
        ):
            path.unlink()
            removed += 1
        else:
            log.warning(f"{path.name} kept: its copy in the sink differs")
    log.info(f"pruned {removed} sealed segment(s) verified in {redact(dest)}")
