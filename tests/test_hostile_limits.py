"""Inputs that exhaust memory or hang, and results kept whole, through the real command line:
devices and FIFOs where a file is expected, YAML bombs, JSON nested 10,000 deep or holding
numbers of thousands of digits, a megabyte of text to print, grids of a million runs, a CPU
budget no run can take, a disk that fills while a checkpoint is written, SIGINT to commands
started with SIGINT ignored, a column given twice. Each is one clear line with its exit code,
never a traceback or a hang (docs/robustness.md, "Limits")."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import fault_env, ictal_env, roots, run_ictal, stall_env, tiny_training
from ictal.cache.manifest import sha256_bytes, table_bytes
from ictal.corpus.synth import synthesize

FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=2", "train.heartbeat_s=0.5")
DEEP = "[" * 10_000 + "]" * 10_000  # JSON nested 10,000 deep
HUGE_INT = "9" * 5_000  # over Python's 4,300-digit limit for int()
HANG = 60  # seconds: a command that reads a FIFO or loops on a bomb would exceed it


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


@contextmanager
def _never_read(fifo: Path) -> Iterator[None]:
    """Fails the test when anything opens ``fifo`` to read it inside the block; a reader that
    would block forever is unblocked (a writer opens and closes) so the test ends."""
    opened, stop = threading.Event(), threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader
                time.sleep(0.005)
                continue
            opened.set()
            os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    assert not opened.is_set(), f"{fifo} was opened to be read"


def _alias_bomb() -> str:
    """The YAML "billion laughs": nine levels of nine aliases, 9^9 strings once expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _nedc(path: Path, duration: str, rows: list[tuple[float, float]]) -> str:
    body = "".join(f"TERM,{a:.4f},{b:.4f},seiz,1.0000\n" for a, b in rows)
    path.write_text(f"# version = csv_v1.0.0\n# duration = {duration} secs\n"
                    f"channel,start_time,stop_time,label,confidence\n{body}")  # fmt: skip
    return str(path)


def _files(tmp: Path) -> dict[str, str]:
    """The hostile files of the table below, written under ``tmp``."""
    (tmp / "bomb.yaml").write_text(_alias_bomb())
    (tmp / "deep.yaml").write_text(f"train: {DEEP}\n")
    (tmp / "deep-map.yaml").write_text('{"a":' * 10_000 + "1" + "}" * 10_000 + "\n")
    (tmp / "int.yaml").write_text(f"train:\n  epochs: {HUGE_INT}\n")
    (tmp / "big.yaml").write_text("corpus:\n  root: '" + "x" * (2 << 20) + "'\n")
    return {
        "bomb": str(tmp / "bomb.yaml"),
        "deep": str(tmp / "deep.yaml"),
        "deep_map": str(tmp / "deep-map.yaml"),
        "int": str(tmp / "int.yaml"),
        "big": str(tmp / "big.yaml"),
        "fifo_yaml": _fifo(tmp / "config.yaml"),
        "fifo_csv": _fifo(tmp / "fifo.csv_bi"),
        "long": _nedc(tmp / "long.csv_bi", "1e12", [(1.0, 2.0)]),
        "runs": str(tmp / "runs"),
        "deep_key": ".".join(["a"] * 1000) + "=1",
        "bomb_value": "model.params={a: &a [1, 1, 1], b: [*a, *a, *a]}",
        "deep_value": "model.params=" + DEEP,
        "int_value": f"train.epochs={HUGE_INT}",
    }


