"""Runs visible from anywhere while they run: the continuous push to a sink (moto's S3 server on
loopback, and a local path), `ictal status` over sinks, `ictal pull`. Real training processes,
real kills, a real sink outage; every wait polls for the state it needs."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
import torch

from conftest import ictal_env, poll, run_ictal, settings, small_built_corpus, tiny_training
from ictal.models.checkpoint import check_format
from ictal.runs.heartbeat import read_heartbeat
from ictal.runs.pusher import S3_APPEND_MIN, Pusher

pytest.importorskip("s3fs")

FAST = tiny_training("train.heartbeat_s=0.3", "train.checkpoint_every_s=0.2", "sink.every_s=0.5")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return small_built_corpus(tmp_path_factory.mktemp("live"), 9, FAST)


def _sets(tmp: Path, runs: str, *extra: str) -> list[str]:
    return settings(tmp, runs, FAST, *extra)


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ictal.cli", *args],
        env=ictal_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_dir(runs: Path) -> Path | None:
    found = [p for p in runs.iterdir() if (p / "config.yaml").is_file()] if runs.is_dir() else []
    return found[0] if found else None


def _s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", skip_instance_cache=True)


def _status_json(*where: str, env: dict[str, str] | None = None) -> list[dict]:
    res = run_ictal("status", *where, "--json", env=ictal_env(env))
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def _load_remote_checkpoint(fs: fsspec.AbstractFileSystem, path: str) -> dict:
    ckpt = torch.load(io.BytesIO(fs.cat_file(path)), weights_only=True)
    check_format(ckpt)
    return ckpt


@pytest.mark.slow
def test_a_remote_run_is_visible_while_it_runs_and_stale_once_killed(s3, built):
    sink = "s3://results/live"
    runs = built / "runs-a"
    proc = _start(["train", *_sets(built, "runs-a", "train.epochs=500", "train.steps_per_epoch=3",
                                   f"sink.url={sink}")])  # fmt: skip
    try:
        run = poll(lambda: _run_dir(runs), what="the run directory")
        created = time.monotonic()
        fs = _s3()
        base = f"results/live/{run.name}"
        poll(lambda: fs.exists(f"{base}/heartbeat.json"), what="the heartbeat in the sink")
        # prompt: no wait for a step, an epoch or a checkpoint (bounded loosely: 2 s here
        # idle, 6 s at a load of 8 on two cores)
        assert time.monotonic() - created < 20.0, "the first push waits for nothing"
        poll(lambda: fs.exists(f"{base}/checkpoints/last.pt"), what="a checkpoint in the sink")
        steps: set[int] = set()

        def two_steps() -> bool:  # every read of a checkpoint being replaced is a whole one
            steps.add(_load_remote_checkpoint(fs, f"{base}/checkpoints/last.pt")["step"])
            return len(steps) >= 2

        poll(two_steps, every=0.3, what="checkpoints pushed after each save")
        (row,) = _status_json(sink)
        assert row["run"] == run.name and row["status"] == "running"
        assert {"run", "status", "phase", "epoch", "step", "heartbeat_age_s", "host", "pid",
                "push_lag_s"} <= set(row)  # fmt: skip
        assert row["push_lag_s"] is not None and row["push_lag_s"] < 5
        remote = fs.cat_file(f"{base}/metrics.jsonl").decode().splitlines()
        local = (run / "metrics.jsonl").read_text().splitlines()
        assert len(remote) >= 3 and local[: len(remote) - 1] == remote[:-1]  # an append-only copy
        pulled = run_ictal("pull", f"{sink}/{run.name}", str(built / "pulled-a"))
        assert pulled.returncode == 0 and "in progress" in pulled.stdout, pulled.stderr[-2000:]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stale() -> bool:
        (row,) = _status_json(sink)
        return row["status"] == "stale"

    poll(stale, timeout=30, what="stale after SIGKILL")


def _losses(run: Path) -> list[tuple[int, float]]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in lines if r["phase"] == "train"]


@pytest.mark.slow
def test_a_run_resumes_on_a_new_machine_from_the_sink(s3, built):
    """A spot instance replaced: the new machine has an empty runs.root; `train --resume`
    finds the unfinished run in the sink, pulls it and continues it exactly."""
    sink = "s3://results/spot"
    # 48 steps: the kill, once the sink holds step 4, must land well before the last step (12
    # steps took 1.4 s, and a loaded machine's poll saw step 4 pushed only once it had ended)
    experiment = ["train.epochs=4", "train.steps_per_epoch=12", "train.checkpoint_every_s=0.001"]
    reference = run_ictal("train", *_sets(built, "spot-reference", *experiment))
    assert reference.returncode == 0, reference.stderr[-2000:]
    proc = _start(["train", *_sets(built, "spot-old-vm", *experiment, f"sink.url={sink}")])
    fs = _s3()
    try:
        run = poll(lambda: _run_dir(built / "spot-old-vm"), what="the run directory")
        base = f"results/spot/{run.name}"

        def pushed_step() -> int:
            try:
                return _load_remote_checkpoint(fs, f"{base}/checkpoints/last.pt")["step"]
            except FileNotFoundError:
                return 0

        poll(lambda: pushed_step() >= 4 and fs.exists(f"{base}/heartbeat.json"),
              what="a checkpoint at step 4 and a heartbeat in the sink")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGKILL)  # the spot instance is gone, its disk with it
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"

    def dead_in_sink() -> bool:  # its pushed heartbeat aged past the live window
        beat = json.loads(fs.cat_file(f"{base}/heartbeat.json"))
        return time.time() - beat["time"] > 3 * 0.5

    poll(dead_in_sink, what="the pushed heartbeat to age")
    last = json.loads(fs.cat_file(f"{base}/heartbeat.json"))
    assert last.get("state") != "done", "the run had finished when it was killed: nothing to resume"
    new_vm = built / "spot-new-vm"
    res = run_ictal("train", "--resume", *_sets(built, "spot-new-vm", *experiment,
                                                f"sink.url={sink}"))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "from the sink" in res.stderr + res.stdout
    resumed = new_vm / run.name
    assert _losses(resumed) == _losses(_run_dir(built / "spot-reference"))
    a = torch.load(resumed / "checkpoints/last.pt", weights_only=True)["model"]
    b = torch.load(_run_dir(built / "spot-reference") / "checkpoints/last.pt",
                   weights_only=True)["model"]  # fmt: skip
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert fs.exists(f"{base}/_PUSHED.json"), "the resumed run pushed its final state"


def test_a_run_live_on_another_machine_is_not_resumed_from_the_sink():
    from ictal.runs.resume import live_elsewhere

    now = 1000.0
    beat = {"state": "running", "heartbeat_s": 30.0, "time": now - 100.0, "host": "vm-1"}
    assert "vm-1" in (live_elsewhere(beat, push_every_s=60.0, now=now) or "")
    assert live_elsewhere(beat, push_every_s=20.0, now=now) is None  # 100 s > 3 x 30 s
    assert live_elsewhere({**beat, "state": "stopped"}, push_every_s=60.0, now=now) is None
    assert live_elsewhere({**beat, "time": "soon"}, push_every_s=60.0, now=now) is None
    assert live_elsewhere({**beat, "heartbeat_s": "x", "host": 7}, 60.0, now) is not None


@pytest.fixture
def outage_server():
    """A moto S3 server of this test's own, which the test stops and starts again on the same
    port (its objects survive: moto keeps them in this process)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)]
    servers[0].start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "t",
           "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_MAX_ATTEMPTS": "2"}  # fmt: skip

    def fs() -> fsspec.AbstractFileSystem:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return fsspec.filesystem("s3", skip_instance_cache=True)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    fs().mkdir("outage")

    def stop() -> None:
        servers[-1].stop()

    def start() -> None:
        servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
        servers[-1].start()

    yield env, fs, stop, start
    servers[-1].stop()


