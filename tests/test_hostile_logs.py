"""Hostile and damaged record logs, records and inputs of `ictal detect` (docs/robustness.md,
"Record logs and detect inputs"): damage costs only the damaged bytes and is said with its
offset, recovery stays kill -9 safe, readers survive a writer sealing under them, every
record is validated, CSV cells never become formulas, no credential is stored, and a FIFO
or device is refused instead of blocking a worker."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import ictal_env, poll, run_ictal, settings, tiny_training
from ictal.corpus.synth import synthesize
from ictal.detect.outputs import names_of
from ictal.detect.records import LOG_DIR, InvalidRecord, decode, encode, parse
from ictal.io.cells import text_cell
from ictal.io.framelog import (
    HEADER,
    MAGIC,
    OPEN,
    REPAIR,
    SEALED,
    SegmentWriter,
    frame,
    read_frames,
    read_log,
    read_records,
    recover,
    scan_bytes,
    segments,
)
from ictal.io.redact import note_url, redact

# ----------------------------------------------------------------------------- frames


def _payload(k: int) -> bytes:
    return json.dumps({"k": k, "pad": "x" * (k % 53)}).encode()


def _dead_writer(directory: Path, n: int, prefix: str = "host-1") -> tuple[Path, list[int]]:
    """An ``.open`` segment of ``n`` frames whose writer died (its flock gone with it), and
    the offset of every frame."""
    w = SegmentWriter(directory, prefix)
    for k in range(n):
        w.append(_payload(k))
    assert w.path is not None
    path = w.path
    os.close(w.fd)
    offsets = [sum(HEADER.size + len(_payload(j)) for j in range(k)) for k in range(n + 1)]
    return path, offsets


def _flip(path: Path, *positions: int) -> None:
    data = bytearray(path.read_bytes())
    for pos in positions:
        data[pos] ^= 0x40
    path.write_bytes(bytes(data))


def _keys(payloads: list[bytes]) -> list[int]:
    return [json.loads(p)["k"] for p in payloads]


def test_one_flipped_byte_in_frame_0_of_120_costs_one_frame(tmp_path):
    path, offsets = _dead_writer(tmp_path, 120)
    _flip(path, HEADER.size + 3)  # a payload byte of frame 0
    (done,) = recover(tmp_path)
    assert done.damaged and done.original == path and done.segment.suffix == SEALED
    assert _keys(list(read_records([done.segment]))) == list(range(1, 120))
    line = done.describe()
    assert str(path) in line and f"{offsets[1]} bytes at byte 0 (CRC mismatch, 1 frame)" in line
    assert "119 records kept" in line
    assert done.segment.stat().st_size == offsets[120] - offsets[1], "rewritten, frames whole"
    assert not list(tmp_path.glob(f".*{REPAIR}")), "no repair temp left behind"


@pytest.mark.parametrize("seed", range(12))
def test_random_damage_costs_exactly_the_frames_it_touches(tmp_path, seed):
    """Flips anywhere (magic, length, CRC, payload) in an open or a sealed segment: every
    untouched frame is kept, in order, once; a touched one is never returned."""
    rng = random.Random(seed)
    n = rng.randint(5, 60)
    path, offsets = _dead_writer(tmp_path, n)
    flips = sorted(rng.sample(range(offsets[n]), rng.randint(1, 4)))
    _flip(path, *flips)
    touched = {k for k in range(n) for f in flips if offsets[k] <= f < offsets[k + 1]}
    untouched = [k for k in range(n) if k not in touched]
    if seed % 2:  # a sealed segment is read the same way (and never rewritten)
        sealed = path.with_suffix(SEALED)
        path.rename(sealed)
        before = sealed.read_bytes()
        warnings: list[str] = []
        assert _keys(list(read_records([sealed], warnings))) == untouched
        assert sealed.read_bytes() == before
        assert len(warnings) == 1 and str(sealed) in warnings[0]
    else:
        (done,) = recover(tmp_path)
        assert _keys(list(read_records([done.segment]))) == untouched
        first = min(touched)
        assert f"at byte {offsets[first]} " in done.describe(), done.describe()


def _damage(rng: random.Random, data: bytearray) -> Callable[[int, int], bool]:
    """Damage ``data`` in place one way or another; returns whether the original byte range
    ``[a, b)`` of a frame was touched."""
    kind = rng.choice(["flip", "flips", "delete", "insert", "zeros"])
    at = rng.randrange(len(data))
    if kind == "flip":
        data[at] ^= 1 << rng.randrange(8)
        return lambda a, b: a <= at < b
    if kind == "flips":
        spots = rng.sample(range(len(data)), min(len(data), 5))
        for spot in spots:
            data[spot] ^= 0xFF  # a length byte can claim megabytes: resync must not give up
        return lambda a, b: any(a <= spot < b for spot in spots)
    if kind == "insert":
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 50)))
        return lambda a, b: a < at < b
    stop = min(len(data), at + rng.randint(1, 50))
    if kind == "delete":
        del data[at:stop]
    else:  # what a crash can leave: zeros (an empty frame's CRC is 0: never a record)
        data[at:stop] = bytes(stop - at)
    return lambda a, b: a < stop and at < b


def test_any_damage_costs_only_the_frames_it_touches():
    """Flips, deletions, insertions, zeroed stretches: every frame outside the damage is
    found, in order, once, and nothing that is not one of the frames is ever returned."""
    rng = random.Random(3)
    for _ in range(600):
        n = rng.randint(1, 40)
        payloads = [_payload(rng.randrange(1000) * 40 + k) for k in range(n)]
        frames = [frame(p) for p in payloads]
        offsets = [sum(len(f) for f in frames[:k]) for k in range(n + 1)]
        data = bytearray(b"".join(frames))
        touched = _damage(rng, data)
        got = scan_bytes(bytes(data)).records
        assert all(p in payloads for p in got)
        order = [payloads.index(p) for p in got]
        assert order == sorted(set(order))
        untouched = {k for k in range(n) if not touched(offsets[k], offsets[k + 1])}
        assert untouched <= set(order), sorted(untouched - set(order))


def test_a_torn_tail_after_inner_damage_is_dropped_and_both_said(tmp_path):
    path, offsets = _dead_writer(tmp_path, 20)
    _flip(path, offsets[7] + 1)  # the magic of frame 7
    with open(path, "ab") as fh:  # a last write cut short
        fh.write(MAGIC + (500).to_bytes(4, "little") + b"\0\0\0\0" + b"{}")
    (done,) = recover(tmp_path)
    assert _keys(list(read_records([done.segment]))) == [k for k in range(20) if k != 7]
    line = done.describe()
    assert f"at byte {offsets[7]} (no frame header" in line
    assert f"at byte {offsets[20]} (a frame cut after 2 of 500 bytes)" in line


def test_a_crafted_segment_of_false_headers_is_scanned_in_bounded_time(tmp_path):
    """Every 12 bytes a header claiming 4 MiB: checking each candidate's CRC would take hours."""
    fake = MAGIC + (4 << 20).to_bytes(4, "little") + b"\1\2\3\4"
    data = b"garbage!" + fake * ((16 << 20) // len(fake))
    t = time.monotonic()
    found = scan_bytes(data)
    assert time.monotonic() - t < 20
    assert found.records == [] and found.dropped == len(data)


RECOVER = """
import sys
from pathlib import Path
from ictal.io.framelog import recover
recover(Path(sys.argv[1]))
"""


@pytest.mark.slow
def test_recovery_killed_at_any_moment_loses_no_valid_frame(tmp_path):
    """SIGKILL while the repaired copy is being written, and at random moments after: the
    next recovery still keeps every valid frame exactly once."""
    rng = random.Random(5)
    for attempt in range(4):
        log_dir = tmp_path / f"log{attempt}"
        w = SegmentWriter(log_dir, "big", max_bytes=1 << 40)
        pad = b"y" * 200
        for k in range(60000):
            w.append(b'{"k": %d, "pad": "%s"}' % (k, pad))
        assert w.path is not None
        path = w.path
        os.close(w.fd)
        _flip(path, HEADER.size + 2)  # frame 0: recovery must rewrite
        proc = subprocess.Popen([sys.executable, "-c", RECOVER, str(log_dir)], env=ictal_env())
        temp = log_dir / f".{path.name}{REPAIR}"
        if attempt == 0:  # exactly while the repaired copy is being written
            poll(lambda temp=temp, proc=proc: temp.exists() or proc.poll() is not None,
                  what="the repair temp")  # fmt: skip
        else:
            time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if attempt == 0:
            assert temp.exists(), "the kill did not land inside the rewrite: it proves nothing"
        recover(log_dir)
        (seg,) = segments(log_dir)
        keys = _keys(list(read_records([seg])))
        assert keys == list(range(1, 60000)), f"attempt {attempt}: {len(keys)} frames kept"
        assert not list(log_dir.glob(f".*{REPAIR}"))


# ----------------------------------------------------------------------------- live logs

WRITER = """
import sys
from pathlib import Path
from ictal.io.framelog import SegmentWriter
w = SegmentWriter(Path(sys.argv[1]), "live", fsync_s=10.0, max_bytes=int(sys.argv[2]))
for k in range(int(sys.argv[3])):
    w.append(('{"k": %d}' % k).encode())
    print(k, flush=True)
w.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize(("max_bytes", "n"), [(60, 800), (400, 5000)])
def test_readers_and_recovery_survive_a_writer_sealing_under_them(tmp_path, max_bytes, n):
    """A writer seals and opens segments as fast as it can while the test lists and reads the
    log, and runs recovery, in a loop: no reader fails, a read never returns a record twice,
    recovery never takes a live writer's segment, and every acknowledged record is there."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(max_bytes), str(n)],
                            env=ictal_env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    acked = [-1]

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            acked[0] = int(line)

    threading.Thread(target=pump, daemon=True).start()
    reads = sealed_during = 0
    while proc.poll() is None:
        before = acked[0]
        listed = segments(tmp_path)
        warnings: list[str] = []
        keys = _keys([f.payload for f in read_log(tmp_path, warnings)])
        assert len(keys) == len(set(keys)), "a record read twice"
        assert not warnings, warnings
        assert set(range(before + 1)) <= set(keys), "a record acknowledged before the read"
        sealed_during += sum(1 for p in listed if p.suffix == OPEN and not p.exists())
        if reads % 5 == 0:
            assert recover(tmp_path) == [], "recovery took a live writer's segment"
        reads += 1
    assert proc.returncode == 0, "the writer failed (a recovery sealed its segment?)"
    assert reads > 20 and sealed_during > 0, "no read raced a seal: the test proves nothing"
    assert _keys(list(read_records(segments(tmp_path)))) == list(range(n))


def test_a_fifo_or_a_link_in_the_log_is_never_opened_nor_followed(tmp_path):
    log_dir = tmp_path / "log"
    path, _ = _dead_writer(log_dir, 3)
    os.mkfifo(log_dir / "pipe-000000.seg")
    os.mkfifo(log_dir / "pipe-000001.open")
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious, and not a segment")
    (log_dir / "evil-000000.open").symlink_to(victim)
    (log_dir / "evil-000001.seg").symlink_to(victim)
    done = recover(log_dir)
    assert [d.original for d in done] == [path]
    assert victim.read_bytes() == b"precious, and not a segment"
    assert (log_dir / "evil-000000.open").is_symlink()
    assert [p.name for p in segments(log_dir)] == [path.with_suffix(SEALED).name]
    assert len(list(read_frames(segments(log_dir)))) == 3


# ----------------------------------------------------------------------------- records


def _record(**change: Any) -> dict[str, Any]:
    rec = {"v": 1, "recording": "/data/a.edf", "name": "a", "status": "done",
           "duration_s": 100.0, "fs_out": 1.0, "events": [[1.0, 5.0, 0.9], [10.0, 20.0, 0.5]],
           "time": 1.7e9, "host": "h", "pid": 3, "source": {"size": 10, "mtime": "1"},
           "model_sha256": "m", "settings_sha256": "s"}  # fmt: skip
    rec.update(change)
    return rec


BAD_RECORDS = [
    ("duration_s", {"duration_s": 0}),
    ("duration_s", {"duration_s": -5.0}),
    ("duration_s", {"duration_s": 1e308}),
    ("duration_s", {"duration_s": "100"}),
    ("events[0]", {"events": [[5.0, 1.0, 0.9]]}),
    ("events[0]", {"events": [[-1.0, 5.0, 0.9]]}),
    ("events[0]", {"events": [[90.0, 150.0, 0.9]]}),
    ("events[0]", {"events": [[1.0, 5.0, 7.5]]}),
    ("events[0]", {"events": [[1.0, 5.0, -0.1]]}),
    ("events[0]", {"events": [[1.0, 5.0]]}),
    ("events[0]", {"events": [[1.0, 5.0, True]]}),
    ("events[1]", {"events": [[1.0, 5.0, 0.9], [4.0, 6.0, 0.9]]}),
    ("events", {"events": {"a": 1}}),
    ("fs_out", {"fs_out": 0}),
    ("fs_out", {"fs_out": 1e-9}),
    ("recording", {"recording": ""}),
    ("recording", {"recording": 5}),
    ("status", {"status": "maybe"}),
    ("time", {"time": float("inf")}),
    ("pid", {"pid": "x"}),
    ("host", {"host": 5}),
    ("source", {"source": [1]}),
    ("source.size", {"source": {"size": -1}}),
    ("model_sha256", {"model_sha256": ["x"]}),
    ("error", {"status": "failed", "error": None}),
    ("error", {"status": "failed", "error": "x" * 20000}),
    ("v", {"v": 2}),
]  # fmt: skip


_BAD_IDS = [f"{f}-{k}" for k, (f, _) in enumerate(BAD_RECORDS)]


@pytest.mark.parametrize(("field", "change"), BAD_RECORDS, ids=_BAD_IDS)
def test_an_invalid_record_is_refused_naming_the_field(field, change):
    payload = json.dumps(_record(**change)).encode()
    with pytest.raises(InvalidRecord, match=rf"^{re.escape(field)} is "):
        parse(payload)
    assert decode(payload) is None


@pytest.mark.parametrize("payload", [b"", b"[1]", b"{", b"[" * 100000, b"1" * 5000, b"\xff"])
def test_a_payload_that_is_not_a_record_is_refused(payload):
    with pytest.raises(InvalidRecord):
        parse(payload)


def test_a_valid_record_passes_and_an_event_may_end_within_one_output_step():
    assert parse(json.dumps(_record(events=[[90.0, 100.9, 0.5]])).encode())["name"] == "a"
    assert decode(encode({k: v for k, v in _record().items() if k != "v"})) is not None


@pytest.mark.parametrize(
    "url",
    ["s3://user:S3CRET@bucket/x.edf", "s3://user:S3@CRET@bucket/x.edf",
     "https://u:S3CRET@h/x.edf?token=S3CRET", "s3://b/x.edf?X-Amz-Signature=S3CRET"],
)  # fmt: skip
def test_an_input_location_and_its_errors_are_masked(url):
    note_url(url)  # what detect does with each input it opens
    key = redact(url)
    error = redact(f"Invalid bucket name {url.split('://')[1]!r}: {url}")
    for text in (key, error):
        assert "CRET" not in text and "***" in text, text


def test_records_carry_no_credential():
    rec = _record(recording="s3://***@b/a.edf",
                  error="https://u:S3CRET@host/x?X-Amz-Signature=S3CRET failed")  # fmt: skip
    assert b"S3CRET" not in encode(rec)
    assert "S3CRET" not in json.dumps(parse(json.dumps(rec | {"v": 1}).encode()))


def test_two_records_claiming_one_name_get_two_outputs():
    results = {"/a/x.edf": _record(recording="/a/x.edf", name="x"),
               "/b/x.edf": _record(recording="/b/x.edf", name="x"),
               "/c/y.edf": _record(recording="/c/y.edf", name="y")}  # fmt: skip
    names = names_of(results)
    assert len(set(names.values())) == 3 and names["/c/y.edf"] == "y"


@pytest.mark.parametrize(
    ("text", "cell"),
    [("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-1", "'-1"),
     ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "' =1"), ("  =1", "'  =1"),
     ("\tx", "'\tx"), ("\uff1d1", "'\uff1d1"), ("/data/a.edf", "/data/a.edf"),
     ("/a\n=1", "/a =1"), ("s3://b/a", "s3://b/a"), ("a=b", "a=b"), ("", "")],
)  # fmt: skip
def test_a_text_cell_never_starts_a_formula(text, cell):
    assert text_cell(text) == cell
    assert not {"\t", "\r", "\n"} & set(text_cell(text, tsv=True))


