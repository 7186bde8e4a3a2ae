"""Atomic replacement survives SIGKILL at any moment: old or new content, never torn."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ictal.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_many

WRITER = textwrap.dedent(
    """
    import sys
    from ictal.io.atomic import atomic_write_bytes
    path = sys.argv[1]
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        block = (b"%08d" % i) * 250_000   # 2 MB, every byte depends on i
        atomic_write_bytes(path, block)
    """
)


def _content_ok(data: bytes) -> bool:
    if len(data) != 2_000_000:
        return False
    head = data[:8]
    return data == head * 250_000


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(target.parent) == ["f.json"]


def test_atomic_write_many_replaces_changed_files_and_leaves_same_ones(tmp_path):
    same, changed, new = tmp_path / "a" / "same", tmp_path / "a" / "changed", tmp_path / "b" / "n"
    atomic_write_bytes(same, b"keep")
    atomic_write_bytes(changed, b"old")
    kept = same.stat()
    files = {same: b"keep", changed: b"new!", new: b"fresh"}
    assert atomic_write_many(files, skip_same=True) == 2
    assert {p: p.read_bytes() for p in files} == files
    assert (same.stat().st_ino, same.stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    assert atomic_write_many(files) == 3  # without skip_same every file is replaced
    assert same.stat().st_ino != kept.st_ino
    assert sorted(os.listdir(tmp_path / "a")) == ["changed", "same"]


def test_atomic_write_many_never_opens_a_fifo_in_a_files_place(tmp_path):
    fifo = tmp_path / "f.tsv"
    os.mkfifo(fifo)  # opening it to compare would block until a writer came
    assert atomic_write_many({fifo: b"text"}, skip_same=True) == 1
    assert fifo.is_file() and fifo.read_bytes() == b"text"


def test_atomic_write_many_that_fails_leaves_no_temp_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").mkdir()  # a directory where a file goes: the rename fails
    with pytest.raises(OSError):
        atomic_write_many({tmp_path / "d" / "a": b"1", tmp_path / "d" / "x": b"2"})
    assert sorted(os.listdir(tmp_path / "d")) in (["x"], ["a", "x"])  # no .tmp left


@pytest.mark.slow
def test_sigkill_never_leaves_a_torn_file(tmp_path):
    target = tmp_path / "data.bin"
    atomic_write_bytes(target, b"00000000" * 250_000)
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src)
    rng = random.Random(1234)
    seen_versions = set()
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=env,
                                stdout=subprocess.PIPE)  # fmt: skip
        assert proc.stdout is not None
        proc.stdout.readline()  # imported and about to write, however slow its start-up was
        time.sleep(rng.uniform(0.0, 0.45))  # then a random moment of the write loop
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        data = target.read_bytes()
        assert _content_ok(data), "torn or partial file after SIGKILL"
        seen_versions.add(data[:8])
    assert len(seen_versions) > 1, "the writer never replaced the file: test proves nothing"
