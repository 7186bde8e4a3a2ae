"""One run from start to end: every long command (train, evaluate, detect, bench with a sink)
lives its run directory through this object, so each does it the same way.

Opening a session decides the directory (a new run under runs.root, a run being resumed, an
output directory used again, an evaluation directory), checks the sink before anything is
written there, and writes run.json and the frozen config once. Entering it takes the lock,
records a resume, copies the log into the run and starts the heartbeat and the push.
Leaving it writes the final state (done, or what the exception says: stopped for an
interrupt, failed for anything else), then the final push, whose outcome it keeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from ictal.config import Config
from ictal.ids import new_run_id
from ictal.io.atomic import atomic_write_json, atomic_write_text
from ictal.io.lock import FileLock
from ictal.runs.directory import RunDir, RunState, create_run, log_to_file, run_lock
from ictal.runs.heartbeat import LiveStatus
from ictal.runs.meta import read_run_json, record_resume, run_metadata
from ictal.runs.pusher import PushOutcome
from ictal.runs.sink import check_sink
from ictal.runs.watch import RunWatch

INTERRUPTED = "interrupted; the same command resumes"


class RunSession:
    """A run directory owned by this process for the duration of a ``with`` block."""

    def __init__(
        self,
        cfg: Config,
        run: RunDir,
        live: LiveStatus,
        *,
        sink_name: str,
        heartbeat: Path | None = None,
        lock: FileLock | None = None,
        log: bool = False,
        resumed_on: str | None = None,
        exclude: Callable[[str], bool] | None = None,
        owner: bool = True,
    ) -> None:
        self.cfg = cfg
        self.run = run
        self.live = live
        self.sink_name = sink_name
        self.heartbeat = heartbeat or run.heartbeat
        self.lock = lock
        self.log = log
        self.resumed_on = resumed_on  # the device of a resume, recorded in run.json
        self.exclude = exclude
        self.owner = owner  # False on ranks other than 0: they only keep a live status
        self.watch: RunWatch | None = None
        self.push: PushOutcome | None = None  # the final push, when there is a sink
        self._state: RunState | None = None
        self._stack = contextlib.ExitStack()

    # ------------------------------------------------------------------ opening

    @classmethod
    def new(cls, cfg: Config, meta: dict[str, Any], live: dict[str, Any]) -> RunSession:
        """A new run under runs.root: the sink is checked, then the directory is made with
        its frozen config and run.json (``meta``)."""
        run_id = new_run_id()
        _check_sink(cfg, run_id)
        run = create_run(cfg, meta, run_id)
        return cls(cfg, run, LiveStatus(run.run_id, cfg.train.heartbeat_s, **live),
                   sink_name=run.run_id, lock=run_lock(run), log=True)  # fmt: skip

    @classmethod
    def resume(cls, cfg: Config, run: RunDir, device: str, live: dict[str, Any]) -> RunSession:
        """A run continued: the sink is checked; the resume is recorded once it is locked."""
        _check_sink(cfg, run.run_id)
        return cls(cfg, run, LiveStatus(run.run_id, cfg.train.heartbeat_s, **live),
                   sink_name=run.run_id, lock=run_lock(run), log=True,
                   resumed_on=device)  # fmt: skip

    @classmethod
    def follower(cls, cfg: Config, run: RunDir, live: dict[str, Any]) -> RunSession:
        """Another rank's view of rank 0's run: a live status, nothing written."""
        return cls(cfg, run, LiveStatus(run.run_id, cfg.train.heartbeat_s, **live),
                   sink_name=run.run_id, owner=False)  # fmt: skip

    @property
    def sink_copy(self) -> str | None:
        """Where this run's files are pushed (``sink.url/<name>``); None without a sink."""
        url = self.cfg.sink.url
        return f"{str(url).rstrip('/')}/{self.sink_name}" if url else None

    @classmethod
    def output(
        cls,
        cfg: Config,
        out: Path,
        identity: dict[str, Any],
        live: dict[str, Any],
        lock: FileLock,
        exclude: Callable[[str], bool] | None = None,
    ) -> RunSession:
        """A directory the user names and uses again (``detect --out``): locked first, its
        run.json written the first time (its run id names it in the sink), a resume
        recorded every later time."""
        run = RunDir(out)
        lock.acquire()
        try:
            meta = read_run_json(run.run_json)
            run_id = str(meta.get("run_id") or "") or new_run_id()
            _check_sink(cfg, run_id)
            if not meta.get("run_id"):
                atomic_write_text(run.config, cfg.to_yaml())
                atomic_write_json(run.run_json, {**run_metadata("cpu", **identity),
                                                 "run_id": run_id})  # fmt: skip
                resumed = None
            else:
                resumed = "cpu"
        except BaseException:
            lock.release()
            raise
        session = cls(cfg, run, LiveStatus(run_id, cfg.train.heartbeat_s, **live),
                      sink_name=run_id, resumed_on=resumed, exclude=exclude)  # fmt: skip
        session._stack.callback(lock.release)
        return session

    @classmethod
    def evaluation(
        cls, cfg: Config, out: Path, heartbeat: Path, run_id: str, live: dict[str, Any]
    ) -> RunSession:
        """An evaluation directory: pushed inside its run in the sink (``<run id>/<name>``);
        its heartbeat says how the evaluation went."""
        sink_name = f"{run_id}/{out.name}" if run_id else out.name
        _check_sink(cfg, sink_name)
        return cls(cfg, RunDir(out), LiveStatus(run_id, cfg.train.heartbeat_s, **live),
                   sink_name=sink_name, heartbeat=heartbeat)  # fmt: skip

    # ------------------------------------------------------------------ living

    def __enter__(self) -> RunSession:
        try:
            if self.lock is not None:
                self._stack.enter_context(self.lock)
            if self.owner and self.resumed_on is not None:
                record_resume(self.run.run_json, self.resumed_on)
            if self.log:
                self._stack.enter_context(log_to_file(self.run.log))
            if self.owner:  # first heartbeat and first push now: visible from anywhere
                self.watch = RunWatch(self.run.path, self.heartbeat, self.live, self.cfg.sink,
                                      self.sink_name, exclude=self.exclude).start()  # fmt: skip
        except BaseException:
            self._stack.close()
            raise
        return self

    def ended(self, state: RunState) -> None:
        """The state the work ended in without an exception (a stop that checkpointed)."""
        self._state = state

    def checkpointed(self) -> None:
        """A checkpoint was written: its time in the heartbeat, and pushed soon."""
        if self.watch is not None:
            self.watch.checkpointed()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        error = None
        if exc is None:
            state = self._state or RunState.DONE
        elif isinstance(exc, KeyboardInterrupt):
            state, error = RunState.STOPPED, INTERRUPTED
        else:
            state, error = RunState.FAILED, f"{type(exc).__name__}: {exc}"
        try:
            if self.watch is not None:  # final heartbeat, then the final push, marker last
                outcome = self.watch.finish(state, error)
                self.push = outcome if self.cfg.sink.url else None
        finally:
            self._stack.close()


def _check_sink(cfg: Config, name: str) -> None:
    """Before anything is written there: the sink takes a write (a refusal names it)."""
    if cfg.sink.url:
        check_sink(cfg.sink.url, name)