# ----------------------------------------------------------------------------- the CLI

FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=2", "train.heartbeat_s=0.5",
                     "detect.settle_s=0.5", "detect.poll_s=0.2")  # fmt: skip


@dataclass(frozen=True)
class World:
    """A corpus of eight recordings, a trained checkpoint and a finished detect output."""

    tmp: Path
    ckpt: Path
    edf: Path
    reference: Path

    def sets(self, *extra: str) -> list[str]:
        return settings(self.tmp, "runs", FAST, *extra)

    def detect(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return run_ictal("detect", str(self.ckpt), *args, "--threshold", "0.3", "--executor",
                         "serial", *self.sets(), timeout=300, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("hostile-logs")
    synthesize(tmp / "corpus", patients=4, hours=0.5, seed=4)
    w = World(tmp, Path(), tmp / "corpus" / "edf", tmp / "reference")
    for cmd in (["build", "--workers", "1"], ["train"]):
        res = run_ictal(*cmd, *w.sets())
        assert res.returncode == 0, res.stderr[-2000:]
    (ckpt,) = (tmp / "runs").glob("*/checkpoints/last.pt")
    w = World(tmp, ckpt, w.edf, w.reference)
    res = w.detect(str(w.edf), "--out", str(w.reference))
    assert res.returncode == 0, res.stderr[-2000:]
    return w


def _events(out: Path) -> list[str]:
    return (out / "events.csv").read_text().splitlines()


def _clean(res: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in res.stderr, res.stderr[-3000:]


def _this_run(res: subprocess.CompletedProcess) -> tuple[int, int]:
    m = re.search(r"(\d+) detected, (\d+) already in the log", res.stdout)
    assert m, res.stdout
    return int(m.group(1)), int(m.group(2))


def _start(world: World, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """A detect process and its stderr lines, read as they come."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ictal.cli", "detect", str(world.ckpt), *args, "--threshold",
         "0.3", *world.sets()],
        env=ictal_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        lines.extend(proc.stderr)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _acknowledged(lines: list[str]) -> int:
    found = [int(m.group(1)) for line in list(lines)
             if (m := re.search(r"acknowledged (\d+)/", line))]  # fmt: skip
    return max(found, default=0)


@pytest.mark.slow
def test_kill9_then_a_flipped_byte_in_frame_0_recomputes_only_that_recording(world, tmp_path):
    out = tmp_path / "out"
    proc, lines = _start(world, str(world.edf), "--out", str(out), "--executor", "serial")
    poll(lambda: _acknowledged(lines) >= 4 or proc.poll() is not None, what="4 records")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "detect finished before the kill"
    (segment,) = (out / LOG_DIR).glob(f"*{OPEN}")
    kept = len(list(read_records([segment])))
    assert 4 <= kept < 8, f"the kill came after {kept} of 8 records: it proves nothing"
    _flip(segment, HEADER.size + 5)  # one payload byte of frame 0
    res = world.detect(str(world.edf), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    _clean(res)
    assert _this_run(res) == (8 - (kept - 1), kept - 1), "only the lost one is computed again"
    assert f"{segment}: dropped " in res.stderr
    assert "at byte 0 (CRC mismatch, 1 frame)" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert any("at byte 0 (CRC mismatch" in w for w in summary["warnings"])
    assert summary["done"] == 8
    assert _events(out) == _events(world.reference)
    sealed = segment.with_suffix(SEALED)
    assert len(list(read_records([sealed]))) == kept - 1, "the intact frames were kept"
    again = world.detect(str(world.edf), "--out", str(out))
    assert again.returncode == 0 and _this_run(again) == (0, 8)
    assert "dropped" not in again.stderr, "the repaired segment is clean"


@pytest.mark.slow
def test_damage_in_the_middle_of_a_sealed_segment_recomputes_that_recording(world, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(world.reference, out)
    (segment,) = (out / LOG_DIR).glob(f"*{SEALED}")
    frames = list(read_frames([segment]))
    victim = frames[3]
    _flip(segment, victim.offset + HEADER.size + 10)
    res = world.detect(str(world.edf), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    _clean(res)
    assert _this_run(res) == (1, 7)
    assert f"{segment}: dropped" in res.stderr and f"at byte {victim.offset} " in res.stderr
    assert _events(out) == _events(world.reference)


def _tampered(world: World, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A copy of the reference output with a segment of hostile records appended: invalid
    ones, and valid ones whose recording name is a spreadsheet formula."""
    out = tmp_path / "tampered"
    shutil.copytree(world.reference, out)
    (good,) = [r for p in read_records(segments(out / LOG_DIR)) if (r := decode(p))][:1]
    now = time.time() + 1000  # newer than every honest record
    base = {**good, "duration_s": 100.0, "fs_out": 1.0, "events": [], "time": now}
    bad = [{**base, **change} for _, change in BAD_RECORDS[:14]]
    formulas = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)",
                "\t=1+1", "\r=1+1"]  # fmt: skip
    valid = [{**good, "recording": f, "name": f"f{k}", "time": now} for k, f in enumerate(formulas)]
    w = SegmentWriter(out / LOG_DIR, "evil")
    for rec in bad + valid:
        w.append(json.dumps(rec).encode())
    w.close()
    return out, valid


def _no_formula_cells(path: Path) -> None:
    """Every row of the file, as a spreadsheet splits it (at any line break), has text cells
    that cannot start a formula."""
    text = path.read_bytes().decode()
    for line in re.split(r"\r\n|\r|\n", text):
        for row in csv.reader([line]):
            assert len(row) in (0, 5), row
            for cell in row[:1] + row[4:]:  # the text columns
                assert not cell.lstrip(" \t").startswith(("=", "+", "-", "@")), row
                assert not cell.startswith("\t"), row


@pytest.mark.slow
def test_tampered_records_are_skipped_one_warning_each_and_csv_cells_stay_text(world, tmp_path):
    out, valid = _tampered(world, tmp_path)
    merged = tmp_path / "merged"
    res = run_ictal("detect", "--collect", str(out), "--out", str(merged))
    assert res.returncode == 4, res.stderr[-3000:]
    _clean(res)
    skipped = [line for line in res.stderr.splitlines() if "skipped:" in line]
    assert len(skipped) == 14 and all("evil-000000.seg: record at byte" in s for s in skipped)
    for field in ("duration_s is 0", "duration_s is -5.0", "events[0] is [5.0, 1.0, 0.9]",
                  "peak_prob must be a probability", "events[1] is", "fs_out is 0"):  # fmt: skip
        assert any(field in s for s in skipped), field
    summary = json.loads((merged / "summary.json").read_text())
    assert summary["done"] == 8 + len(valid) and summary["failed"] == 0
    assert len([w for w in summary["warnings"] if "skipped:" in w]) == 14
    _no_formula_cells(merged / "events.csv")
    assert "'=HYPERLINK" in (merged / "events.csv").read_text()
    # detect itself reads the same log: it goes on, and the honest results stand
    res = world.detect(str(world.edf), "--out", str(out))
    assert res.returncode == 0 and _this_run(res) == (0, 8), res.stderr[-3000:]
    _clean(res)
    _no_formula_cells(out / "events.csv")


@pytest.mark.slow
def test_a_hostile_sink_breaks_no_collect(s3, world, tmp_path):
    import fsspec

    out, _ = _tampered(world, tmp_path)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    for seg in segments(out / LOG_DIR):
        fs.put_file(str(seg), f"results/logs-hostile/run-1/{LOG_DIR}/{seg.name}")
    garbage = bytes(range(256)) * 64
    fs.pipe_file(f"results/logs-hostile/run-2/{LOG_DIR}/x-000000{SEALED}", garbage)
    honest = [p for p in segments(out / LOG_DIR) if not p.name.startswith("evil")]
    for seg in honest:
        fs.pipe_file(f"results/logs-hostile/run-3/{LOG_DIR}/{seg.name}", seg.read_bytes()[:-7])
    merged = tmp_path / "merged"
    res = run_ictal("detect", "--collect", "s3://results/logs-hostile", "--out", str(merged))
    assert res.returncode == 4, res.stderr[-3000:]
    _clean(res)
    assert "run-2/log/x-000000.seg: dropped 16384 bytes at byte 0" in res.stderr
    assert len([line for line in res.stderr.splitlines() if "skipped:" in line]) == 14
    _no_formula_cells(merged / "events.csv")


@pytest.mark.slow
def test_no_credential_is_stored_or_printed(s3, world, tmp_path):
    import fsspec

    secret = "S3CR3T-PASSWORD"
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    edfs = sorted(world.edf.rglob("*.edf"))
    fs.put_file(str(edfs[0]), "results/in/a.edf")
    listing = tmp_path / "list.txt"
    listing.write_text(f"s3://user:{secret}@results/in/a.edf\n"
                       f"s3://results/in/b.edf?X-Amz-Signature={secret}\n"
                       f"https://user:{secret}@127.0.0.1:9/c.edf\n")  # fmt: skip
    out = tmp_path / "out"
    res = world.detect(
        f"s3://user:{secret}@results/in", "s3://results/in/a.edf",
        f"s3://results/in?token={secret}", str(listing), "--out", str(out),
        "--set", "sink.url=s3://results/logs-detect",
    )  # fmt: skip
    assert res.returncode == 4, res.stderr[-3000:]
    _clean(res)
    assert secret not in res.stdout + res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == 1 and summary["failed"] >= 5
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    pushed = fs.find("results/logs-detect")
    assert any(p.endswith(SEALED) for p in pushed), "the log was pushed"
    for path in pushed:
        assert secret.encode() not in fs.cat_file(path), path


@pytest.mark.slow
def test_fifos_and_devices_are_refused_not_read(world, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    edfs = sorted(world.edf.rglob("*.edf"))
    shutil.copy(edfs[0], inbox / edfs[0].name)
    shutil.copy(edfs[1], inbox / "sub-01_task-x_eeg.edf")
    os.mkfifo(inbox / "sub-01_task-x_eeg.json")  # a BIDS sidecar that never ends
    os.mkfifo(inbox / "pipe.edf")
    (inbox / "zero.edf").symlink_to("/dev/zero")
    fifo_list = tmp_path / "list.fifo"
    os.mkfifo(fifo_list)
    named = tmp_path / "named.edf"
    os.mkfifo(named)
    out = tmp_path / "out"
    res = world.detect(str(inbox), str(named), str(fifo_list), "/dev/zero", "--out", str(out))
    assert res.returncode == 4, res.stderr[-3000:]
    _clean(res)
    summary = json.loads((out / "summary.json").read_text())
    failures = {Path(f["recording"]).name: f["error"] for f in summary["failures"]}
    for name in ("pipe.edf", "zero.edf", "list.fifo", "named.edf", "zero"):
        assert "is not a regular file" in failures[name], failures
    assert "sidecar" in failures["sub-01_task-x_eeg.edf"], failures
    assert summary["done"] == 1
    warned = [line for line in res.stderr.splitlines() if "WARNING" in line]
    for path in (inbox / "pipe.edf", inbox / "zero.edf", fifo_list, named, Path("/dev/zero")):
        said = [line for line in warned if f"{path}: is not a regular file" in line]
        assert len(said) == 1, warned


@pytest.mark.slow
@pytest.mark.parametrize("rel", ["log", "hyp", "hyp/szcore", "probs"])
def test_an_output_subdirectory_leading_outside_is_refused(world, tmp_path, rel):
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (out / rel).parent.mkdir(parents=True)
    (out / rel).symlink_to(outside, target_is_directory=True)
    res = world.detect(str(sorted(world.edf.rglob("*.edf"))[0]), "--out", str(out),
                       "--save-probs")  # fmt: skip
    assert res.returncode == 3 and f"{rel}' resolves to {outside}" in res.stderr, res.stderr
    _clean(res)
    collect = run_ictal("detect", "--collect", str(world.reference), "--out", str(out))
    assert collect.returncode == 3 and "outside" in collect.stderr, collect.stderr
    assert not list(outside.iterdir()), "nothing was written outside --out"


@pytest.mark.slow
def test_watch_refuses_a_fifo_once_and_goes_on(world, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    edfs = sorted(world.edf.rglob("*.edf"))
    out = tmp_path / "out"
    proc, lines = _start(world, str(inbox), "--out", str(out), "--watch", "--executor", "serial")
    try:
        poll(lambda: (out / "heartbeat.json").exists(), what="the watcher")
        os.mkfifo(inbox / "pipe.edf")
        shutil.copy(edfs[0], inbox / f".{edfs[0].name}.part")
        (inbox / f".{edfs[0].name}.part").rename(inbox / edfs[0].name)

        def recorded() -> dict[str, str]:
            found = read_records(segments(out / LOG_DIR))
            return {Path(r["recording"]).name: r["status"] for p in found if (r := decode(p))}

        poll(lambda: {"pipe.edf", edfs[0].name} <= set(recorded()), what="both files")
        assert recorded() == {"pipe.edf": "failed", edfs[0].name: "done"}
        time.sleep(1.0)  # several more passes: the FIFO is not said again
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert proc.returncode == 130, "".join(lines)[-3000:]
    said = [line for line in lines if "pipe.edf" in line and "WARNING" in line]
    assert len(said) == 1, said
    assert not [line for line in lines if "Traceback" in line]


def test_detect_inputs_follow_no_link_out_and_expand_nothing(tmp_path, monkeypatch):
    """A link in an input directory that leads out of it, and a list entry naming an
    environment variable or '~', are unusable inputs with their reason; nothing is read."""
    from ictal.detect.inputs import find_inputs

    archive, outside = tmp_path / "archive", tmp_path / "outside"
    archive.mkdir()
    outside.mkdir()
    (outside / "secret.edf").write_bytes(b"0" * 256)
    (archive / "in.edf").write_bytes(b"0" * 256)
    (archive / "out.edf").symlink_to(outside / "secret.edf")
    (archive / "inner.edf").symlink_to(archive / "in.edf")
    monkeypatch.setenv("ICTAL_TEST_SECRET_TOKEN", "verysecretvalue123")
    listing = tmp_path / "list.txt"
    listing.write_text("${ICTAL_TEST_SECRET_TOKEN}.edf\n~/x.edf\n")
    found = find_inputs([str(archive), str(listing)])
    keys = {s.key for s in found.sources}
    assert keys == {str(archive / "in.edf"), str(archive / "inner.edf")}
    reasons = dict(found.problems)
    assert "symbolic link out of its input directory" in reasons[str(archive / "out.edf")]
    assert any("does not expand" in why for why in reasons.values())
    assert not any("verysecretvalue123" in k + v for k, v in found.problems)


@pytest.mark.slow
def test_a_pruned_marker_leads_only_into_the_configured_sink(world, tmp_path):
    """``log/.pruned`` names where sealed segments went; an output directory is untrusted, so
    a marker naming a place outside the sink this command uses is said and never opened."""
    out = tmp_path / "out"
    shutil.copytree(world.reference, out)
    (seg, *_) = sorted((out / LOG_DIR).glob("*.seg"))
    elsewhere = tmp_path / "elsewhere" / "copy"
    (elsewhere / LOG_DIR).mkdir(parents=True)
    shutil.move(seg, elsewhere / LOG_DIR / seg.name)
    (out / LOG_DIR / ".pruned").write_text(f"{elsewhere}\n")
    res = run_ictal("detect", "--collect", str(out), "--out", str(tmp_path / "merged"))
    _clean(res)
    assert res.returncode == 4, res.stderr[-2000:]
    assert "which is not in the sink.url of this command" in res.stderr
    # the same marker inside the sink the user configured is read
    res = run_ictal("detect", "--collect", str(out), "--out", str(tmp_path / "merged2"),
                    "--set", f"sink.url={elsewhere.parent}")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert _events(tmp_path / "merged2") == _events(world.reference)
    # a marker climbing out of the sink with '..' is refused like any other place
    (out / LOG_DIR / ".pruned").write_text(f"{elsewhere.parent}/x/../copy\n")
    res = run_ictal("detect", "--collect", str(out), "--out", str(tmp_path / "merged3"),
                    "--set", f"sink.url={elsewhere.parent}/x")  # fmt: skip
    assert res.returncode == 4 and "not in the sink.url" in res.stderr, res.stderr[-2000:]
    # detect itself does not read the outside copy: those recordings are detected again
    (out / LOG_DIR / ".pruned").write_text(f"{elsewhere}\n")
    res = world.detect(str(world.edf), "--out", str(out))
    _clean(res)
    assert "which is not in the sink.url of this command" in res.stderr
    assert _this_run(res)[0] > 0
