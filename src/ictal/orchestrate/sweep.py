"""``ictal sweep``: a grid of ordinary training runs on one machine, admitted inside a resource
budget so the machine never freezes, each run its own ``ictal train`` child process.

- Every run gets a fixed share of the CPUs (torch threads and loader threads counted in the
  same budget, ``train.threads``, ``loader.num_workers``) and, on CUDA, of the GPU's memory.
- The capacity ramp: one run starts alone; once it is measured at steady state (its first
  validation, or ``sweep.ramp_steps`` steps) the sweep knows what a run takes (peak RSS of
  its process tree, GPU memory from its heartbeat) and admits more runs only while the
  measured usage of those running plus one more stays inside the budget, never more than
  ``--parallel``, and never while free memory is under ``sweep.memory_floor_gb``.
- A run that fails or is killed is recorded and its slot reused; the others go on. Children
  get SIGTERM when the sweep dies (even by SIGKILL), so they checkpoint; ``--resume NAME``
  continues the unfinished runs and skips the finished ones.
- ``sweep.json`` records every run (overrides, status, start and end, exit code, run
  directory, final metrics), written atomically as it changes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ictal.config import Config, ConfigError
from ictal.config_file import load_config
from ictal.errors import Ending, ExitCode, UnsafePathError, UsageError
from ictal.ids import new_run_id
from ictal.io.atomic import atomic_write_json
from ictal.io.lock import FileLock
from ictal.io.paths import is_safe_name, writable_dir
from ictal.io.redact import redact
from ictal.io.untrusted import UnreadableInput, read_json
from ictal.orchestrate.budget import GB, Budget, run_share, split_share
from ictal.orchestrate.grid import MEMBER_NAME, grid, member_name
from ictal.parallel import supervisor
from ictal.runs.directory import SWEEP_JSON, RunDir, RunState
from ictal.runs.heartbeat import read_heartbeat
from ictal.runs.metrics import read_metrics
from ictal.ui import log, progress

CHILD_LOG = "train.out"
LOG_TAIL_BYTES = 64 << 10  # how much of the end of a child's log is searched for its error
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Member:
    """One run of the sweep, as sweep.json records it."""

    name: str
    overrides: list[str]
    status: str = "queued"  # queued | running | done | failed
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    run_dir: str | None = None
    metrics: dict[str, Any] | None = None
    error: str | None = None
    peak_rss_gb: float | None = None
    steady: bool = False


@dataclass
class Plan:
    """The sweep on disk: its directory, how children are started, and its runs."""

    directory: Path
    base_config: str | None
    base_sets: list[str]
    members: list[Member]
    budget: Budget
    created: float = field(default_factory=time.time)

    @property
    def ending(self) -> Ending:
        """Partial when a run did not finish (the table says which and why)."""
        return Ending.PARTIAL if any(m.status != "done" for m in self.members) else Ending.DONE

    def save(self) -> None:
        doc = {
            "name": self.directory.name,
            "created": self.created,
            "base": {"config": self.base_config, "sets": [redact(s) for s in self.base_sets]},
            "budget": asdict(self.budget),
            "runs": [asdict(m) for m in self.members],
        }
        atomic_write_json(self.directory / SWEEP_JSON, doc)


class Sweep:
    """The admission loop over a plan's members."""

    def __init__(self, plan: Plan, cfg: Config) -> None:
        self.plan = plan
        self.cfg = cfg
        self.procs: dict[str, subprocess.Popen] = {}
        self.resume: set[str] = set()
        self.share = run_share(plan.budget, len(plan.members))  # CPUs of one run
        self.floor_said = False

    # ----------------------------------------------------------------- child processes

    def _args(self, m: Member) -> list[str]:
        slot = self.plan.directory / m.name
        threads, loader = split_share(self.share)
        fixed = [f"runs.root={slot}", f"train.threads={threads}", f"loader.num_workers={loader}"]
        gpu = self.plan.budget.gpu_memory_gb
        if gpu:
            import torch

            total = torch.cuda.get_device_properties(0).total_memory / GB
            slots = self.plan.budget.parallel or self.plan.budget.cpus
            fixed.append(f"train.gpu_memory_fraction={min(1.0, gpu / total / slots):.4f}")
        base = ["-c", self.plan.base_config] if self.plan.base_config else []
        sets = [*self.plan.base_sets, *fixed, *m.overrides]
        return [*base, *[a for s in sets for a in ("--set", s)]]

    def _launch(self, m: Member) -> None:
        slot = self.plan.directory / m.name
        slot.mkdir(parents=True, exist_ok=True)
        self._wait_unlocked(slot)
        if m.name in self.resume and self.adopt_finished(m):
            return  # its earlier child finished while being waited for
        args = [sys.executable, "-m", "ictal.cli", "train", *self._args(m)]
        if m.name in self.resume:
            args.append("--resume")
        env = {**os.environ, **dict.fromkeys(THREAD_ENV, str(split_share(self.share)[0]))}
        with open(slot / CHILD_LOG, "ab") as out:  # SIGTERM when the sweep dies: resumable
            proc = supervisor.start(args, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env)  # fmt: skip
        self.procs[m.name] = proc
        m.status, m.started, m.ended, m.exit_code, m.error = (
            "running",
            time.time(),
            None,
            None,
            None,
        )
        m.steady = False
        log.info(f"sweep: started {m.name} (pid {proc.pid}; {self._usage_text()})")

    def _wait_unlocked(self, slot: Path, timeout_s: float = 120.0) -> None:
        """A run still held by the child of an earlier, killed sweep (it is checkpointing
        after its SIGTERM): wait for it before resuming it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(
            RunDir(p).locked for p in slot.iterdir() if RunDir(p).config.is_file()
        ):
            time.sleep(0.2)

    def _rss_gb(self, proc: subprocess.Popen) -> float:
        return supervisor.tree_rss(proc.pid) / GB

    def _run_dir(self, m: Member) -> RunDir | None:
        slot = self.plan.directory / m.name
        if not slot.is_dir():
            return None
        runs = sorted(p for p in slot.iterdir() if RunDir(p).config.is_file())
        return RunDir(runs[-1]) if runs else None

    def _steady(self, m: Member) -> bool:
        run = self._run_dir(m)
        if run is None:
            return False
        beat = read_heartbeat(run.heartbeat) or {}
        if beat.get("phase") == "validate" or beat.get("state") in ("done", "failed", "stopped"):
            return True
        step = beat.get("step")
        if isinstance(step, int) and step >= self.cfg.sweep.ramp_steps:
            return True
        return any(r.get("phase") == "validate" for r in read_metrics(run.metrics))

    def adopt_finished(self, m: Member) -> bool:
        """Record ``m`` done when its run finished while sweep.json could not say so (the
        sweep was killed before it reaped the run, or recorded an exit code other than 0), as
        the run's own directory says (its final heartbeat ``done``, its metrics); whether it
        did. Such a run is never trained again."""
        run = self._run_dir(m)
        if run is None or run.locked:
            return False
        beat = read_heartbeat(run.heartbeat) or {}
        metrics = final_metrics(run.path)
        if beat.get("state") != RunState.DONE or metrics is None:
            return False
        ended = beat.get("time")
        m.status, m.run_dir, m.metrics, m.error = "done", str(run.path), metrics, None
        m.ended = float(ended) if isinstance(ended, int | float) else m.ended
        log.info(f"sweep: {m.name} had finished ({run.path}), not run again")
        return True

    def _gpu_gb(self, m: Member) -> float:
        run = self._run_dir(m)
        beat = read_heartbeat(run.heartbeat) if run is not None else None
        value = (beat or {}).get("gpu_mem_reserved_gb")
        return float(value) if isinstance(value, int | float) else 0.0

    # ----------------------------------------------------------------- admission

    def _estimate(self) -> float | None:
        """What one run takes: the largest peak RSS measured at steady state so far."""
        measured = [m.peak_rss_gb for m in self.plan.members if m.steady and m.peak_rss_gb]
        return max(measured) if measured else None

    def _usage_text(self) -> str:
        est = self._estimate()
        measured = f"one run measured at {est:.2f} GB" if est else "no run measured yet"
        return (
            f"{len(self.procs)} running, {measured}, budget {self.plan.budget.memory_gb:.1f} GB, "
            f"{self.plan.budget.cpus} CPUs"
        )

    def _may_admit(self) -> bool:
        b = self.plan.budget
        running = [m for m in self.plan.members if m.name in self.procs]
        if b.parallel is not None and len(running) >= b.parallel:
            return False
        if (len(running) + 1) * self.share > b.cpus:
            return False
        if not running:
            return True
        estimate = self._estimate()
        if estimate is None:
            return False  # the ramp: wait until the first run is measured
        need = sum(max(m.peak_rss_gb or 0.0, estimate) for m in running) + estimate
        if need > b.memory_gb:
            return False
        if b.gpu_memory_gb:
            gpu = [self._gpu_gb(m) for m in running]
            if sum(gpu) + max(gpu, default=0.0) > b.gpu_memory_gb:
                return False
        free = psutil.virtual_memory().available / GB
        if free < self.cfg.sweep.memory_floor_gb:
            if not self.floor_said:
                floor = self.cfg.sweep.memory_floor_gb
                log.warning(
                    f"sweep: free memory {free:.1f} GB is under sweep.memory_floor_gb={floor}: "
                    "no more runs admitted for now"
                )
                self.floor_said = True
            return False
        self.floor_said = False
        return True

    # ----------------------------------------------------------------- the loop

    def _reap(self) -> bool:
        changed = False
        for m in self.plan.members:
            proc = self.procs.get(m.name)
            if proc is None:
                continue
            if not m.steady:
                m.peak_rss_gb = max(m.peak_rss_gb or 0.0, self._rss_gb(proc))
                if self._steady(m):
                    m.steady = True
                    changed = True
                    log.info(f"sweep: {m.name} at steady state, {m.peak_rss_gb:.2f} GB")
            else:
                m.peak_rss_gb = max(m.peak_rss_gb or 0.0, self._rss_gb(proc))
            code = proc.poll()
            if code is None:
                continue
            del self.procs[m.name]
            m.ended, m.exit_code = time.time(), code
            m.status = "done" if code == 0 else "failed"
            run = self._run_dir(m)
            m.run_dir = str(run.path) if run is not None else None
            m.metrics = final_metrics(run.path) if run is not None else None
            if code != 0:
                m.error = _last_error(self.plan.directory / m.name / CHILD_LOG, code)
                log.warning(f"sweep: {m.name} failed (exit {code}): {m.error}")
            else:
                log.info(f"sweep: {m.name} done ({_outcome(m.metrics or {})})")
            changed = True
        return changed

    def run(self) -> None:
        """Admit, watch and reap until every run has ended (SIGTERM: children stopped too)."""
        queue = [m for m in self.plan.members if m.status in ("queued", "running")]
        for m in queue:
            m.status = "queued"
        self.plan.save()
        try:
            while queue or self.procs:
                changed = self._reap()
                while queue and self._may_admit():
                    self._launch(queue.pop(0))
                    changed = True
                if changed:
                    self.plan.save()
                time.sleep(self.cfg.sweep.poll_s)
        except BaseException:
            self._stop_children()
            raise
        finally:
            self.plan.save()

    def _stop_children(self) -> None:
        """SIGTERM to every run (each checkpoints and stops), SIGKILL after the grace."""
        supervisor.stop(*self.procs.values())
        self._reap()


def final_metrics(run: Path) -> dict[str, Any] | None:
    """The run's best validation loss (with its epoch and AUROC) and its last step."""
    rows = read_metrics(RunDir(run).metrics)
    vals = [
        r for r in rows if r.get("phase") == "validate" and isinstance(r.get("val_loss"), float)
    ]
    steps = [r.get("step") for r in rows if isinstance(r.get("step"), int)]
    if not vals:
        return {"steps": max(steps, default=0)} if steps else None
    best = min(vals, key=lambda r: r["val_loss"])
    return {"best_val_loss": best["val_loss"], "best_epoch": best.get("epoch"),
            "val_auroc": best.get("val_auroc"), "steps": max(steps, default=0)}  # fmt: skip


