"""One stage of each task run one item ahead in a thread, so that a command running its tasks
itself overlaps reading the next input with the work on this one (file reads, numpy, the
FFT, torch and onnxruntime release the GIL: two stages keep two cores busy).

Only the first stage runs in the thread and it must not write anything: what a task commits
is done by the caller, in order, so a stop loses nothing that was acknowledged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()
_POLL_S = 0.1  # how soon the thread notices that the caller stopped


def read_ahead(items: Iterable[T], first: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """Each item with ``first(item)``, computed in a thread at most one item ahead of the
    caller (two items' results in memory at most). An exception raised by ``first`` or by
    ``items`` is raised here, at its item; closing the iterator (or an exception in the
    caller) returns once the thread has finished the item it is on."""
    ready: queue.Queue[tuple[Any, Any, BaseException | None]] = queue.Queue()
    turn = threading.Semaphore(1)  # released each time the caller takes an item
    stop = threading.Event()

    def wait_turn() -> bool:
        while not stop.is_set():
            if turn.acquire(timeout=_POLL_S):
                return True
        return False

    def feed() -> None:
        try:
            for item in items:
                if not wait_turn():
                    return
                try:
                    ready.put((item, first(item), None))
                except BaseException as exc:  # handed to the caller, at its item
                    ready.put((item, None, exc))
        except BaseException as exc:  # the items themselves failed
            ready.put((_END, None, exc))
            return
        ready.put((_END, None, None))

    thread = threading.Thread(target=feed, name="ictal-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, value, exc = ready.get()
            turn.release()
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item, value
    finally:
        # Wait for the item the thread is on: a daemon thread still inside compiled code
        # (the FFT, torch) when the interpreter exits aborts the process (SIGABRT).
        stop.set()
        thread.join()
