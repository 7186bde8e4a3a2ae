"""Experiment trackers (TensorBoard, Weights & Biases, MLflow) fed from the metric events of
metrics.jsonl: one path, so every tracker shows the values the run's own file holds.

A tracker that cannot start is found before training (`check`, at most 30 s each, exit 3, or
a warning with ``logging.required=false``). While training, events go through a queue to one
background thread: a tracker that fails or hangs never stops or slows a step; its failures
are counted in the heartbeat and the summary. The trackers' run ids are kept in the run
directory (trackers.json), so a resumed run continues the same tracker run, and each event a
tracker took is noted (trackers.delivered): a resume after a kill resends from metrics.jsonl
what the queue held when the process died. Credentials and endpoints come from the
environment as the libraries define them; nothing here prints them.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ictal.config import Config, flatten
from ictal.errors import PreflightError
from ictal.io.atomic import atomic_write_json
from ictal.io.redact import redact
from ictal.io.untrusted import UnreadableInput, read_json, regular_file
from ictal.runs.directory import RunDir
from ictal.runs.heartbeat import LiveStatus
from ictal.runs.metrics import read_metrics
from ictal.ui import log

CHECK_TIMEOUT_S = 30.0
ABANDONED = "failed"  # the state a tracker run opened too late is closed with
_SKIPPED = ("phase", "epoch", "step", "time", "step_in_epoch")
EXTRA = {"wandb": "ictal[wandb]", "mlflow": "ictal[mlflow]"}


class TrackerError(PreflightError):
    """A tracker that cannot start (exit 3): the reason and the fix."""


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record's numeric values as ``phase/name`` scalars."""
    phase = record["phase"]
    return {
        f"{phase}/{k}": float(v)
        for k, v in record.items()
        if k not in _SKIPPED
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
    }


def run_params(cfg: Config, run_id: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config (credentials masked) and the run's identity as flat tracker parameters."""
    return {"ictal.run_id": run_id, **(extra or {}), **flatten(cfg.stored(), keep_empty=False)}


# ------------------------------------------------------------------------------- trackers


class TensorBoard:
    """TensorBoard event files in the run directory (``tb/``)."""

    name = "tensorboard"
    buffered = True  # an event is on disk only after a flush (each validation, the close)

    def __init__(self, cfg: Config) -> None:
        self.writer: Any = None

    def start(self, run: RunDir, params: dict[str, Any], resume: str | None, step: int) -> str:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run.tb), purge_step=step + 1 if step else None)
        return ""

    def log(self, step: int, values: dict[str, float], flush: bool) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        if flush:
            self.writer.flush()

    def close(self, state: str) -> None:
        if self.writer is not None:
            self.writer.close()


class Wandb:
    """A W&B run named after the Ictal run; its id is the run id, so a resume continues it."""

    name = "wandb"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg.logging.wandb
        self.run: Any = None

    def start(self, run: RunDir, params: dict[str, Any], resume: str | None, step: int) -> str:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        where = os.environ.get("WANDB_DIR") or str(run.path)
        self.run = wandb.init(
            project=self.cfg.project,
            entity=self.cfg.entity,
            id=resume or run.path.name,
            name=run.path.name,
            resume="allow",
            dir=where,
            config=params,
            settings=wandb.Settings(init_timeout=CHECK_TIMEOUT_S, console="off"),
        )
        return str(self.run.id)

    def log(self, step: int, values: dict[str, float], flush: bool) -> None:
        self.run.log(values, step=step)

    def close(self, state: str) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if state in ("done", "stopped") else 1)


class Mlflow:
    """An MLflow run in ``logging.mlflow.experiment`` of ``MLFLOW_TRACKING_URI``."""

    name = "mlflow"

    def __init__(self, cfg: Config) -> None:
        self.experiment = cfg.logging.mlflow.experiment
        self.client: Any = None
        self.run_id = ""

    def start(self, run: RunDir, params: dict[str, Any], resume: str | None, step: int) -> str:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        if resume:
            self.client.update_run(resume, status="RUNNING")
            self.run_id = resume
            return resume
        found = self.client.get_experiment_by_name(self.experiment)
        exp = found.experiment_id if found else self.client.create_experiment(self.experiment)
        made = self.client.create_run(exp, run_name=run.path.name,
                                      tags={"ictal.run_id": run.path.name})  # fmt: skip
        self.run_id = made.info.run_id
        shown = [Param(k[:250], str(v)[:500]) for k, v in params.items()]
        for i in range(0, len(shown), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=shown[i : i + 100])
        return self.run_id

    def log(self, step: int, values: dict[str, float], flush: bool) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, state: str) -> None:
        if self.client is not None and self.run_id:
            status = {"done": "FINISHED", "stopped": "KILLED"}.get(state, "FAILED")
            self.client.set_terminated(self.run_id, status=status)