# (id, argv template, exit code, fragment of stderr)
CASES = [
    ("config-dev-zero", ["verify", "-c", "/dev/zero"], 2, "/dev/zero is not a regular file"),
    ("config-fifo", ["verify", "-c", "{fifo_yaml}"], 2, "config.yaml is not a regular file"),
    ("config-alias-bomb", ["verify", "-c", "{bomb}"], 2, "a YAML alias (*a) at line 2"),
    ("config-nested-10000", ["verify", "-c", "{deep}"], 2, "nested more than 32 levels"),
    ("config-json-map-10000", ["verify", "-c", "{deep_map}"], 2, "nested more than 32 levels"),
    ("config-5000-digits", ["verify", "-c", "{int}"], 2, "an integer of 5000 digits at line 2"),
    ("config-2-mib", ["verify", "-c", "{big}"], 2, "more than the 1 MiB Ictal reads"),
    ("set-key-1000-levels", ["verify", "--set", "{deep_key}"], 2, "1000 levels"),
    ("set-alias-bomb", ["verify", "--set", "{bomb_value}"], 2, "a YAML alias (*a)"),
    ("set-nested-10000", ["verify", "--set", "{deep_value}"], 2, "nested more than 32 levels"),
    ("set-5000-digits", ["verify", "--set", "{int_value}"], 2, "an integer of 5000 digits"),
    ("score-dev-zero", ["score", "/dev/zero", "/dev/zero"], 2, "/dev/zero is not a regular file"),
    ("score-fifo", ["score", "{fifo_csv}", "{fifo_csv}"], 2, "fifo.csv_bi is not a regular file"),
    ("score-duration-1e12", ["score", "{long}", "{long}"], 2, "duration 1e+12 s is over 31 days"),
    ("sweep-cpus-10000", ["sweep", "--set", "runs.root={runs}", "--vary", "train.lr=0.1,0.2",
                          "--cpus", "10000"], 2, "give --cpus at most 1026"),
    ("sweep-million-runs", ["sweep", "--set", "runs.root={runs}",
                            "--vary", "train.lr=" + ",".join(f"0.{k:03d}" for k in range(100)),
                            "--vary", "train.seed=" + ",".join(str(k) for k in range(100)),
                            "--seeds", "100"], 2, "1,000,000 runs (100 x 100 x 100 seeds)"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "template", "code", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_hostile_limits_table(tmp_path, name, template, code, fragment):
    files = _files(tmp_path)
    start = time.monotonic()
    res = run_ictal(*[part.format(**files) for part in template], timeout=HANG)
    assert res.returncode == code, f"{name}: exit {res.returncode}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert fragment in res.stderr, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and len(errors[0]) < 400, errors
    runs = Path(files["runs"])
    assert not runs.exists() or not any(runs.iterdir()), "a refused sweep made its directory"
    assert time.monotonic() - start < HANG


@pytest.mark.slow
def test_dpalign_of_40000_events_scores_in_bounded_memory(tmp_path):
    """NEDC's DPALIGN table for 40,000 events would hold 6.4e9 cells (a MemoryError); under a
    2 GiB data limit `ictal score` gives every scorer's counts in seconds."""
    events = [(10.0 * k + 1, 10.0 * k + 2) for k in range(40_000)]
    ref = _nedc(tmp_path / "ref.csv_bi", "400010.0000", events)
    hyp = _nedc(tmp_path / "hyp.csv_bi", "400010.0000", [(a + 0.5, b + 0.5) for a, b in events])

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))

    out = tmp_path / "scores.json"
    res = subprocess.run([sys.executable, "-m", "ictal.cli", "score", ref, hyp, "--json",
                          str(out)], env=ictal_env(), capture_output=True, text=True,
                         timeout=HANG, preexec_fn=limit)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(out.read_text())
    dp = doc["dpalign"]
    assert (dp["n_ref"], dp["hits"], dp["false_alarms"]) == (40_000, 40_000, 0), dp


def test_a_megabyte_of_text_prints_in_seconds(tmp_path):
    """rich's highlighter takes quadratic time on some text (40 KB of '<' took over a minute
    to print); no console or log handler highlights, so a 1 MB setting prints at once."""
    root = "/nowhere/" + "<" * 1_000_000
    config = tmp_path / "c.yaml"
    config.write_text(f"corpus:\n  root: '{root}'\n")
    start = time.monotonic()
    res = run_ictal("explain", "-c", str(config), "--set", f"cache.root={tmp_path / 'cache'}",
                    timeout=HANG)  # fmt: skip
    assert time.monotonic() - start < 30, "printing a long setting took too long"
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "<" * 10_000 in res.stdout.replace("\n", "")


def test_log_lines_on_a_terminal_are_not_highlighted(monkeypatch, capsys):
    """The terminal log handler (rich) prints a 1 MB message at once, as it is."""
    import ictal.ui as ui

    monkeypatch.setattr(ui, "is_terminal", lambda: True)
    ui.setup_logging()
    start = time.monotonic()
    ui.log.info("[bold]" + "<" * 1_000_000)
    elapsed = time.monotonic() - start
    monkeypatch.undo()
    ui.setup_logging()  # the plain handler again
    assert elapsed < 10, f"a 1 MB log line took {elapsed:.0f} s"
    assert "[bold]<<<" in capsys.readouterr().err