@pytest.mark.slow
def test_training_never_waits_for_a_sink_that_is_down(built, outage_server):
    env, fs, stop, start = outage_server
    runs = built / "runs-b"
    proc = _start(["train", *_sets(built, "runs-b", "train.epochs=2000", "train.steps_per_epoch=3",
                                   "sink.url=s3://outage/runs")], env)  # fmt: skip
    try:
        run = poll(lambda: _run_dir(runs), what="the run directory")
        poll(lambda: fs().exists(f"outage/runs/{run.name}/heartbeat.json"), what="a first push")

        def beat() -> dict:
            return read_heartbeat(run / "heartbeat.json") or {}

        stop()
        down_at = beat().get("step", 0)
        failing = poll(lambda: (b := beat()).get("push_failures", 0) >= 1 and b, timeout=90,
                        what="a push failure in the heartbeat")  # fmt: skip
        assert "failed" in (failing.get("push_error") or "")
        poll(lambda: (beat().get("push_lag_s") or 0) > 3, what="a growing push lag")
        poll(lambda: beat()["step"] > down_at + 5, what="training going on while the sink is down")
        start()
        poll(lambda: (b := beat()).get("push_error") is None and (b.get("push_lag_s") or 99) < 2,
              timeout=90, what="the pusher caught up")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    base = f"outage/runs/{run.name}"
    remote = fs()
    assert remote.exists(f"{base}/_PUSHED.json"), "the final push on SIGTERM completed"
    assert remote.cat_file(f"{base}/metrics.jsonl") == (run / "metrics.jsonl").read_bytes()


