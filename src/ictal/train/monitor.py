"""What the training loop reports and listens to: metrics and the experiment trackers,
input-bound warnings, and stop signals."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

from ictal.config import Config
from ictal.data.loader import DataWaitMeter
from ictal.machine import usable_cpus
from ictal.runs.directory import RunDir
from ictal.runs.heartbeat import LiveStatus
from ictal.runs.metrics import MetricsLog
from ictal.runs.trackers import Trackers
from ictal.ui import log


class Recorder:
    """Writes what the loop reports to metrics.jsonl and, from the same records, to the
    experiment trackers (TensorBoard, W&B, MLflow: runs/trackers.py); the live status is the
    run session's (heartbeat and push)."""

    def __init__(self, run: RunDir, live: LiveStatus, trackers: Trackers) -> None:
        self.live = live
        self.metrics = MetricsLog(run.metrics)
        self.trackers = trackers

    def write(self, record: dict[str, Any]) -> None:
        """One metrics line, then the same record to every tracker (queued, never waited)."""
        record = {**record, "time": time.time()}
        self.metrics.write(record)
        self.trackers.log(record)

    def close(self, state: str = "done") -> None:
        self.metrics.close()
        self.trackers.close(state)


class QuietRecorder:
    """The recorder of a rank other than 0: it writes nothing (rank 0 writes the run), but
    keeps the live status the loop updates."""

    def __init__(self, live: LiveStatus) -> None:
        self.live = live

    def write(self, record: dict[str, Any]) -> None:
        """Nothing: rank 0 writes the metrics."""

    def close(self, state: str = "done") -> None:
        """Nothing to close."""


class WaitWatch:
    """Says once per epoch when the loop waits for data too long, and which knob to turn."""

    def __init__(self, cfg: Config, workers: int, epoch: int) -> None:
        self.threshold = cfg.train.data_wait_warn
        self.every_s = max(30.0, cfg.train.heartbeat_s)
        self.workers = workers
        self.epoch = epoch
        self.warned = False
        self._t = time.monotonic()

    def check(self, meter: DataWaitMeter, *, final: bool = False) -> None:
        """Warn when the wait fraction since the epoch start exceeds train.data_wait_warn."""
        if self.warned or not (final or time.monotonic() - self._t >= self.every_s):
            return
        self._t = time.monotonic()
        fraction = meter.fraction()
        if fraction <= self.threshold:
            return
        self.warned = True
        cores = usable_cpus()
        if self.workers < cores - 1:
            knob = f"raise loader.num_workers (now {self.workers}, {cores} cores available)"
        else:
            knob = (
                f"loader.num_workers={self.workers} already uses the {cores} cores available: "
                "use a machine with more cores, faster local storage for cache.root, or a "
                "larger loader.prefetch_factor"
            )
        log.warning(
            f"epoch {self.epoch + 1} is input-bound: the loop waited for data "
            f"{fraction:.0%} of the time (train.data_wait_warn={self.threshold}); {knob}"
        )


class StopRequest:
    """SIGTERM/SIGINT set a flag the loop checks at each step boundary (a second SIGINT
    interrupts at once). Handlers are installed only in the main thread and restored."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        if self.requested:
            log.warning(
                f"received {signal.Signals(self.signum or 15).name}: checkpointed and stopped"
            )