def test_readers_refuse_deep_json_huge_numbers_and_fifos(tmp_path):
    """Every JSON reader of run files keeps going: an unreadable heartbeat, run.json or
    trackers.json reads as absent (a FIFO too, without blocking), a damaged metrics line is
    skipped, an operating-points file is a usage error naming it."""
    from ictal.errors import UsageError
    from ictal.events.operating_points import read_operating_points
    from ictal.runs.directory import RunDir
    from ictal.runs.heartbeat import MAX_HEARTBEAT_BYTES, parse_heartbeat, read_heartbeat
    from ictal.runs.meta import read_run_json
    from ictal.runs.metrics import MAX_LINE_BYTES, read_metrics
    from ictal.runs.trackers import read_ids

    bad = {"deep": DEEP, "int": '{"step": ' + HUGE_INT + "}", "list": "[1]", "torn": '{"a":'}
    for name, text in bad.items():
        (tmp_path / f"{name}.json").write_text(text)
        assert read_heartbeat(tmp_path / f"{name}.json") is None
        assert parse_heartbeat(text.encode(), name) is None
        assert read_run_json(tmp_path / f"{name}.json") == {}
        with pytest.raises(UsageError, match=f"operating points file .*{name}.json"):
            read_operating_points(tmp_path / f"{name}.json")
    assert parse_heartbeat(b'{"state": "done"}' + b" " * MAX_HEARTBEAT_BYTES, "big") is None
    assert parse_heartbeat(b'{"state": "done"}', "ok") == {"state": "done"}
    fifo = Path(_fifo(tmp_path / "fifo.json"))
    with _never_read(fifo):
        assert read_heartbeat(fifo) is None and read_run_json(fifo) == {}
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.trackers.write_text(DEEP)
    assert read_ids(run) == {}
    good = [json.dumps({"phase": "train", "step": k}) for k in range(3)]
    lines = [good[0], DEEP, '{"step": ' + HUGE_INT + "}", good[1], "x" * (MAX_LINE_BYTES + 5),
             good[2], '{"torn": ']  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2]
    with _never_read(fifo):
        assert read_metrics(fifo) == []


def _write_sweep(runs: Path, name: str, doc: object) -> Path:
    (runs / name).mkdir(parents=True)
    path = runs / name / "sweep.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


@pytest.mark.slow
def test_a_tampered_sweep_json_is_refused_not_followed(tmp_path):
    """sweep.json names directories: a run name that climbs out is refused (exit 3) and
    nothing is made outside; a file nested 10,000 deep is a usage error (exit 2)."""
    runs = tmp_path / "runs"
    run = {"name": "../../escape", "overrides": [], "status": "queued"}
    _write_sweep(runs, "climb", {"base": {"config": None, "sets": []}, "runs": [run]})
    res = run_ictal("sweep", "--set", f"runs.root={runs}", "--resume", "climb", timeout=HANG)
    assert res.returncode == 3 and "'../../escape' is not one ictal sweep gives" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "escape").exists()
    _write_sweep(runs, "deep", DEEP)
    res = run_ictal("sweep", "--set", f"runs.root={runs}", "--resume", "deep", timeout=HANG)
    assert res.returncode == 2 and "JSON nested too deeply" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr


# ------------------------------------------------------------------ BIDS tables and sidecars