@pytest.mark.slow
def test_two_machines_pushing_to_one_sink_are_one_status_table(s3, built, tmp_path):
    sink = "s3://results/two"
    for name in ("machine-1", "machine-2"):
        res = run_ictal("train", *_sets(built, name, "train.epochs=1", "train.steps_per_epoch=2",
                                        f"sink.url={sink}"))  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
    rows = _status_json(sink)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"done"}
    table = run_ictal("status", sink)
    assert table.returncode == 0 and all(r["run"] in table.stdout for r in rows)
    both = _status_json(str(built / "machine-1"), str(built / "machine-2"), sink)
    assert sorted(r["run"] for r in both) == sorted(r["run"] for r in rows)  # one row a run
    bad = run_ictal("status", sink, "bogus://nowhere")
    assert bad.returncode == 2 and "bogus" in bad.stderr and rows[0]["run"] in bad.stdout

    run = rows[0]["run"]
    dest = tmp_path / run
    res = run_ictal("pull", f"{sink}/{run}", str(dest))
    assert res.returncode == 0 and "complete" in res.stdout, res.stderr[-2000:]
    assert run_ictal("report", str(dest)).returncode == 0
    again = run_ictal("pull", f"{sink}/{run}", str(dest))
    assert again.returncode == 0 and "0 files" in again.stdout  # nothing changed
    _s3().pipe_file(f"results/two/{run}/config.yaml", b"tampered: true\n")
    res = run_ictal("pull", f"{sink}/{run}", str(dest))
    assert res.returncode == 3 and "differs from its _PUSHED.json" in res.stderr


def test_the_pusher_appends_only_new_bytes(s3, tmp_path):
    local = tmp_path / "run"
    local.mkdir()
    log_file = local / "metrics.jsonl"
    big = b"x" * 63 + b"\n"
    log_file.write_bytes(big * (S3_APPEND_MIN // 64 + 10))  # past S3's 5 MiB part minimum
    for url, fs, root in ((str(tmp_path / "sink"), fsspec.filesystem("file"), tmp_path / "sink"),
                          ("s3://results/append", _s3(), "results/append")):  # fmt: skip
        pusher = Pusher(local, url, "run")
        pusher.sync()
        first = pusher.outcome.bytes
        with open(log_file, "ab") as fh:
            fh.write(b'{"step": 1}\n' * 100)
        pusher.sync()
        sent = pusher.outcome.bytes - first
        assert sent == 1200, f"{url}: {sent} bytes sent for 1200 new ones"
        assert fs.cat_file(f"{root}/run/metrics.jsonl") == log_file.read_bytes()
    # a file rewritten locally (a resume trims metrics) is rewritten remotely
    tmp = local / "new.jsonl"
    tmp.write_bytes(b'{"step": 1}\n')
    os.replace(tmp, log_file)
    pusher.sync()
    assert _s3().cat_file("results/append/run/metrics.jsonl") == b'{"step": 1}\n'


@pytest.mark.slow
def test_a_local_sink_never_shows_half_a_file(built, tmp_path):
    sink = tmp_path / "sink"
    res = run_ictal("train", *_sets(built, "runs-local", "train.epochs=2",
                                    "train.steps_per_epoch=3", f"sink.url={sink}"))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = [p for p in sink.iterdir() if p.is_dir()]
    assert not list(sink.rglob("*.tmp")), "temporary names are renamed into place"
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2
    marker = json.loads((run / "_PUSHED.json").read_text())
    assert {f["path"] for f in marker["files"]} >= {"metrics.jsonl", "checkpoints/last.pt"}
    (row,) = _status_json(str(sink))
    assert row["status"] == "done"


def test_status_watch_refreshes_until_stopped(tmp_path):
    (tmp_path / "runs").mkdir()
    out_path = tmp_path / "out.txt"
    with open(out_path, "w") as out:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "ictal.cli", "status", str(tmp_path / "runs"), "--watch",
             "0.5"], env=ictal_env(), stdout=out, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        poll(lambda: out_path.read_text().count("-- ") >= 2, what="two refreshes")
        watcher.send_signal(signal.SIGTERM)
        watcher.communicate(timeout=30)
    assert watcher.returncode == 130 and "no runs" in out_path.read_text()
