"""Resume: a run killed with SIGKILL mid-epoch continues exactly (same losses, same weights);
SIGTERM checkpoints and stops cleanly; metrics are trimmed to the checkpoint; RNG round-trips."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import stall_env, train_line
from ictal.cache.build import build_cache
from ictal.config_file import load_config
from ictal.corpus.synth import synthesize
from ictal.errors import PreflightError
from ictal.models.checkpoint import load_checkpoint
from ictal.runs.directory import CONFIG, HEARTBEAT, RunDir, run_lock
from ictal.runs.heartbeat import read_heartbeat
from ictal.runs.metrics import MetricsLog, keep_until, read_metrics
from ictal.runs.resume import find_resumable, resume_config
from ictal.train.state import capture_rng, restore_rng

ROOT = Path(__file__).resolve().parents[1]

# 8 s windows at 4 s stride, epochs capped at 6 steps of 8; a checkpoint after every step.
SETS = [
    "train.steps_per_epoch=6",
    "windows.length_s=8",
    "windows.stride_s=4",
    "model.params={width: 8, gru_hidden: 8}",
    "loader.batch_size=8",
    "loader.num_workers=1",
    "train.warmup_steps=3",
    "train.epochs=3",
    "train.seed=7",
    "train.checkpoint_every_s=0.001",
    "train.heartbeat_s=0.2",
]

SCRIPT = """
import json, sys
from pathlib import Path
from ictal.config_file import load_config
from ictal.train.loop import train
args = json.loads(sys.argv[1])
resume = args["resume"]
resume = Path(resume) if isinstance(resume, str) else resume
result = train(load_config(None, args["sets"]), resume=resume)
print("RESULT " + json.dumps({"state": result.state, "run_dir": str(result.run_dir)}))
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    synthesize(tmp / "corpus", patients=4, hours=0.5, seed=1)
    build_cache(cfg_sets(tmp, "runs"), workers=1)
    return tmp


def sets_for(tmp: Path, runs: str, *extra: str) -> list[str]:
    return [
        f"corpus.root={tmp / 'corpus'}",
        f"cache.root={tmp / 'cache'}",
        f"runs.root={tmp / runs}",
        *SETS,
        *extra,
    ]


def cfg_sets(tmp: Path, runs: str, *extra: str):
    return load_config(None, sets_for(tmp, runs, *extra))


def start(
    sets: list[str], resume: bool | str = False, env: dict[str, str] | None = None
) -> subprocess.Popen:
    if env is None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    arg = json.dumps({"sets": sets, "resume": resume})
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, arg],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def the_run(runs_root: Path) -> Path:
    (run,) = [p for p in runs_root.iterdir() if (p / CONFIG).is_file()]
    return run


def wait_for_step(runs_root: Path, step: int, proc: subprocess.Popen, timeout: float = 90) -> Path:
    """Poll metrics.jsonl until a train line with ``step`` is there; return the run dir."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        runs = [p for p in runs_root.glob("*") if (p / "metrics.jsonl").exists()]
        if runs:
            lines = read_metrics(runs[0] / "metrics.jsonl")
            if any(r["phase"] == "train" and r["step"] >= step for r in lines):
                return runs[0]
        time.sleep(0.01)
    raise AssertionError(f"step {step} not reached in {timeout}s")


def train_losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run / "metrics.jsonl")
            if r["phase"] == "train"]  # fmt: skip


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_exact(cache):
    reference = start(sets_for(cache, "runs_a"))
    # step 10's metrics line waits for the kill, so it lands mid epoch 2 however late it is sent
    held = stall_env(f"{cache}/runs_b/*/metrics.jsonl", line=train_line(10))
    killed = start(sets_for(cache, "runs_b"), env=held)
    run_b = wait_for_step(cache / "runs_b", 9, killed)  # 6 steps per epoch: mid epoch 2
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert train_losses(run_b)[-1][0] == 9, "killed while step 10's line was held"
    done_a = finish(reference)
    ckpt = load_checkpoint(run_b / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["step_in_epoch"] > 0, "kill was not mid-epoch"
    assert read_heartbeat(run_b / HEARTBEAT)["state"] == "running"  # died without a word
    assert find_resumable(cache / "runs_b") == run_b

    done_b = finish(start(sets_for(cache, "runs_b"), resume=True))
    assert done_b["run_dir"] == str(run_b) and done_b["state"] == "done"
    run_a = Path(done_a["run_dir"])
    losses_a, losses_b = train_losses(run_a), train_losses(run_b)
    assert [s for s, _ in losses_b] == list(range(1, len(losses_b) + 1))  # each step once
    assert losses_b == losses_a
    assert_same_weights(run_a / "checkpoints" / "last.pt", run_b / "checkpoints" / "last.pt")
    phases = [(r["phase"], r["epoch"]) for r in read_metrics(run_b / "metrics.jsonl")
              if r["phase"] != "train"]  # fmt: skip
    assert phases == [(p, e) for e in range(3) for p in ("validate", "epoch")]
    assert read_heartbeat(run_b / HEARTBEAT)["state"] == "done"
    assert len(json.loads((run_b / "run.json").read_text())["resumes"]) == 1


@pytest.mark.slow
def test_sigterm_checkpoints_stops_and_resumes(cache, tmp_path):
    # step 5's metrics line waits until SIGTERM is sent: the run cannot end first
    release = tmp_path / "release"
    held = stall_env(f"{cache}/runs_term/*/metrics.jsonl", line=train_line(5), release=release)
    proc = start(sets_for(cache, "runs_term", "train.checkpoint_every_s=3600"), env=held)
    run = wait_for_step(cache / "runs_term", 4, proc)
    proc.send_signal(signal.SIGTERM)
    release.touch()
    result = finish(proc)
    assert result["state"] == "stopped"
    beat = read_heartbeat(run / HEARTBEAT)
    assert beat["state"] == "stopped"
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")  # written on the signal
    assert ckpt["step"] == 5
    assert train_losses(run)[-1][0] >= ckpt["step"]

    done = finish(start(sets_for(cache, "runs_term"), resume=True))
    assert done["state"] == "done" and done["run_dir"] == str(run)
    steps = [s for s, _ in train_losses(run)]
    assert steps == list(range(1, len(steps) + 1))
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 3


def test_keep_until_drops_lines_past_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with MetricsLog(path) as m:
        for step in range(1, 5):
            m.write({"phase": "train", "epoch": 0, "step": step, "time": 0.0, "loss": 1.0})
        m.write({"phase": "validate", "epoch": 0, "step": 4, "time": 0.0, "val_loss": 0.5})
        m.write({"phase": "epoch", "epoch": 0, "step": 4, "time": 0.0, "loss": 1.0})
        for step in range(5, 8):
            m.write({"phase": "train", "epoch": 1, "step": step, "time": 0.0, "loss": 1.0})
        m.write({"phase": "validate", "epoch": 1, "step": 7, "time": 0.0, "val_loss": 0.4})
    with open(path, "ab") as fh:
        fh.write(b'{"phase":"train","epo')  # torn by a kill
    assert keep_until(path, step=6, epoch=1) == 2
    kept = read_metrics(path)
    assert [(r["phase"], r["step"]) for r in kept] == [
        ("train", 1), ("train", 2), ("train", 3), ("train", 4),
        ("validate", 4), ("epoch", 4), ("train", 5), ("train", 6),
    ]  # fmt: skip
    assert path.read_bytes().endswith(b"\n")
    # trained epoch 1 fully but its validation is pending: its validate line goes
    assert keep_until(path, step=7, epoch=1) == 0


def test_metrics_are_strict_json(tmp_path):
    path = tmp_path / "m.jsonl"
    with MetricsLog(path) as m:
        m.write({"phase": "train", "epoch": 0, "step": 1, "time": 1.0, "loss": float("nan")})
        with pytest.raises(ValueError):
            m.write({"phase": "bogus", "epoch": 0, "step": 1, "time": 1.0})
    assert json.loads(path.read_text())["loss"] is None


METRICS_WRITER = """
import sys, time
from ictal.runs.metrics import MetricsLog
m = MetricsLog(sys.argv[1], sync_every_s=3600)
for step in range(1, 201):
    m.write({"phase": "train", "epoch": 0, "step": step, "time": 0.0, "loss": 1.0})
