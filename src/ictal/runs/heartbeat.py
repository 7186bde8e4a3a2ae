"""Heartbeat: a background thread writes heartbeat.json atomically every few seconds, in every
phase of every long command, so a long validation or inference never looks like a hang and a
dead process is visible as stale.

The command only updates a shared ``LiveStatus`` (steps of training, or the stage and items
done of a pass such as inference); rates (samples/s, data-wait fraction) are computed here
from cumulative counters between two beats. ``ictal status`` reads the same fields for all.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import psutil

from ictal.io.atomic import atomic_write_json
from ictal.io.jsonable import jsonable
from ictal.io.untrusted import UnreadableInput, loads_json, read_bytes
from ictal.machine import usable_cpus
from ictal.runs.directory import FINAL_STATES, RunState
from ictal.ui import log


@dataclass
class LiveStatus:
    """What the loop is doing now; updated by the loop, read by the heartbeat thread."""

    run_id: str
    heartbeat_s: float
    command: str = "train"
    state: str = RunState.RUNNING
    phase: str = "starting"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    lr: float | None = None
    samples: int = 0  # cumulative samples trained by this process
    wait_s: float = 0.0  # cumulative seconds spent waiting for batches
    val_batches: int | None = None
    val_total: int | None = None
    last_checkpoint_time: float | None = None
    error: str | None = None
    push_url: str | None = None  # the sink this run is pushed to (redacted), when there is one
    push_ok_at: float | None = None  # when the last push of every change succeeded
    push_failures: int = 0
    push_error: str | None = None  # the last push failure, while it lasts
    tracker_errors: int = 0  # events an experiment tracker (W&B, MLflow) failed to take
    tracker_error: str | None = None  # the last of those failures
    started_at: float = field(default_factory=time.time)
    detail: dict[str, Any] = field(default_factory=dict)  # phase-specific fields, flattened
    step_changed_at: float = field(default_factory=time.time)
    progress_at: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **values: Any) -> None:
        """Set fields; a new step (or validation batch) counts as progress."""
        now = time.time()
        with self._lock:
            if "step" in values and values["step"] != self.step:
                self.step_changed_at = now
                self.progress_at = now
            elif "val_batches" in values and values["val_batches"] != self.val_batches:
                self.progress_at = now
            for name, value in values.items():
                if not hasattr(self, name) or name.startswith("_"):
                    raise AttributeError(f"LiveStatus has no field {name!r}")
                setattr(self, name, value)

    def touch(self) -> None:
        """Mark progress that is not a new step (a batch inside a long evaluation pass)."""
        with self._lock:
            self.progress_at = time.time()

    def stage(self, name: str, done: int | None = None, total: int | None = None) -> None:
        """A pass of a long command (``inference``, ``scoring``...) and the items it has done:
        the phase becomes ``<command> <name>``, the step counts the items. A stage without
        counts (the final ``done``) keeps the last pass's: a finished command shows its work."""
        detail = {**self.snapshot()["detail"], "stage": name}
        counts: dict[str, int] = {}
        if total is not None:
            detail["items_total"] = counts["total_steps"] = total
        if done is not None:
            detail["items_done"] = counts["step"] = done
        phase = name if name == self.command else f"{self.command} {name}"
        self.update(phase=phase, detail=detail, **counts)
        self.touch()

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the fields (``detail`` copied too)."""
        with self._lock:
            snap = {f.name: getattr(self, f.name) for f in fields(self) if f.name[0] != "_"}
            snap["detail"] = dict(self.detail)
            return snap


class GpuStats:
    """GPU utilisation and memory: torch's counters, plus NVML (nvidia-ml-py) when importable."""

    def __init__(self) -> None:
        self._handle: Any = None
        self._error: str | None = None

    def _nvml_handle(self, index: int) -> Any:
        import pynvml

        if self._handle is None:
            pynvml.nvmlInit()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if visible:  # NVML numbers physical devices; map the visible index to one
                ids = [v.strip() for v in visible.split(",")]
                if index < len(ids) and ids[index].isdigit():
                    index = int(ids[index])
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return self._handle

    def __call__(self) -> dict[str, Any]:
        # torch's counters are this process's: one that never loaded torch (an ONNX detect)
        # holds nothing on a GPU through it, and importing it only to ask costs 1-2 s
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available():
            return {}
        out: dict[str, Any] = {
            "gpu_mem_allocated_gb": torch.cuda.memory_allocated() / 1e9,
            "gpu_mem_reserved_gb": torch.cuda.memory_reserved() / 1e9,
        }
        if self._error is not None:
            return {**out, "gpu_stats_error": self._error}
        try:
            import pynvml
        except ImportError:
            return out
        try:
            handle = self._nvml_handle(torch.cuda.current_device())
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except Exception as exc:  # NVML missing or driver mismatch: keep torch's numbers
            self._error = str(exc)
            return {**out, "gpu_stats_error": self._error}
        return {
            **out,
            "gpu_util_percent": float(util.gpu),
            "gpu_mem_used_gb": mem.used / 1e9,
            "gpu_mem_total_gb": mem.total / 1e9,
        }