KINDS: dict[str, Callable[[Config], Any]] = {
    "tensorboard": TensorBoard,
    "wandb": Wandb,
    "mlflow": Mlflow,
}


# --------------------------------------------------------------------------- the check


def _limits() -> None:
    """Fail fast rather than retry for minutes, unless the user said otherwise."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _check_wandb(cfg: Config) -> None:
    import wandb

    mode = os.environ.get("WANDB_MODE", "online").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return
    try:
        api = wandb.Api(timeout=int(CHECK_TIMEOUT_S) - 5)
        key = os.environ.get("WANDB_API_KEY") or api.api_key
    except Exception:
        key = None
    if not key:
        raise TrackerError(
            "W&B has no credentials (WANDB_MODE is online and no API key is set)",
            "set WANDB_API_KEY (or run `wandb login`), or WANDB_MODE=offline to log locally",
        )
    api = wandb.Api(timeout=int(CHECK_TIMEOUT_S) - 5)
    viewer = api.viewer
    entity = cfg.logging.wandb.entity
    if entity:
        teams = set(getattr(viewer, "teams", None) or []) | {getattr(viewer, "entity", None)}
        if entity not in teams:
            raise TrackerError(
                f"W&B entity {entity!r} is not yours nor one of your teams",
                "fix logging.wandb.entity (or leave it out for your default entity)",
            )


def _check_mlflow(cfg: Config) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().search_experiments(max_results=1)


CHECKS: dict[str, Callable[[Config], None]] = {"wandb": _check_wandb, "mlflow": _check_mlflow}


def _within(
    fn: Callable[[], Any], seconds: float, late: Callable[[Any], None] | None = None
) -> tuple[Any, BaseException | None]:
    """Run ``fn`` in a daemon thread for at most ``seconds``: its value and None, or None and
    its exception or a timeout. When ``fn`` returns after the caller gave up, the thread hands
    the value to ``late`` (which undoes it: a tracker run opened too late is closed, never
    left open beside a training that goes on without it)."""
    lock = threading.Lock()
    outcome: list[tuple[Any, BaseException | None]] = []
    gave_up = False

    def target() -> None:
        try:
            result: tuple[Any, BaseException | None] = (fn(), None)
        except BaseException as exc:
            result = (None, exc)
        with lock:
            if not gave_up:
                outcome.append(result)
                return
        if result[1] is None and late is not None:
            with contextlib.suppress(Exception):
                late(result[0])

    thread = threading.Thread(target=target, daemon=True, name="ictal-tracker-call")
    thread.start()
    thread.join(seconds)
    with lock:
        if outcome:
            return outcome[0]
        gave_up = True
    return None, TimeoutError(f"no answer within {seconds:.0f} s")


def _refusal(name: str, exc: BaseException) -> TrackerError:
    if isinstance(exc, TrackerError):
        return exc
    if isinstance(exc, ImportError):
        return TrackerError(
            f"logging.loggers names {name}, but its package is not installed ({exc})",
            f"pip install '{EXTRA[name]}' (or drop {name} from logging.loggers)",
        )
    detail = redact(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300]
    where = {"mlflow": "MLFLOW_TRACKING_URI", "wandb": "WANDB_BASE_URL / WANDB_API_KEY"}[name]
    return TrackerError(
        f"{name} cannot start: {detail}",
        f"check {where} and logging.{name}, or set logging.required=false to train without it",
    )


def check(cfg: Config) -> list[str]:
    """Check every configured tracker before training; returns the usable names. A tracker
    that cannot start is a refusal (exit 3) or, with logging.required=false, a warning."""
    _limits()
    usable = []
    for name in cfg.logging.loggers:
        problem = None if name not in CHECKS else _within(
            lambda name=name: CHECKS[name](cfg), CHECK_TIMEOUT_S
        )[1]  # fmt: skip
        if problem is None:
            usable.append(name)
            continue
        refusal = _refusal(name, problem)
        if cfg.logging.required:
            raise refusal
        log.warning(f"{refusal.problem} (logging.required=false: training without {name})")
    return usable


# ------------------------------------------------------------------------- the fan-out


def read_ids(run: RunDir) -> dict[str, str]:
    """The tracker run ids a run directory keeps (empty when none or unreadable)."""
    try:
        doc = read_json(run.trackers, "trackers.json", 1 << 20)
    except (OSError, UnreadableInput):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: v for k, v in doc.items() if k in KINDS and isinstance(v, str)}


class Trackers:
    """The run's trackers behind one queue and one thread: `log` never blocks a step."""

    def __init__(self, names: list[str], cfg: Config, live: LiveStatus) -> None:
        self.cfg = cfg
        self.live = live
        self.active = [KINDS[n](cfg) for n in names]
        self.errors = 0
        self.last_error: str | None = None
        self._queue: queue.Queue[_Event | None] = queue.Queue(10_000)
        self._thread: threading.Thread | None = None
        self._notes: Any = None  # trackers.delivered, appended to by the delivery thread
        self._last: dict[str, int] = {}  # each tracker's last step handed to it
        self._took: dict[str, int] | None = None  # the notes as the start found them

    def _failed(self, tracker: Any, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = redact(f"{tracker.name}: {type(exc).__name__}: {exc}")[:300]
        self.live.update(tracker_errors=self.errors, tracker_error=self.last_error)

    def start(self, run: RunDir, params: dict[str, Any], step: int) -> None:
        """Start every tracker (continuing the run's tracker runs) and the delivery thread."""
        ids = read_ids(run)
        started = []
        for tracker in self.active:
            tracker_id, problem = _within(
                lambda t=tracker: t.start(run, params, ids.get(t.name), step),
                CHECK_TIMEOUT_S,
                late=lambda opened, t=tracker: _abandon(t, opened),
            )
            if problem is None:
                ids[tracker.name] = tracker_id
                started.append(tracker)
                continue
            refusal = _refusal(tracker.name, problem)
            if self.cfg.logging.required:
                raise refusal
            self._failed(tracker, problem)
            log.warning(f"{refusal.problem} (logging.required=false: training without it)")
        self.active = started
        atomic_write_json(run.trackers, {k: v for k, v in ids.items() if v})
        self._took = delivered_steps(run)  # before the notes are opened (and so created)
        self._notes = _open_notes(run.delivered)
        self._thread = threading.Thread(target=self._deliver, daemon=True, name="ictal-trackers")
        self._thread.start()

    def resend(self, run: RunDir, upto: int) -> int:
        """After ``start``: queue again, tracker by tracker, the metrics.jsonl records up to
        step ``upto`` (the checkpoint a resume starts from) after the last step each tracker
        took: the events a kill left in the queue. Returns how many were queued."""
        took = self._took
        if took is None:  # a run from before the notes: what its trackers got is unknown
            return 0
        records = [r for r in read_metrics(run.metrics) if isinstance(r.get("step"), int)]
        count = 0
        for tracker in self.active:
            after = took.get(tracker.name, 0)
            for record in records:
                if after < record["step"] <= upto and isinstance(record.get("phase"), str):
                    self._put(_event(record, tracker.name))
                    count += 1
        return count

    def log(self, record: dict[str, Any]) -> None:
        """Queue one metrics record for every tracker (dropped and counted when full)."""
        if not self.active:
            return
        self._put(_event(record, None))

    def _put(self, event: _Event) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.errors += 1
            self.last_error = "the trackers fell behind: an event was dropped"
            self.live.update(tracker_errors=self.errors, tracker_error=self.last_error)

    def _deliver(self) -> None:
        while (item := self._queue.get()) is not None:
            step, values, flush, only = item
            for tracker in self.active:
                if only is not None and tracker.name != only:
                    continue
                try:
                    tracker.log(step, values, flush)
                except Exception as exc:  # a tracker's failure is counted, never raised
                    self._failed(tracker, exc)
                    continue
                self._last[tracker.name] = step
                if flush or not getattr(tracker, "buffered", False):
                    self._note(tracker.name, step)

    def _note(self, name: str, step: int) -> None:
        """Note that tracker ``name`` holds step ``step`` (no fsync: the line outlives a kill
        of this process, which is what it is for)."""
        if self._notes is not None:
            with contextlib.suppress(OSError, ValueError):
                self._notes.write(f"{name} {step}\n")
                self._notes.flush()

    def close(self, state: str, wait_s: float = CHECK_TIMEOUT_S) -> None:
        """Deliver what is queued (at most `wait_s`), then close every tracker; a buffered
        tracker closed cleanly holds every step it was given."""
        drained = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(wait_s)
            drained = not self._thread.is_alive()
        for tracker in self.active:
            problem = _within(lambda t=tracker: t.close(state), wait_s)[1]
            if problem is not None:
                self._failed(tracker, problem)
            elif drained and tracker.name in self._last:
                self._note(tracker.name, self._last[tracker.name])
        if drained and self._notes is not None:
            self._notes.close()


def _abandon(tracker: Any, opened: str) -> None:
    """Close a tracker run that started after the training stopped waiting for it (marked
    failed), so no run is left open in the tracker with nothing ever logged to it."""
    tracker.close(ABANDONED)
    shown = f" run {redact(opened)[:80]}" if opened else ""
    log.warning(f"{tracker.name} answered after {CHECK_TIMEOUT_S:.0f} s: its{shown} was closed "
                "as failed (the training went on without it)")  # fmt: skip


_Event = tuple[int, dict[str, float], bool, str | None]  # step, values, flush, one tracker


def _event(record: dict[str, Any], only: str | None) -> _Event:
    """A metrics record as a queued event (for every tracker, or ``only`` that one); an
    evaluation or validation record is flushed at once."""
    return int(record["step"]), scalars(record), record["phase"] != "train", only


def _open_notes(path: Path) -> Any:
    """The delivered-events file, opened for appending (None when it cannot be opened: a
    resume then resends what the notes it has leave out)."""
    try:  # a link planted in its place is refused, never followed
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        return os.fdopen(os.open(path, flags, 0o644), "a", encoding="utf-8")
    except OSError as exc:
        log.warning(f"{path}: not written ({exc}); a resume will not resend lost events")
        return None


_NOTES_TAIL = 16 << 20  # the notes' last 16 MiB (a million events) hold every latest step


def delivered_steps(run: RunDir) -> dict[str, int] | None:
    """The last step each tracker took, from the end of trackers.delivered; None when the
    run has no notes. A torn or foreign line is skipped: the file is the run's own, but it
    is read as untrusted like every other."""
    took: dict[str, int] = {}
    try:
        size = regular_file(run.delivered, "trackers' delivery notes").st_size
        with open(run.delivered, "rb") as fh:
            fh.seek(max(0, size - _NOTES_TAIL))
            data = fh.read(_NOTES_TAIL)
        if size > _NOTES_TAIL:  # the first line read is a part of one
            data = data.partition(b"\n")[2]
        text = data.decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except (OSError, UnreadableInput) as exc:
        log.warning(f"{run.delivered}: not read ({exc}); nothing is resent to the trackers")
        return None
    for line in text.splitlines():
        name, _, step = line.partition(" ")
        if name in KINDS and step.isdigit() and len(step) < 19:
            took[name] = max(took.get(name, 0), int(step))
    return took


def evaluation_record(split: str, scores: dict[str, Any], step: int) -> dict[str, Any]:
    """An evaluation's headline numbers as one metrics record: AUROC, and sensitivity and
    FA/24h of every scorer at every operating point (``eval-dev/ovlp/sensitivity_at_10fa``:
    names every tracker takes)."""
    out: dict[str, Any] = {"phase": f"eval-{split}", "step": step}
    if isinstance(scores.get("auroc"), int | float):
        out["auroc"] = float(scores["auroc"])
    points = (scores.get("operating_points") or {}).get("points") or {}
    for scorer, rows in points.items():
        for row in rows:
            counts = row.get("counts") or {}
            target = f"{float(row['target_fa_per_24h']):g}".replace(".", "_")
            for key in ("sensitivity", "fa_per_24h"):
                if isinstance(counts.get(key), int | float):
                    out[f"{scorer}/{key}_at_{target}fa"] = float(counts[key])
    return out


def log_evaluation(checkpoint: Path, split: str, scores: dict[str, Any]) -> None:
    """An evaluation of a run's checkpoint to that run's trackers (the same tracker runs, at
    the run's last step). Never fails the evaluation: a problem is a warning."""
    from ictal.config_file import load_config
    from ictal.runs.directory import CHECKPOINTS

    run = RunDir(checkpoint.parent.parent)
    if checkpoint.parent.name != CHECKPOINTS or not run.trackers.is_file():
        return
    try:
        cfg = load_config(run.config)
        steps = [r["step"] for r in read_metrics(run.metrics) if isinstance(r.get("step"), int)]
        step = max(steps, default=0)
        fan = Trackers(list(cfg.logging.loggers), cfg, LiveStatus(run.path.name, 60.0))
        fan.start(run, {}, step)
        fan.log(evaluation_record(split, scores, step))
        fan.close("done")
        if fan.errors:
            log.warning(
                f"trackers: {fan.errors} error(s) logging the evaluation ({fan.last_error})"
            )
    except Exception as exc:  # the scores are written: a tracker problem only warns
        log.warning(f"trackers: the evaluation was not logged ({redact(str(exc))[:300]})")
