"""Reading handed files: regular files only, bounded, JSON that cannot crash the parser."""

from __future__ import annotations

import os
import threading

import pytest

from ictal.io.untrusted import UnreadableInput, loads_json, read_json, read_text, regular_file


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "x.json"
    os.mkfifo(fifo)
    done = threading.Event()

    def read() -> None:
        with pytest.raises(UnreadableInput, match="not a regular file"):
            read_json(fifo, "heartbeat")
        done.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout=10)
    assert done.is_set(), "reading a FIFO blocked"
    with pytest.raises(UnreadableInput, match="is a directory"):
        regular_file(tmp_path, "config")


def test_a_file_swapped_for_a_fifo_after_its_stat_is_refused_without_blocking(
    tmp_path, monkeypatch
):
    """The stat said regular; by the open it is a FIFO no one writes to: the open must not
    block, and the descriptor's own stat refuses it."""
    from ictal.io import untrusted

    real = tmp_path / "real.csv_bi"
    real.write_text("x")
    fifo = tmp_path / "swapped.csv_bi"
    os.mkfifo(fifo)
    monkeypatch.setattr(untrusted, "regular_file", lambda path, what: os.stat(real))
    done = threading.Event()

    def read() -> None:
        with pytest.raises(UnreadableInput, match="not a regular file"):
            untrusted.read_bytes(fifo, "annotation file")
        done.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout=10)
    assert done.is_set(), "opening the swapped FIFO blocked"
    assert untrusted.read_bytes(real, "annotation file") == b"x"


def test_size_depth_and_number_limits(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(UnreadableInput, match="more than the 0 MiB"):
        read_json(big, "manifest", limit=1024)
    with pytest.raises(UnreadableInput, match="nested too deeply"):
        loads_json("[" * 100_000 + "]" * 100_000, "scores.json")
    with pytest.raises(UnreadableInput, match="not valid JSON"):
        loads_json("1" * 5000, "record")
    with pytest.raises(UnreadableInput, match="not valid JSON"):
        loads_json(b"{", "record")
    assert loads_json(b'{"a": [1, 2.5, null]}', "x") == {"a": [1, 2.5, None]}
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UnreadableInput, match="not UTF-8"):
        read_text(tmp_path / "bad.txt", "list file")