class Heartbeat:
    """Thread that writes heartbeat.json every ``interval_s`` seconds until stopped."""

    def __init__(self, path: str | Path, live: LiveStatus, interval_s: float) -> None:
        self.path = Path(path)
        self.live = live
        self.interval_s = float(interval_s)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._proc = psutil.Process(self.pid)
        self._pid_started = self._proc.create_time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prev: tuple[float, int, float] | None = None
        self._warned = False
        self._write_lock = threading.Lock()
        self._gpu = GpuStats()
        self._proc.cpu_percent(None)  # prime: the next call reports usage since now
        psutil.cpu_percent(None)

    def payload(self) -> dict[str, Any]:
        """The heartbeat dict: status, rates since the last beat, machine use."""
        s = self.live.snapshot()
        now = time.time()
        samples_per_s = data_wait = None
        if self._prev is not None:
            t0, n0, w0 = self._prev
            dt = now - t0
            if dt > 0:
                samples_per_s = (s["samples"] - n0) / dt
                data_wait = min(1.0, max(0.0, (s["wait_s"] - w0) / dt))
        self._prev = (now, s["samples"], s["wait_s"])
        rss = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            try:
                rss += child.memory_info().rss
            except psutil.Error:
                continue
        ckpt = s.pop("last_checkpoint_time")
        pushed = s.pop("push_ok_at")
        started = s.pop("started_at")
        if not s["samples"]:  # a command that trains nothing (evaluate, detect): no rate
            samples_per_s = data_wait = None
        elif s["state"] != RunState.RUNNING and now > started:
            # The final beat: "since the last beat" would often be 0 (the work ended just
            # after it); this process's average says what the run did.
            samples_per_s = s["samples"] / (now - started)
        push_lag = None if not s["push_url"] else now - (pushed or started)
        beat = {
            **s.pop("detail"),
            **s,
            "time": now,
            "pid": self.pid,
            "pid_started": self._pid_started,
            "host": self.host,
            "samples_per_s": samples_per_s,
            "data_wait": data_wait,
            "checkpoint_age_s": None if ckpt is None else now - ckpt,
            "push_lag_s": push_lag,
            "last_checkpoint_time": ckpt,
            "cpu_percent": self._proc.cpu_percent(None),
            "system_cpu_percent": psutil.cpu_percent(None),
            "cpu_count": usable_cpus(),
            "rss_gb": rss / 1e9,
            "system_ram_percent": psutil.virtual_memory().percent,
            **self._gpu(),
        }
        return beat

    def beat(self) -> dict[str, Any] | None:
        """Write one heartbeat now; a write error is logged once and never stops training."""
        with self._write_lock:
            try:
                beat = self.payload()
                atomic_write_json(self.path, jsonable(beat))
                return beat
            except (OSError, ValueError, psutil.Error) as exc:
                if not self._warned:
                    log.warning(f"heartbeat {self.path} not written: {exc}")
                    self._warned = True
                return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def start(self) -> Heartbeat:
        """Write a first beat and start the thread."""
        self.beat()
        self._thread = threading.Thread(target=self._run, name="ictal-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self, state: str, error: str | None = None) -> None:
        """Stop the thread and write the final beat with ``state`` (done, failed, stopped)."""
        if state not in FINAL_STATES:
            raise ValueError(f"state must be one of {', '.join(FINAL_STATES)}, got {state!r}")
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.live.update(state=state, error=error)
        self.beat()


# A beat is a few KB; a bigger file or object is not one (it is never read whole).
MAX_HEARTBEAT_BYTES = 1 << 20


def read_heartbeat(path: str | Path) -> dict[str, Any] | None:
    """The last heartbeat written at ``path``, or None if missing or unreadable (not a
    regular file, over ``MAX_HEARTBEAT_BYTES``, not a JSON object)."""
    try:
        data = read_bytes(path, "heartbeat", MAX_HEARTBEAT_BYTES)
    except (OSError, UnreadableInput):
        return None
    return parse_heartbeat(data, str(path))


def parse_heartbeat(data: bytes, where: str) -> dict[str, Any] | None:
    """A heartbeat from its bytes (a local file or a pushed object fetched with at most
    ``MAX_HEARTBEAT_BYTES + 1`` bytes), or None when it is not one: too large, not JSON
    (nesting or numbers the parser cannot take included), not an object."""
    if len(data) > MAX_HEARTBEAT_BYTES:
        return None
    try:
        beat = loads_json(data, f"heartbeat {where}")
    except UnreadableInput:
        return None
    return beat if isinstance(beat, dict) else None
