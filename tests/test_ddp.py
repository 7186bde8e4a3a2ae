"""Training on two processes with torchrun on the CPU (gloo): to the end through `torchrun`
and through `ictal train --nproc`, the same windows as one process, an exact resume after
SIGKILL of the whole job, and a dead rank ends the job instead of hanging it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from conftest import (
    ictal_env,
    run_ictal,
    settings,
    small_built_corpus,
    stall_env,
    tiny_training,
    train_line,
)
from ictal.models.checkpoint import load_checkpoint
from ictal.runs.heartbeat import read_heartbeat
from ictal.runs.metrics import read_metrics

pytestmark = pytest.mark.slow

FAST = tiny_training(
    "loader.num_workers=1",
    "train.epochs=3",
    "train.steps_per_epoch=6",
    "train.seed=3",
    "train.heartbeat_s=0.3",
    "train.dist_timeout_s=60",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return small_built_corpus(tmp_path_factory.mktemp("ddp"), 6, FAST)


def _sets(tmp: Path, runs: str, *extra: str) -> list[str]:
    return settings(tmp, runs, FAST, *extra)


def _torchrun(args: list[str], **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node=2", "-m", "ictal"]  # fmt: skip
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    env = kw.pop("env", None) or ictal_env()
    return subprocess.Popen([*torchrun, *args], env=env, stdin=subprocess.DEVNULL, **pipes, **kw)


def _run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if (p / "config.yaml").is_file()]
    return run


def _epochs(run: Path) -> list[tuple[int, int, int]]:
    return [(r["epoch"], r["windows"], r["windows_hash"])
            for r in read_metrics(run / "metrics.jsonl") if r["phase"] == "epoch"]  # fmt: skip


def test_torchrun_trains_to_the_end_on_the_windows_of_one_process(built):
    # 3 steps of 4 stay inside the epoch's draw, so no rank trim (< 2 windows) can differ
    cap = "train.steps_per_epoch=3"
    store = f"sqlite:///{built / 'ddp-mlflow.db'}"  # the trackers: rank 0 alone logs
    env = ictal_env({"MLFLOW_TRACKING_URI": store})
    proc = _torchrun(["train", *_sets(built, "runs-2", cap), "--set",
                      "logging.loggers=[tensorboard,mlflow]"], env=env)  # fmt: skip
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-4000:]
    run = _run(built / "runs-2")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "ictal"]
    (one,) = client.search_runs([experiment.experiment_id])
    logged = [m.step for m in client.get_metric_history(one.info.run_id, "train/loss")]
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["phase"] == "train"]
    assert logged == steps, "each step once: rank 0's records, not one set per rank"
    assert json.loads((run / "run.json").read_text())["world_size"] == 2
    beat = read_heartbeat(run / "heartbeat.json")
    assert beat["state"] == "done" and sorted(r["rank"] for r in beat["ranks"]) == [0, 1]
    assert out.count("ictal train") == 1, "rank 0 alone prints the summary"
    one = run_ictal("train", *_sets(built, "runs-1", cap))
    assert one.returncode == 0, one.stderr[-2000:]
    assert _epochs(run) == _epochs(_run(built / "runs-1")), "other windows than one process"
    nproc = run_ictal("train", "--nproc", "2", *_sets(built, "runs-nproc", cap))
    assert nproc.returncode == 0, nproc.stderr[-4000:]
    assert _epochs(_run(built / "runs-nproc")) == _epochs(run)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


KILLABLE = ("train.checkpoint_every_s=0.001", "train.epochs=6")  # 36 steps; killed at 8


@pytest.fixture(scope="module")
def reference(built) -> dict[str, torch.Tensor]:
    """The weights of an uninterrupted 2-rank run of the KILLABLE settings."""
    ref = _torchrun(["train", *_sets(built, "runs-ref", *KILLABLE)])
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err[-4000:]
    return _weights(_run(built / "runs-ref"))


def _same_weights(run: Path, expected: dict[str, torch.Tensor]) -> None:
    got = _weights(run)
    assert got.keys() == expected.keys()
    for name in got:
        assert torch.equal(got[name], expected[name]), f"{name} differs after the resume"
    steps_logged = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["phase"] == "train"]
    assert steps_logged == list(range(1, len(steps_logged) + 1)), "each step logged once"


def _step(runs: Path) -> int:
    """The last step rank 0 logged (metrics lines are written at once; the heartbeat lags)."""
    logs = list(runs.glob("*/metrics.jsonl")) if runs.is_dir() else []
    steps = [r["step"] for r in read_metrics(logs[0]) if r["phase"] == "train"] if logs else []
    return max(steps, default=0)


def test_sigkill_of_the_job_then_resume_ends_with_the_same_weights(built, reference):
    runs = built / "runs-kill"
    sets = _sets(built, "runs-kill", *KILLABLE)
    # rank 0's line of step 9 waits for the kill: the job is always killed mid-run
    held = stall_env(f"{runs}/*/metrics.jsonl", line=train_line(9))
    job = _torchrun(["train", *sets], env=held)
    deadline = time.monotonic() + 120

    while _step(runs) < 8 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.poll() is None, "the job ended before the kill: the test proves nothing"
    # the launcher and both ranks at once, as a crashed machine (torchrun starts each rank in
    # a session of its own, so the launcher's process group does not hold them)
    every = [psutil.Process(job.pid), *psutil.Process(job.pid).children(recursive=True)]
    assert len(every) >= 3, "the launcher and its two ranks"
    for proc in every:
        proc.kill()
    job.communicate()
    _, alive = psutil.wait_procs(every, timeout=30)
    assert not alive, f"left running: {alive}"
    assert _step(runs) == 8, "killed while step 9's line was held"
    run = _run(runs)
    assert read_heartbeat(run / "heartbeat.json")["state"] != "done", "killed after the end"
    again = _torchrun(["train", *sets, "--resume"])
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-4000:]
    _same_weights(run, reference)


def test_a_dead_rank_ends_the_job_and_the_run_resumes_exactly(built, reference, tmp_path):
    runs = built / "runs-dead"
    # rank 0's line of step 9 waits until rank 1 is killed: the job cannot end first
    release = tmp_path / "release"
    held = stall_env(f"{runs}/*/metrics.jsonl", line=train_line(9), release=release)
    job = _torchrun(["train", *_sets(built, "runs-dead", *KILLABLE)], env=held)
    deadline = time.monotonic() + 120
    ranks: list[psutil.Process] = []
    while time.monotonic() < deadline and len(ranks) < 2:
        ranks = psutil.Process(job.pid).children()  # the launcher's direct children: the ranks
        time.sleep(0.02)
    while _step(runs) < 8 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.poll() is None and len(ranks) == 2, "the job ended before the kill"
    (writer_not,) = [p for p in ranks if p.environ().get("RANK") == "1"]
    writer_not.send_signal(signal.SIGKILL)  # rank 1 alone: rank 0 must not wait for it forever
    assert _step(runs) == 8, "rank 1 killed while rank 0 held step 9's line"
    release.touch()
    t = time.monotonic()
    _, err = job.communicate(timeout=180)
    assert job.returncode != 0 and time.monotonic() - t < 120, "the job hung"
    assert "SIGKILL" in err or "Signal 9" in err or "exitcode" in err.lower(), err[-3000:]
    _, alive = psutil.wait_procs(ranks, timeout=30)
    assert not alive, f"ranks left running: {alive}"
    run = _run(runs)
    assert read_heartbeat(run / "heartbeat.json")["state"] != "done", "killed after the end"
    again = _torchrun(["train", *_sets(built, "runs-dead", *KILLABLE), "--resume"])
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-4000:]
    _same_weights(run, reference)


def test_bench_times_each_rank(built):
    res = run_ictal("bench", "--nproc", "2", "--batches", "3", *_sets(built, "runs-bench"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("per rank") == 1, res.stdout
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.strip().startswith(("│", "|"))]
    assert {r[1] for r in rows if len(r) > 2 and r[1] in ("0", "1")} == {"0", "1"}, res.stdout


def test_the_library_launch_runs_the_command_on_each_rank(built, monkeypatch, capfd):
    """``ictal.orchestrate.launch.torchrun``, what ``--nproc`` calls: the same command line
    (without --nproc) on two ranks under torch.distributed.run."""
    from ictal.orchestrate.launch import torchrun

    monkeypatch.setenv("PYTHONPATH", ictal_env()["PYTHONPATH"])
    argv = ["bench", "--nproc", "2", "--batches", "3", *_sets(built, "runs-launch")]
    code = torchrun(2, argv)
    out = capfd.readouterr()
    assert code == 0, out.err[-3000:]
    assert out.out.count("per rank") == 1, out.out
