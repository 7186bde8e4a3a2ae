"""read_ahead: the first stage of each item one item ahead in a thread, in order, bounded,
its failures raised at their item, and stopped when the caller stops."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import poll
from ictal.parallel.ahead import read_ahead


def test_items_come_in_order_with_their_first_stage_run_in_another_thread():
    threads: set[str] = set()

    def first(i: int) -> int:
        threads.add(threading.current_thread().name)
        return i * i

    got = list(read_ahead(range(50), first))
    assert got == [(i, i * i) for i in range(50)]
    assert threads == {"ictal-read-ahead"}


def test_the_thread_runs_at_most_one_item_ahead_of_the_caller():
    started: list[int] = []

    def first(i: int) -> int:
        started.append(i)
        return i

    it = read_ahead(range(10), first)
    for k in range(5):
        item, _ = next(it)
        assert item == k
        poll(lambda k=k: len(started) == k + 2, 10)  # this one and the next, no more
        time.sleep(0.05)  # had the bound been wrong, a third would have started by now
        assert started == list(range(k + 2))
    it.close()


def test_a_failing_first_stage_is_raised_at_its_item_after_the_items_before_it():
    def first(i: int) -> int:
        if i == 3:
            raise ValueError("bad item 3")
        return i

    seen = []
    with pytest.raises(ValueError, match="bad item 3"):
        for item, _ in read_ahead(range(10), first):
            seen.append(item)
    assert seen == [0, 1, 2]


def test_failing_items_are_raised_in_the_caller():
    def items():
        yield 1
        raise OSError("listing broke")

    it = read_ahead(items(), lambda i: i)
    assert next(it) == (1, 1)
    with pytest.raises(OSError, match="listing broke"):
        next(it)


def test_closing_early_stops_the_thread_after_the_item_it_is_on():
    started: list[int] = []

    def first(i: int) -> int:
        started.append(i)
        return i

    before = {t.ident for t in threading.enumerate()}
    it = read_ahead(range(1000), first)
    assert next(it) == (0, 0)
    it.close()
    poll(lambda: not [t for t in threading.enumerate()
                           if t.name == "ictal-read-ahead" and t.ident not in before])  # fmt: skip
    assert len(started) <= 2


def test_closing_returns_only_once_the_thread_has_finished_its_item():
    # a daemon thread still working when the interpreter exits can abort the process
    # (`ictal detect --workers 1` stopped by SIGTERM died of SIGABRT, "terminate called
    # without an active exception"), so a stop waits for the item the thread is on
    started: list[int] = []
    finished: list[int] = []

    def first(i: int) -> int:
        started.append(i)
        if i:
            time.sleep(0.3)
        finished.append(i)
        return i

    it = read_ahead(range(10), first)
    assert next(it) == (0, 0)
    poll(lambda: started == [0, 1], 10)  # the thread is inside item 1
    it.close()
    assert finished == [0, 1]
    assert not [t for t in threading.enumerate() if t.name == "ictal-read-ahead"]


def test_detect_reads_a_large_recording_in_the_caller_not_ahead(tmp_path, monkeypatch):
    from ictal.detect import task as detect_task
    from ictal.detect.records import LOG_DIR, decode
    from ictal.io.framelog import read_log

    (tmp_path / LOG_DIR).mkdir()
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    readers: dict[str, str] = {}

    def fake_read(task):
        readers[task.key] = threading.current_thread().name
        raise OSError(f"cannot read {task.key}")

    monkeypatch.setattr(detect_task, "_read", fake_read)
    log = detect_task.LogSettings(str(tmp_path), 1.0, 1 << 20, 3600.0)
    limit = detect_task.READ_AHEAD_MAX_BYTES
    sizes = {"a": 1000, "b": limit + 1, "c": limit, "d": 10 * limit}
    tasks = [detect_task.Task(f"/in/{k}.edf", k, k, size, "0", str(ckpt), "m", {}, "s", log)
             for k, size in sizes.items()]  # fmt: skip
    acks = list(detect_task.detect_ahead(tasks))
    detect_task.close_writers()
    assert [a["recording"] for a in acks] == list(sizes)
    assert all(a["status"] == "failed" and "cannot read" in a["error"] for a in acks)
    assert readers == {"a": "ictal-read-ahead", "b": "MainThread", "c": "ictal-read-ahead",
                       "d": "MainThread"}  # fmt: skip
    logged = [decode(f.payload)["recording"] for f in read_log(tmp_path / LOG_DIR)]
    assert logged == list(sizes)