print("written", flush=True)
time.sleep(60)
"""


def test_metrics_lines_survive_sigkill_without_fsync(tmp_path):
    path = tmp_path / "metrics.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-c", METRICS_WRITER, str(path)], env=env, stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"written"
    proc.send_signal(signal.SIGKILL)  # no close, no fsync: the lines are already written
    proc.wait(timeout=30)
    assert [r["step"] for r in read_metrics(path)] == list(range(1, 201))


def test_metrics_fsync_is_bounded_in_time_not_per_line(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with MetricsLog(tmp_path / "m.jsonl", sync_every_s=3600) as m:
        for step in range(1, 1001):
            m.write({"phase": "train", "epoch": 0, "step": step, "time": 0.0, "loss": 1.0})
        assert synced == []
        m.sync()  # what a checkpoint does first
        assert len(synced) == 1
    assert len(synced) == 1  # nothing new to sync at close
    with MetricsLog(tmp_path / "m2.jsonl", sync_every_s=0) as m:
        m.write({"phase": "train", "epoch": 0, "step": 1, "time": 0.0, "loss": 1.0})
    assert len(synced) == 2


def test_rng_round_trip():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restore_rng(torch.load(buffer, weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_find_resumable_skips_done_and_live_runs(tmp_path):
    def make(name: str, state: str | None) -> Path:
        p = tmp_path / name
        p.mkdir()
        (p / CONFIG).write_text("{}\n")
        if state:
            (p / HEARTBEAT).write_text(json.dumps({"state": state}))
        return p

    assert find_resumable(tmp_path / "missing") is None
    old = make("20240101T000000Z-aaaaaa", "stopped")
    make("20240102T000000Z-bbbbbb", "done")
    assert find_resumable(tmp_path) == old
    live = make("20240103T000000Z-cccccc", "running")
    assert find_resumable(tmp_path) == live
    # a resume is running: a second one refuses, naming the process
    with run_lock(RunDir(live)), pytest.raises(PreflightError, match=r"being trained by .*:\d+"):
        find_resumable(tmp_path)


def test_resume_takes_machine_fields_now_and_keeps_the_experiment(tmp_path):
    frozen = load_config(None, ["train.lr=0.01", "cache.remote=s3://old/caches", "runs.root=/r"])
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config.write_text(frozen.to_yaml())
    now = load_config(
        None,
        [
            "cache.root=/new/cache",  # path: taken
            "train.threads=3",  # share: taken
            "loader.prefetch_factor=8",  # machine: taken
            "train.lr=0.5",  # experiment: frozen
            "cache.remote=s3://new/caches",  # path: taken
            "signal.fs=200",  # semantic: frozen
        ],
    )
    resumed = resume_config(now, run)
    assert resumed.cache.root == "/new/cache" and resumed.train.threads == 3
    assert resumed.loader.prefetch_factor == 8
    assert resumed.train.lr == 0.01 and resumed.signal.fs == 256.0
    assert resumed.cache.remote == "s3://new/caches"
    assert resumed.runs.root == "/r"  # a default given now keeps the frozen value
