"""Runs push their results to the sink themselves: a real S3 API on loopback (moto's server),
reached by s3fs through the same environment variables a cloud job would use."""

from __future__ import annotations

import json

import fsspec
import pytest

from ictal.cache.build import build_cache
from ictal.config_file import load_config
from ictal.corpus.synth import synthesize
from ictal.errors import PreflightError
from ictal.runs.directory import PUSHED
from ictal.runs.pusher import Pusher
from ictal.runs.sink import check_sink

pytest.importorskip("s3fs")


def _s3():
    return fsspec.filesystem("s3", skip_instance_cache=True)


def test_a_final_push_to_s3_writes_every_file_then_the_marker(s3, tmp_path):
    local = tmp_path / "run1"
    (local / "checkpoints").mkdir(parents=True)
    (local / "metrics.jsonl").write_text('{"step": 1}\n')
    (local / "checkpoints" / "last.pt").write_bytes(b"\x00" * 1000)
    (local / ".lock").write_text("123")
    (local / ".x.json.abc.tmp").write_text("partial")
    pushed = Pusher(local, "s3://results/runs", "run1").close(final=True)
    assert pushed.complete and pushed.files == 2 and pushed.url == "s3://results/runs/run1"
    fs = _s3()
    assert fs.cat_file("results/runs/run1/metrics.jsonl") == b'{"step": 1}\n'
    assert fs.size("results/runs/run1/checkpoints/last.pt") == 1000
    marker = json.loads(fs.cat_file(f"results/runs/run1/{PUSHED}"))
    assert {f["path"] for f in marker["files"]} == {"metrics.jsonl", "checkpoints/last.pt"}
    assert not fs.exists("results/runs/run1/.lock")


def test_unwritable_sink_is_refused_before_work(s3):
    with pytest.raises(PreflightError) as err:
        check_sink("s3://no-such-bucket/x", "run")
    assert "no-such-bucket" in str(err.value) and "not writable" in str(err.value)
    assert not _s3().exists("no-such-bucket"), "the sink created a bucket"


@pytest.mark.slow
def test_train_and_evaluate_push_their_directories(s3, tmp_path, ictal):
    synthesize(tmp_path / "corpus", patients=4, hours=0.4, seed=1)
    sets = [
        f"corpus.root={tmp_path / 'corpus'}",
        f"cache.root={tmp_path / 'cache'}",
        f"runs.root={tmp_path / 'runs'}",
        "windows.length_s=8",
        "windows.stride_s=4",
        "model.params={width: 8, gru_hidden: 8}",
        "train.epochs=1",
        "train.steps_per_epoch=3",
        "loader.num_workers=0",
        "sink.url=s3://results/ictal",
    ]
    build_cache(load_config(None, sets), workers=1)
    args = [a for s in sets for a in ("--set", s)]
    res = ictal("train", *args)
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = list((tmp_path / "runs").iterdir())
    fs = _s3()
    base = f"results/ictal/{run.name}"
    assert fs.exists(f"{base}/{PUSHED}")
    assert (
        fs.size(f"{base}/checkpoints/last.pt") == (run / "checkpoints" / "last.pt").stat().st_size
    )
    assert fs.cat_file(f"{base}/metrics.jsonl") == (run / "metrics.jsonl").read_bytes()
    assert "pushed to" in res.stdout
    res = ictal("evaluate", str(run / "checkpoints" / "last.pt"), "--split", "dev", *args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert fs.exists(f"{base}/eval-last-dev/scores.json")
    assert fs.exists(f"{base}/eval-last-dev/{PUSHED}")


@pytest.mark.slow
def test_cli_refuses_a_bad_sink_with_exit_3(s3, tmp_path, ictal):
    synthesize(tmp_path / "corpus", patients=3, hours=0.3, seed=2)
    sets = [f"corpus.root={tmp_path / 'corpus'}", f"cache.root={tmp_path / 'cache'}",
            f"runs.root={tmp_path / 'runs'}", "sink.url=s3://no-such-bucket/x"]  # fmt: skip
    build_cache(load_config(None, sets), workers=1)
    res = ictal("train", *[a for s in sets for a in ("--set", s)])
    assert res.returncode == 3
    assert "no-such-bucket" in res.stderr
    assert not list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else True