def _outcome(metrics: dict[str, Any]) -> str:
    """A finished run's metrics for the log: its best dev loss with its epoch counted from 1
    (as ``ictal train`` says it), AUROC and steps."""
    parts = []
    if isinstance(metrics.get("best_val_loss"), float):
        epoch = metrics.get("best_epoch")
        at = f" at epoch {epoch + 1}" if isinstance(epoch, int) else ""
        parts.append(f"best val loss {metrics['best_val_loss']:.4f}{at}")
    if isinstance(metrics.get("val_auroc"), float):
        parts.append(f"AUROC {metrics['val_auroc']:.3f}")
    parts.append(f"{metrics.get('steps', 0)} steps")
    return ", ".join(parts)


def _last_error(path: Path, code: int) -> str:
    """The last error line a child printed, or what its exit code means."""
    try:
        with open(path, "rb") as fh:  # the end of the log only: a child may print gigabytes
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return redact(errors[-1][len("error:") :].strip())[:300]
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code == ExitCode.INTERRUPTED:
        return "interrupted (SIGINT or SIGTERM); ictal sweep --resume continues it"
    return f"exit code {code}"


def check_name(name: str) -> None:
    """Refuse a sweep name that is not a plain directory name (it becomes one under runs.root)."""
    if not is_safe_name(name) or len(name) > 100:
        raise UsageError(f"--name {name[:100]!r}: use a plain name of letters, digits, '_', '-' "
                         "and '.' (at most 100 characters, not starting with '.')")  # fmt: skip


