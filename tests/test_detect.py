"""`ictal detect` through the real command line: the same events as `ictal evaluate`, a durable
record log that survives SIGKILL of the command or of a worker, resume, bad inputs, --watch
and many machines collected through a loopback S3 sink."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ictal_env, poll, run_ictal, settings, tiny_training
from ictal.corpus.synth import synthesize
from ictal.detect.records import LOG_DIR, decode
from ictal.events.counts import ZERO
from ictal.events.scorers import score_ovlp, score_taes
from ictal.io.framelog import read_log

FAST = tiny_training(
    "train.epochs=2",
    "train.steps_per_epoch=4",
    "train.heartbeat_s=0.5",
    "detect.settle_s=1",
    "detect.poll_s=0.3",
)


def _sets(tmp: Path, *extra: str) -> list[str]:
    return settings(tmp, "runs", FAST, *extra)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A corpus of 20 recordings, a trained run, and its dev operating points."""
    tmp = tmp_path_factory.mktemp("detect")
    synthesize(tmp / "corpus", patients=10, hours=0.75, seed=21)
    for cmd in (["build", "--workers", "2"], ["train"]):
        res = run_ictal(*cmd, *_sets(tmp))
        assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (tmp / "runs").iterdir()
    ckpt = run / "checkpoints" / "last.pt"
    res = run_ictal("evaluate", str(ckpt), "--split", "dev", *_sets(tmp))
    assert res.returncode == 0, res.stderr[-2000:]
    return tmp, ckpt


def _events(out: Path) -> list[str]:
    return (out / "events.csv").read_text().splitlines()


def _log_records(out: Path) -> list[dict]:
    """The valid records of a detect output's log, read as a live log is (its writer may seal
    a segment while the test reads it)."""
    return [r for f in read_log(out / LOG_DIR) if (r := decode(f.payload)) is not None]


@pytest.mark.slow
def test_detect_finds_what_evaluate_finds(trained):
    tmp, ckpt = trained
    ops = ckpt.parent.parent / "eval-last-dev" / "operating_points.json"
    res = run_ictal("evaluate", str(ckpt), "--split", "eval", "--operating-points", str(ops),
                    *_sets(tmp))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    scores = json.loads((ckpt.parent.parent / "eval-last-eval" / "scores.json").read_text())
    out = tmp / "det-eval"
    res = run_ictal("detect", str(ckpt), str(tmp / "corpus" / "edf" / "eval"), "--out", str(out),
                    *_sets(tmp))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "eval-last-dev/operating_points.json" in res.stdout  # the dev-tuned point, found
    by_name = {r["name"]: r for r in _log_records(out)}
    ovlp = taes = ZERO
    for rec in scores["recordings"]:
        mine = by_name[rec["id"]]
        found = [(a, b) for a, b, _ in mine["events"]]
        assert found == [tuple(e) for e in rec["hyp_events"]], rec["id"]
        ref = [tuple(e) for e in rec["ref_events"]]
        ovlp += score_ovlp(ref, found, rec["duration_s"])
        taes += score_taes(ref, found, rec["duration_s"])
    point = scores["operating_points"]["points"]
    exported = scores["exports"]["threshold"]
    for name, total in (("ovlp", ovlp), ("taes", taes)):
        (row,) = [r for r in point[name] if r["threshold"] == exported][:1]
        assert row["counts"]["hits"] == pytest.approx(total.hits)
        assert row["counts"]["false_alarms"] == pytest.approx(total.false_alarms)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recordings"] == len(scores["recordings"]) and summary["failed"] == 0
    assert _events(out)[0].startswith("recording,start_s,stop_s,peak_prob")
    for rec in scores["recordings"]:
        assert (out / "hyp" / "csv_bi" / f"{rec['id']}.csv_bi").is_file()
        assert (out / "hyp" / "szcore" / f"{rec['id']}_events.tsv").is_file()


