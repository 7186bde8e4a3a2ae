"""The durable record log: frames with CRCs, one write per record, recovery of torn tails,
damage detected and skipped (never returned), kills at random moments lose no acknowledged
record. Damage, resynchronisation, recovery under kill -9 and readers racing the sealing
writer: tests/test_hostile_logs.py."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ictal_env
from ictal.io.framelog import (
    OPEN,
    SEALED,
    SegmentWriter,
    read_records,
    recover,
    scan_bytes,
    segments,
)


def _payload(k: int) -> bytes:
    return f'{{"k": {k}, "pad": "{"x" * (k % 97)}"}}'.encode()


def test_records_round_trip_and_segments_seal(tmp_path):
    w = SegmentWriter(tmp_path, "host-1", max_bytes=2000)
    for k in range(50):
        w.append(_payload(k))
    w.close()
    segs = segments(tmp_path)
    assert len(segs) > 1 and all(p.suffix == SEALED for p in segs)
    assert list(read_records(segs)) == [_payload(k) for k in range(50)]


@pytest.mark.parametrize("cut", [1, 5, 11, 13, 40])
def test_a_torn_tail_is_truncated_by_recovery(tmp_path, cut):
    w = SegmentWriter(tmp_path, "host-2")
    for k in range(10):
        w.append(_payload(k))
    path = w.path
    assert path is not None and path.suffix == OPEN
    os.close(w.fd)  # the writer dies (its flock goes with it)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    ends = [sum(len(_payload(j)) + 12 for j in range(k + 1)) for k in range(10)]
    whole = [k for k in range(10) if ends[k] <= len(data) - cut]  # frames the cut left whole
    (done,) = recover(tmp_path)
    assert done.segment.suffix == SEALED and done.dropped == len(data) - cut - ends[whole[-1]]
    assert not done.damaged, "a torn tail is what a killed writer leaves, not damage"
    assert done.segment.stat().st_size == ends[whole[-1]], "truncated in place"
    assert list(read_records([done.segment])) == [_payload(k) for k in whole]
    assert len(whole) < 10


def test_a_flipped_byte_is_detected_and_never_returned(tmp_path):
    w = SegmentWriter(tmp_path, "host-3")
    for k in range(10):
        w.append(_payload(k))
    w.close()
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    scan = scan_bytes(bytes(data))
    sizes = [len(_payload(k)) + 12 for k in range(10)]
    offset = sum(sizes[:4]) + 20  # inside the payload of record 4
    data[offset] ^= 0x40
    seg.write_bytes(bytes(data))
    warnings: list[str] = []
    got = list(read_records([seg], warnings))
    assert got == [_payload(k) for k in range(10) if k != 4] and len(scan.records) == 10
    (line,) = warnings
    start = sum(sizes[:4])
    assert f"{sizes[4]} bytes at byte {start} (CRC mismatch, 1 frame)" in line, line
    assert str(seg) in line and "9 records kept" in line


def test_recovery_leaves_a_live_writer_alone(tmp_path):
    w = SegmentWriter(tmp_path, "host-4")
    w.append(_payload(1))
    assert recover(tmp_path) == []  # its flock says it is alive
    w.close()


WRITER = """
import sys
from pathlib import Path
from ictal.io.framelog import SegmentWriter
w = SegmentWriter(Path(sys.argv[1]), "killed", fsync_s=0.05, max_bytes=4096)
k = 0
while True:
    w.append(('{"k": %d, "pad": "%s"}' % (k, "y" * (k % 300))).encode())
    print(k, flush=True)  # printed only after the write returned: acknowledged
    k += 1
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_acknowledged_record(tmp_path):
    rng = random.Random(7)
    for attempt in range(6):
        log_dir = tmp_path / f"log{attempt}"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(log_dir)], env=ictal_env(),
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        acked = -1
        assert proc.stdout is not None
        while acked < 20:  # started and writing, however long its start-up took on a busy box
            line = proc.stdout.readline()
            if not line:
                break  # it died: the assertion below says so
            acked = int(line)
        deadline = time.monotonic() + rng.uniform(0.0, 0.6)  # then a random moment
        while acked >= 20 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line:
                acked = int(line)
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()  # acknowledgements still in the pipe count too
        for line in rest.splitlines():
            acked = int(line)
        proc.wait()
        assert acked > 10, "the writer had not started: the test proves nothing"
        recover(log_dir)
        keys = [int(p.split(b",")[0].split(b":")[1]) for p in read_records(segments(log_dir))]
        assert keys == list(range(len(keys))), "records in order, none twice, none torn"
        assert len(keys) >= acked + 1, f"acknowledged {acked + 1}, kept {len(keys)}"


def test_segment_names_never_collide(tmp_path):
    a = SegmentWriter(tmp_path, "h-1", max_bytes=100)
    for k in range(5):
        a.append(_payload(k))
    a.close()
    b = SegmentWriter(tmp_path, "h-1")
    b.append(_payload(99))
    b.close()
    names = [p.name for p in segments(tmp_path)]
    assert len(names) == len(set(names)) >= 2
    assert all(Path(tmp_path / n).suffix == SEALED for n in names)
    assert list(read_records(segments(tmp_path))) == [_payload(k) for k in (0, 1, 2, 3, 4, 99)]