def plan_sweep(
    cfg: Config,
    root: Path,
    name: str,
    base_config: Path | None,
    base_sets: list[str],
    varies: list[str],
    seeds: int | None,
    budget: Budget,
) -> Plan:
    """A new sweep: its directory and runs; a run whose values do not make a valid config
    is failed at once (never started) and the others go on."""
    check_name(name)
    directory = root / name
    if (directory / SWEEP_JSON).exists():
        raise UsageError(
            f"a sweep named {name} exists in {root}: continue it with `ictal sweep --resume "
            f"{name}`, or give another --name"
        )
    combos = grid(varies, seeds)
    run_share(budget, len(combos))
    members = []
    with progress("sweep plan", total=len(combos), every_s=5.0, unit="combinations") as tick:
        for k, overrides in enumerate(combos):
            m = Member(member_name(k, overrides), overrides)
            try:
                load_config(base_config, [*base_sets, *overrides])
            except ConfigError as exc:
                m.status, m.error = "failed", " ".join(str(exc).split())
            members.append(m)
            tick.advance()
    directory.mkdir(parents=True, exist_ok=True)
    config = str(base_config.resolve()) if base_config is not None else None
    return Plan(directory, config, list(base_sets), members, budget)


def open_sweep(
    cfg: Config,
    budget: Budget,
    *,
    name: str | None,
    resume: str | None,
    base_config: Path | None,
    base_sets: list[str],
    varies: list[str],
    seeds: int | None,
) -> Plan:
    """The sweep a command asks for: ``resume`` continues one as it was planned; otherwise a
    new one named ``name`` (default: a run id) under runs.root."""
    root = writable_dir(cfg.runs.root, "runs.root")
    if resume is not None:
        if varies or seeds:
            raise UsageError(
                "--resume continues a sweep as it was planned: drop --vary and --seeds"
            )
        return load_plan(root, resume, budget)
    label = name or f"sweep-{new_run_id()}"
    return plan_sweep(cfg, root, label, base_config, base_sets, varies, seeds, budget)