@pytest.fixture(scope="module")
def bids(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bids") / "bids"
    synthesize(root, patients=3, hours=0.2, seed=3, format="bids")
    return root


def test_a_column_given_twice_in_participants_tsv_is_refused(bids, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(bids, root)
    table = (root / "participants.tsv").read_text().splitlines()
    assert "split" in table[0].split("\t"), table[0]
    # a second split column: csv would keep the last one's values and move subjects silently
    table = [table[0] + "\tsplit"] + [row + "\teval" for row in table[1:]]
    (root / "participants.tsv").write_text("\n".join(table) + "\n")
    for argv in (["census", str(root)],
                 ["build", "--set", f"corpus.root={root}", "--set",
                  f"cache.root={tmp_path / 'cache'}"]):  # fmt: skip
        res = run_ictal(*argv, timeout=HANG)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert "participants.tsv: line 1: column 'split' appears twice" in res.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("*/manifest*"))


def test_hostile_sidecars_and_events_tables_spoil_only_their_recording(bids, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(bids, root)
    sidecars = sorted(root.glob("sub-*/**/eeg/*_eeg.json"))
    events = sorted(root.glob("sub-*/**/eeg/*_events.tsv"))
    sidecars[0].write_text('{"PowerLineFrequency": ' + DEEP + "}")
    sidecars[1].write_text('{"PowerLineFrequency": ' + HUGE_INT + "}")
    sidecars[2].unlink()
    _fifo(sidecars[2])
    events[3].unlink()
    _fifo(events[3])
    text = events[4].read_text().splitlines()
    events[4].write_text("\n".join([text[0] + "\teventType"] + [r + "\tsz" for r in text[1:]]))
    out = tmp_path / "census.json"
    res = run_ictal("census", str(root), "--json", str(out), timeout=HANG)
    assert res.returncode == 4 and "Traceback" not in res.stderr, res.stderr[-2000:]
    reasons = {u["file"]: u["reason"] for u in json.loads(out.read_text())["unusable"]}
    assert len(reasons) == 5, reasons
    text = "\n".join(reasons.values())
    assert text.count("not a JSON sidecar") == 2 and text.count("is not a regular file") == 2
    assert "column 'eventType' appears twice" in text


# ------------------------------------------------------------------ a built cache, a trained run


@dataclass(frozen=True)
class World:
    tmp: Path
    corpus: Path
    cache: Path
    runs: Path
    run: Path

    def sets(self, *extra: str) -> list[str]:
        return roots(self.corpus, self.cache, self.runs, *FAST, *extra)

    @property
    def key_dir(self) -> Path:
        (path,) = [p for p in self.cache.iterdir() if p.is_dir() and len(p.name) == 16]
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("limits")
    synthesize(tmp / "corpus", patients=4, hours=0.5, seed=1)
    w = World(tmp, tmp / "corpus", tmp / "cache", tmp / "runs", tmp)
    res = run_ictal("build", "--workers", "1", *w.sets())
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_ictal("train", *w.sets())
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = list((tmp / "runs").iterdir())
    return World(tmp, w.corpus, w.cache, w.runs, run)


def _cache_copy(world: World, tmp: Path) -> tuple[Path, list[str]]:
    root = tmp / "cache"
    shutil.copytree(world.key_dir, root / world.key_dir.name)
    return root / world.key_dir.name, world.sets(f"cache.root={root}")


@pytest.mark.slow
def test_a_manifest_or_table_nested_deep_or_with_huge_numbers_is_refused(world, tmp_path):
    cache_dir, sets = _cache_copy(world, tmp_path)
    manifest = cache_dir / "manifest.json"
    good = manifest.read_text()
    manifest.write_text(DEEP)
    res = run_ictal("verify", *sets, timeout=HANG)
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "manifest.json: JSON nested too deeply" in res.stderr
    rows = json.loads((cache_dir / "recordings.json").read_text())
    data = table_bytes(rows).replace(b'"bytes":', b'"bytes":' + HUGE_INT.encode() + b',"x":', 1)
    (cache_dir / "recordings.json").write_bytes(data)
    man = json.loads(good)
    man["table"]["sha256"] = sha256_bytes(data)  # as an attacker holding the bucket would
    manifest.write_text(json.dumps(man))
    for cmd in ("verify", "train"):
        res = run_ictal(cmd, *sets, timeout=HANG)
        assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert "recordings.json: not valid JSON" in res.stderr


@pytest.mark.slow
def test_status_lists_every_run_whatever_one_heartbeat_holds(world, tmp_path):
    runs = tmp_path / "runs"
    for name, content in (("a-deep", DEEP), ("b-int", '{"state": ' + HUGE_INT + "}")):
        shutil.copytree(world.run, runs / name)
        (runs / name / "heartbeat.json").write_text(content)
    shutil.copytree(world.run, runs / "c-fifo")
    (runs / "c-fifo" / "heartbeat.json").unlink()
    _fifo(runs / "c-fifo" / "heartbeat.json")
    shutil.copytree(world.run, runs / world.run.name)
    res = run_ictal("status", str(runs), "--json", timeout=HANG)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    rows = {r["run"]: r["status"] for r in json.loads(res.stdout)}
    assert rows[world.run.name] == "done"
    assert all(rows[n] == "unknown" for n in ("a-deep", "b-int", "c-fifo")), rows


@pytest.mark.slow
def test_disk_full_while_a_checkpoint_is_written_keeps_the_last_one(world, tmp_path):
    """The disk takes the first checkpoint's bytes and refuses the next one's (ENOSPC on
    write, which torch reports as "unexpected pos"): exit 3 naming the checkpoint and
    runs.root, the first checkpoint intact, and the same command resumes."""
    from ictal.models.checkpoint import load_checkpoint

    runs = tmp_path / "runs"
    sets = world.sets(f"runs.root={runs}", "train.epochs=3", "train.checkpoint_every_s=0.001")
    env = fault_env("ENOSPC", f"{runs}/*/checkpoints/*", after=1)
    env["ICTAL_FAULT_AT"] = "write"
    res = run_ictal("train", *sets, env=env)
    assert res.returncode == 3, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and "unexpected pos" not in res.stderr
    (run,) = runs.iterdir()
    assert f"disk full writing {run}/checkpoints/" in res.stderr, res.stderr[-2000:]
    assert "(under runs.root)" in res.stderr and "fix: free space on runs.root's disk" in res.stderr
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.pt" in kept and not [n for n in kept if n.endswith(".tmp")], kept
    load_checkpoint(run / "checkpoints" / "last.pt")  # the first checkpoint, whole
    res = run_ictal("train", *sets, "--resume")
    assert res.returncode == 0, res.stderr[-2000:]


def _no_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _ignoring_sigint(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`ictal ARGS` started as a background job of a script starts: SIGINT ignored."""
    return subprocess.Popen([sys.executable, "-m", "ictal.cli", *args], env=env or ictal_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_no_sigint)  # fmt: skip


def _poll(condition, proc: subprocess.Popen, what: str, timeout: float = 180.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert proc.poll() is None, f"ended before {what}: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"{what} not reached in {timeout:.0f} s"
        time.sleep(0.01)
    return value


@pytest.mark.slow
def test_sigint_stops_a_build_started_with_sigint_ignored(world, tmp_path):
    root = tmp_path / "cache"
    sets = world.sets(f"cache.root={root}")
    # The second recording's array never starts: the build is still running when SIGINT
    # comes, however long this process waited to send it (8 recordings take a second).
    stalled = stall_env(f"{root}/*.building-*/arrays/*", after=1)
    proc = _ignoring_sigint("build", "--workers", "1", *sets, env=stalled)
    _poll(lambda: list(root.glob("*.building-*/records/*.json")), proc, "a first recording")
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(
            f"SIGINT did not stop the build: {proc.communicate()[1][-2000:]}"
        ) from None
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted, resumable" in err and "Traceback" not in err
    (building,) = root.glob("*.building-*")
    done = len(list((building / "records").glob("*.json")))
    res = run_ictal("build", "--workers", "1", *sets)
    assert res.returncode == 0 and f"{done} skipped" in res.stdout, res.stdout + res.stderr


@pytest.mark.slow
def test_sigint_stops_a_detect_started_with_sigint_ignored(world, tmp_path):
    from ictal.detect.records import LOG_DIR, decode
    from ictal.io.framelog import read_records, segments

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    for edf in sorted(world.corpus.rglob("*.edf"))[:2]:
        shutil.copy(edf, inbox / edf.name)
    ckpt = world.run / "checkpoints" / "last.pt"
    proc = _ignoring_sigint("detect", str(ckpt), str(inbox), "--out", str(out), "--watch",
                            "--executor", "serial", *world.sets("detect.poll_s=0.2",
                                                                "detect.settle_s=0"))  # fmt: skip

    def recorded() -> int:
        if not (out / LOG_DIR).is_dir():
            return 0
        return sum(decode(p) is not None for p in read_records(segments(out / LOG_DIR)))

    _poll(lambda: recorded() >= 2, proc, "both files recorded")  # then it waits for more
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted, resumable" in err and "Traceback" not in err
    assert recorded() == 2