def _start_detect(args: list[str]) -> tuple[subprocess.Popen, list[str], threading.Thread]:
    """A detect process, the stderr lines it prints, read as they come, and the thread
    reading them (it ends when every process holding the pipe has)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ictal.cli", "detect", *args],
        env=ictal_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    return proc, lines, pumping


def _acknowledged(lines: list[str]) -> int:
    found = [int(m.group(1)) for line in list(lines)
             if (m := re.search(r"acknowledged (\d+)/", line))]  # fmt: skip
    return max(found, default=0)


@pytest.mark.slow
def test_sigkill_of_detect_or_a_worker_loses_nothing_acknowledged(trained):
    tmp, ckpt = trained
    edf = str(tmp / "corpus" / "edf")
    reference = tmp / "det-reference"
    res = run_ictal("detect", str(ckpt), edf, "--out", str(reference), "--workers", "2",
                    *_sets(tmp))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp / "det-killed"
    rng = random.Random(11)
    kills = 0
    # the command killed, a worker killed, and one worker (reading ahead in a thread) killed
    # and stopped by SIGTERM; each kind once, then again while recordings are left
    kinds = ["kill", "worker", "ahead-kill", "ahead-term"]
    for attempt in range(10):
        if kills >= 4:
            break  # four kills, of every kind, prove it; the rest is the same again
        kind = kinds[attempt % 4]
        before = len(_log_records(out)) if out.exists() else 0
        workers = "1" if kind.startswith("ahead") else "2"
        argv = [str(ckpt), edf, "--out", str(out), "--workers", workers, *_sets(tmp)]
        proc, lines, pumping = _start_detect(argv)
        target = rng.randint(1, 2)  # early: 20 recordings must outlast four kills

        def started(lines=lines, target=target, proc=proc) -> bool:  # type: ignore[no-untyped-def]
            return _acknowledged(lines) >= target or proc.poll() is not None

        poll(started, what="acknowledged records")
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is not None:
            break  # finished before the kill: the log is complete
        if kind == "ahead-term":  # stops cleanly: the log sealed, exit 130, no traceback
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            assert proc.returncode in (0, 130), "".join(lines)[-3000:]
            assert "Traceback" not in "".join(lines)
        elif kind == "worker":  # a worker dies: the command says so and stops, resumable
            import psutil

            workers = psutil.Process(proc.pid).children()
            workers = [w for w in workers if "resource_tracker" not in " ".join(w.cmdline())]
            if workers:
                workers[0].send_signal(signal.SIGKILL)
            proc.wait(timeout=120)
            assert proc.returncode in (0, 3), "".join(lines)[-3000:]
            if proc.returncode == 3:
                assert "worker process died" in "".join(lines)
        else:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        kills += 1
        pumping.join(timeout=30)  # every line the pipe held, so no acknowledgement is missed
        acknowledged = _acknowledged(lines)
        kept = len(_log_records(out))
        assert kept >= before + acknowledged, (
            f"the killed run acknowledged {acknowledged} records, the log kept "
            f"{kept - before} of them"
        )
    assert kills >= 4, "detect was not interrupted in every way: the test proves too little"
    res = run_ictal("detect", str(ckpt), edf, "--out", str(out), *_sets(tmp))
    assert res.returncode == 0, res.stderr[-2000:]
    assert _events(out) == _events(reference)
    summary = json.loads((out / "summary.json").read_text())
    rows = [line.split(",")[0] for line in _events(out)[1:]]
    assert summary["recordings"] == 20 and summary["done"] == 20, "none missing, none twice"
    assert len({r["recording"] for r in _log_records(out)}) == 20
    assert rows == sorted(rows), "events.csv in a stable order"
    again = run_ictal("detect", str(ckpt), edf, "--out", str(out), *_sets(tmp))
    assert again.returncode == 0 and "0 detected, 20 already in the log" in again.stdout


@pytest.mark.slow
def test_a_bad_edf_is_an_error_record_and_exit_4(trained, tmp_path):
    tmp, ckpt = trained
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = sorted((tmp / "corpus" / "edf" / "eval").rglob("*.edf"))[0]
    shutil.copy(good, inputs / good.name)
    (inputs / "broken.edf").write_bytes(b"0       " + b"garbage" * 40)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# inputs\n{inputs}\n{tmp_path / 'missing.edf'}\n")
    out = tmp_path / "out"
    res = run_ictal("detect", str(ckpt), str(listing), "--out", str(out), "--executor", "serial",
                    *_sets(tmp))  # fmt: skip
    assert res.returncode == 4, res.stderr[-2000:]
    assert "broken.edf" in res.stdout and "missing.edf" in res.stdout
    assert "Traceback" not in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recordings"] == 3 and summary["done"] == 1 and summary["failed"] == 2
    again = run_ictal("detect", str(ckpt), str(listing), "--out", str(out), *_sets(tmp))
    assert again.returncode == 4 and "already in the log" in again.stdout
    # one worker reads the next recording in a thread while the model runs on this one: the
    # same records, failures included, and byte-identical outputs
    ahead = tmp_path / "ahead"
    res = run_ictal("detect", str(ckpt), str(listing), "--out", str(ahead), "--workers", "1",
                    *_sets(tmp))  # fmt: skip
    assert res.returncode == 4 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert (ahead / "events.csv").read_bytes() == (out / "events.csv").read_bytes()
    counts = ("recordings", "done", "failed")
    got, want = (json.loads((d / "summary.json").read_text()) for d in (ahead, out))
    assert [got[k] for k in counts] == [want[k] for k in counts] == [3, 1, 2]
    # by default no more workers than recordings to do: one recording is done in the command
    # itself (a spawned worker would pay torch's import first), with the same events
    single = tmp_path / "single"
    res = run_ictal("detect", str(ckpt), str(inputs / good.name), "--out", str(single),
                    *_sets(tmp))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "with 1 worker(s)" in res.stdout + res.stderr
    assert (single / "events.csv").read_bytes() == (out / "events.csv").read_bytes()
    assert _outputs_of(ahead / "hyp") == _outputs_of(out / "hyp")
    timing = [r["timing"] for r in _log_records(ahead) if r["status"] == "done"]
    assert timing and all({"read_s", "preprocess_s", "infer_s", "total_s"} <= set(t)
                          for t in timing)  # fmt: skip


def _outputs_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_a_rerun_rewrites_no_unchanged_output_file(trained, tmp_path):
    # outputs are rebuilt from the log by every run; a file that would get the same bytes
    # is left alone (same inode and mtime), so a --watch pass or a rerun costs what changed
    tmp, ckpt = trained
    inputs = tmp_path / "in"
    inputs.mkdir()
    for edf in sorted((tmp / "corpus" / "edf" / "eval").rglob("*.edf"))[:2]:
        shutil.copy(edf, inputs / edf.name)
    out = tmp_path / "out"
    args = ("detect", str(ckpt), str(inputs), "--out", str(out), *_sets(tmp))
    assert run_ictal(*args).returncode == 0
    files = [*sorted(p for p in (out / "hyp").rglob("*") if p.is_file()), out / "events.csv"]
    assert len(files) == 5  # .csv_bi and SzCORE .tsv per recording, events.csv
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    written = json.loads((out / "summary.json").read_text())["written"]
    again = run_ictal(*args)
    assert again.returncode == 0 and "already in the log" in again.stdout
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    assert json.loads((out / "summary.json").read_text())["written"] > written
    assert not [p for p in out.rglob("*.tmp")]


@pytest.mark.slow
def test_watch_picks_up_complete_files_and_waits_for_growing_ones(trained, tmp_path):
    tmp, ckpt = trained
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    edfs = sorted((tmp / "corpus" / "edf" / "dev").rglob("*.edf"))
    shutil.copy(edfs[0], inbox / edfs[0].name)
    out = tmp_path / "watched"
    # a file is taken once unchanged for 3 s: the writer below pauses 0.25 s between
    # blocks, so a loaded machine would have to stall it for seconds to fool the check
    proc, lines, _ = _start_detect([str(ckpt), str(inbox), "--out", str(out), "--watch",
                                    "--executor", "serial",
                                    *_sets(tmp, "detect.settle_s=3")])  # fmt: skip
    try:

        def recorded() -> set[str]:
            return {Path(r["recording"]).name for r in _log_records(out)} if out.exists() else set()

        poll(lambda: edfs[0].name in recorded(), what="the first file")
        tmp_copy = inbox / f".{edfs[1].name}.part"
        shutil.copy(edfs[1], tmp_copy)
        tmp_copy.rename(inbox / edfs[1].name)  # copied in later, complete at once
        growing = inbox / edfs[2].name
        data = edfs[2].read_bytes()
        with open(growing, "wb") as fh:  # still being written: never taken half
            for k in range(0, len(data), len(data) // 12 + 1):
                fh.write(data[k : k + len(data) // 12 + 1])
                fh.flush()
                time.sleep(0.25)
                assert growing.name not in recorded(), "a file still being written was taken"
        poll(lambda: {edfs[1].name, edfs[2].name} <= recorded(), what="the later files")
        status = run_ictal("status", str(tmp_path), "--json")
        (row,) = json.loads(status.stdout)
        assert row["status"] == "running" and row["command"] == "detect"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert proc.returncode == 130, "".join(lines)[-3000:]
    failed = [r for r in _log_records(out) if r["status"] != "done"]
    assert not failed, failed
    assert json.loads((out / "summary.json").read_text())["recordings"] == 3


@pytest.mark.slow
def test_two_machines_collect_through_one_sink(s3, trained, tmp_path):
    tmp, ckpt = trained
    edfs = sorted((tmp / "corpus" / "edf").rglob("*.edf"))
    halves = (tmp_path / "a", tmp_path / "b")
    for half, files in zip(halves, (edfs[::2], edfs[1::2]), strict=True):
        listing = half.with_suffix(".txt")
        listing.write_text("\n".join(str(p) for p in files) + "\n")
        sink = _sets(tmp, "sink.url=s3://results/detect")
        res = run_ictal("detect", str(ckpt), str(listing), "--out", str(half),
                        "--prune-after-push", *sink)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        assert not list((half / LOG_DIR).glob("*.seg")), "sealed segments verified and pruned"
    merged = tmp_path / "merged"
    res = run_ictal("detect", "--collect", "s3://results/detect", "--out", str(merged))
    assert res.returncode == 0, res.stderr[-2000:]
    whole = tmp_path / "whole"
    res = run_ictal("detect", str(ckpt), str(tmp / "corpus" / "edf"), "--out", str(whole),
                    *_sets(tmp))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert _events(merged) == _events(whole)
    assert json.loads((merged / "summary.json").read_text())["recordings"] == len(edfs)
    local = tmp_path / "merged-local"  # the two directories (their pruned part is in the sink)
    res = run_ictal("detect", "--collect", *map(str, halves), "--out", str(local),
                    *_sets(tmp, "sink.url=s3://results/detect"))  # fmt: skip
    assert res.returncode == 0 and _events(local) == _events(whole), res.stderr[-2000:]
    # a pruned output directory still resumes: its pruned records are read from the sink
    listing = halves[0].with_suffix(".txt")
    res = run_ictal("detect", str(ckpt), str(listing), "--out", str(halves[0]),
                    *_sets(tmp, "sink.url=s3://results/detect"))  # fmt: skip
    assert res.returncode == 0 and "0 detected" in res.stdout, res.stderr[-2000:]


@pytest.mark.slow
def test_detect_on_ray_writes_what_the_local_executor_writes(trained, tmp_path):
    pytest.importorskip("ray")
    tmp, ckpt = trained
    eval_dir = str(tmp / "corpus" / "edf" / "eval")
    outs = {}
    for kind in ("process", "ray"):
        outs[kind] = tmp_path / kind
        res = run_ictal("detect", str(ckpt), eval_dir, "--out", str(outs[kind]), "--workers", "2",
                        "--executor", kind, *_sets(tmp))  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
    assert _events(outs["ray"]) == _events(outs["process"])
    hosts = {(r["host"], r["pid"]) for r in _log_records(outs["ray"])}
    assert len(hosts) >= 1 and all(pid != 0 for _, pid in hosts)