MAX_SWEEP_JSON_BYTES = 64 << 20  # MAX_RUNS runs of a few hundred bytes each, many times over
_STATUSES = ("queued", "running", "done", "failed")


def _member(row: Any, where: Path) -> Member:
    """One run of sweep.json, checked: its name becomes a directory of the sweep."""
    if not isinstance(row, dict):
        raise TypeError("a run is not an object")
    m = Member(**row)
    if not isinstance(m.name, str) or not MEMBER_NAME.fullmatch(m.name):
        raise UnsafePathError(
            f"{where}: run name {str(m.name)[:80]!r} is not one ictal sweep gives",
            "the file was not written by ictal or was tampered with: start a new sweep",
        )
    if m.status not in _STATUSES or not (
        isinstance(m.overrides, list) and all(isinstance(o, str) for o in m.overrides)
    ):
        raise TypeError(f"run {m.name}: status or overrides of the wrong kind")
    return m


def load_plan(root: Path, name: str, budget: Budget) -> Plan:
    """The sweep to resume: its runs as sweep.json last recorded them."""
    path = root / name / SWEEP_JSON
    try:
        doc = read_json(path, "sweep.json", MAX_SWEEP_JSON_BYTES)
        members = [_member(r, path) for r in doc["runs"]]
        base = doc["base"]
        sets = list(base.get("sets") or [])
        config = base.get("config")
        if not all(isinstance(s, str) for s in sets) or not isinstance(config, str | None):
            raise TypeError("base config or --set values of the wrong kind")
    except FileNotFoundError:
        raise UsageError(f"no sweep named {name} in {root} ({path} does not exist)") from None
    except UnreadableInput as exc:
        raise UsageError(f"{exc}; it is not a sweep.json written by ictal") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is not a sweep.json written by ictal ({exc})") from exc
    run_share(budget, len(members))
    created = doc.get("created")
    return Plan(root / name, config, sets, members, budget,
                created if isinstance(created, int | float) else time.time())  # fmt: skip


def run_sweep(plan: Plan, cfg: Config, *, resume: bool) -> Plan:
    """Run (or continue) the sweep under its lock; returns the plan as it ended."""
    lock = FileLock(plan.directory / ".lock", f"sweep {plan.directory}",
                    "wait for it, or give another --name")  # fmt: skip
    with lock:
        sweep = Sweep(plan, cfg)
        if resume:
            for m in plan.members:
                if m.status == "done" or (m.status == "failed" and m.started is None):
                    continue  # finished, or its values are invalid: nothing to continue
                if sweep.adopt_finished(m):
                    continue
                sweep.resume.add(m.name)
                m.status = "queued"
        todo = [m for m in plan.members if m.status == "queued"]
        log.info(
            f"sweep {plan.directory.name}: {len(plan.members)} runs ({len(todo)} to run), "
            f"{sweep.share} CPU(s) each, budget {plan.budget.cpus} CPUs, "
            f"{plan.budget.memory_gb:.1f} GB" + (
                f", GPU {plan.budget.gpu_memory_gb:.1f} GB" if plan.budget.gpu_memory_gb else ""
            ) + f", parallel {plan.budget.parallel or 'auto'}"
        )  # fmt: skip
        sweep.run()
    return plan
