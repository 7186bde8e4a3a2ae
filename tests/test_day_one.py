"""What a new user meets on day one, through the real command line: the status table on a
100-column screen, evaluate and detect rows that count recordings (a resumed detect all of
them), log lines without raw dicts or 16-digit floats, a no-op build without a 0.00 rate,
explain with an unreachable corpus, census tables that each hold one list."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from conftest import ictal_env, run_ictal, settings, small_built_corpus, tiny_training
from ictal.runs.status import run_statuses, status_view

FAST = tiny_training("train.epochs=2", "train.steps_per_epoch=3", "train.heartbeat_s=1")
LONG_HOST = "gpu-node-17.cluster.example.org"


def _beat(run: Path, **beat: object) -> None:
    """A heartbeat of a run on another machine (it is never checked for a live process)."""
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    now = time.time()
    base = {"run_id": run.name, "state": "running", "command": "train", "phase": "train",
            "epoch": 2, "epochs": 12, "step": 297, "total_steps": 480, "loss": 0.0233,
            "samples_per_s": 6.4, "data_wait": 0.0, "time": now - 1, "heartbeat_s": 10.0,
            "host": LONG_HOST, "pid": 123456, "progress_at": now - 1,
            "last_checkpoint_time": now - 16, "push_lag_s": None}  # fmt: skip
    (run / "heartbeat.json").write_text(json.dumps({**base, **beat}))


def test_status_fits_100_columns_without_cutting_ids(tmp_path):
    run = tmp_path / "20261205T065431Z-32f487"
    _beat(run)
    ev = run / "eval-best-dev"
    (ev / "heartbeat.json").parent.mkdir()
    beat = json.loads((run / "heartbeat.json").read_text())
    beat.update(command="evaluate", phase="evaluate done", state="done", epoch=0, epochs=0,
                step=17, total_steps=17, loss=None, samples_per_s=None, data_wait=None,
                last_checkpoint_time=None)  # fmt: skip
    (ev / "heartbeat.json").write_text(json.dumps(beat))
    console = Console(record=True, width=100)
    console.print(status_view(run_statuses(tmp_path)))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 100, text
    assert "…" not in text, text
    train_row = next(line for line in lines if line.startswith(run.name))
    assert f"{LONG_HOST}:123456" in train_row and "3/12" in train_row and "297/480" in train_row
    eval_row = next(line for line in lines if "eval-best-dev" in line)
    assert "17/17" in eval_row and "0.0" not in eval_row.split()  # no rate of nothing trained
    header = next(line for line in lines if line.startswith("run "))
    assert "push" not in header and "note" not in header, "empty columns are left out"
    # the JSON says what the table says: epoch 3 of 12, counted from 1
    res = run_ictal("status", str(tmp_path), "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["run"]: r for r in json.loads(res.stdout)}
    assert rows[run.name]["epoch"] == 3 and rows[run.name]["epochs"] == 12
    assert rows[f"{run.name}/eval-best-dev"]["epoch"] is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A small built corpus and one finished tiny run: (tmp, run directory)."""
    tmp = small_built_corpus(tmp_path_factory.mktemp("dayone"), 5, FAST)
    res = run_ictal("train", *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (tmp / "runs").iterdir()
    return tmp, run


@pytest.mark.slow
def test_training_log_lines_are_readable(trained):
    _, run = trained
    log = (run / "train.log").read_text()
    assert "{'" not in log, "a raw dict in the log"
    assert not re.search(r"\d\.\d{7,}", log), "a float printed with all its digits"
    assert re.search(r"draw \(background \d+, partial \d+, full \d+\)", log), log
    assert re.search(r"training done: 2 epochs, 6 steps, best val loss \d\.\d{4}\n", log), log
    assert re.search(r"\d+/3 steps done, \d+ s, [\d.]+ steps/s", log), log


@pytest.mark.slow
def test_evaluate_and_resumed_detect_count_recordings(trained):
    tmp, run = trained
    ckpt = run / "checkpoints" / "best.pt"
    res = run_ictal("evaluate", str(ckpt), "--split", "dev", *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stderr[-2000:]
    beat = json.loads((run / "eval-best-dev" / "heartbeat.json").read_text())
    n_dev = len(list((tmp / "corpus" / "edf" / "dev").rglob("*.edf")))
    assert beat["state"] == "done" and beat["step"] == beat["total_steps"] == n_dev
    assert beat["samples_per_s"] is None, "evaluate trains nothing: it has no training rate"
    # a detect that resumes a directory counts what it had done before
    out = tmp / "detect-out"
    edf = tmp / "corpus" / "edf"
    for inputs in ([edf / "dev"], [edf]):
        res = run_ictal("detect", str(ckpt), *map(str, inputs), "--out", str(out),
                        "--workers", "1", *settings(tmp, "runs", FAST))  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
    assert f"({n_dev} already done)" in res.stderr
    beat = json.loads((out / "heartbeat.json").read_text())
    n_all = len(list(edf.rglob("*.edf")))
    assert beat["step"] == beat["total_steps"] == n_all and beat["phase"] == "detect"
    res = run_ictal("status", str(tmp), "--json")
    (row,) = [r for r in json.loads(res.stdout) if r["run"] == out.name]
    assert row["step"] == row["total_steps"] == n_all


@pytest.mark.slow
def test_no_op_build_explain_and_census_read_plainly(trained, tmp_path):
    tmp, _ = trained
    res = run_ictal("build", *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stderr
    assert "already built (nothing to do)" in res.stdout
    assert "- (nothing built)" in res.stdout and "0.00" not in res.stdout, res.stdout
    # an unreachable corpus is not fixed by `ictal build`
    gone = [f"corpus.root={tmp_path / 'unmounted'}", "signal.notch=50"]
    res = run_ictal("explain", *settings(tmp, "runs", FAST, *gone))
    assert res.returncode == 3, res.stdout + res.stderr
    assert "not reachable" in res.stdout and "make the corpus readable" in res.stdout
    assert "ictal build" not in res.stdout, res.stdout
    # census: one list per table (montages, then sample rates), never glued side by side
    res = run_ictal("census", str(tmp / "corpus"), *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stderr
    assert "Files per montage" in res.stdout and "Files per sample rate" in res.stdout
    header = next(line for line in res.stdout.splitlines() if "montage" in line and "files" in line)
    assert "rate" not in header and header.count("files") == 1, header


def test_the_command_list_reads_as_sentences():
    """Each command's summary is its docstring's first paragraph on one line, wrapped by the
    screen only (not cut where the source line ended); ``config`` is listed."""
    res = run_ictal("--help", env=ictal_env({"COLUMNS": "250"}))
    assert res.returncode == 0 and re.search(r"│ config\s", res.stdout), res.stdout
    assert "(preprocessing, windows, output rate, operating point)" in res.stdout, res.stdout


def test_output_cut_short_by_its_reader_is_no_error():
    """``ictal config | head``: the reader closes the pipe; the command ends quietly with 0."""
    argv = [sys.executable, "-m", "ictal.cli", "config", "--markdown"]
    proc = subprocess.Popen(argv, env=ictal_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == "", err
