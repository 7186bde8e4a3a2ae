"""Torch dataset of cached windows: mmap slices of the recordings, labels from intervals.

Each process opens the arrays it needs lazily and keeps the memory maps in its own cache,
so reading a window touches only that window's bytes and no handle crosses a fork.
Windows stay time-major ``(window, channels)`` as stored: a batch is filled with straight
copies (``__getitems__``, no per-item tensors to stack) and transposed to the model's
``(batch, channels, window)`` on the device (``model_input``), where it is cheapest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ictal.data.windows import WindowIndex, label_mask
from ictal.stitch import read_rows


def model_input(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A time-major batch ``(B, W, C)`` moved to ``device`` as the model's float32 ``(B, C, W)``.

    The batch travels in the cache's dtype (float16 caches move half the bytes from the
    loader workers and over PCIe) and is converted and transposed where it is cheapest.
    """
    return x.to(device, non_blocking=True).to(torch.float32).transpose(1, 2)


def collate_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate for a dataset whose ``__getitems__`` already returns a whole batch."""
    return batch


def _empty(shape: tuple[int, ...], dtype: np.dtype | type) -> torch.Tensor:
    """An uninitialised tensor, allocated in shared memory when called in a DataLoader worker.

    In the training process numpy allocates it: numpy asks the kernel for transparent huge
    pages on large allocations, so filling a fresh 37 MB batch takes a third of the time it
    takes in 4 KiB pages (torch.empty does not, unless THP_MEM_ALLOC_ENABLE is set before
    torch starts). In a worker, ``torch.empty(...).share_memory_()`` would allocate twice
    and copy the garbage across; allocating the shared storage directly (as torch's own
    ``default_collate`` does) halves the worker's cost per batch.
    """
    if torch.utils.data.get_worker_info() is None:
        return torch.from_numpy(np.empty(shape, dtype=dtype))
    tdtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    new_shared = getattr(torch.UntypedStorage, "_new_shared", None)
    if new_shared is None:  # a torch without the private helper: correct, one copy slower
        return torch.empty(shape, dtype=tdtype).share_memory_()
    storage = new_shared(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    return torch.empty(0, dtype=tdtype).set_(storage, 0, shape)


class WindowDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``i`` is window ``i`` of the index: x ``(window, channels)``, y ``(window,)``."""

    batched = True  # __getitems__ returns whole batches: use collate_batch

    def __init__(
        self,
        array_paths: Sequence[str],
        index: WindowIndex,
        intervals: Sequence[np.ndarray],
        window: int,
        dtype: np.dtype | type = np.float32,
        *,
        max_open: int = 4096,
    ) -> None:
        if len(array_paths) != len(intervals):
            raise ValueError(f"{len(array_paths)} array paths but {len(intervals)} interval sets")
        if window != index.window:
            raise ValueError(f"window {window} differs from the index window {index.window}")
        self.array_paths = [os.fspath(p) for p in array_paths]
        self.index = index
        self.intervals = [np.asarray(iv, dtype=np.int64).reshape(-1, 2) for iv in intervals]
        self.window = int(window)
        self.dtype = np.dtype(dtype)
        self.max_open = max_open
        self._handles: dict[str, np.ndarray] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()  # reader threads share the handle cache

    def __len__(self) -> int:
        return len(self.index)

    def _array(self, rec: int) -> np.ndarray:
        """Memory map of recording ``rec``, opened once per process (fork detected by pid)."""
        pid = os.getpid()
        if self._pid != pid:  # a forked child: the inherited maps and lock are not its own
            self._handles, self._lock, self._pid = {}, threading.Lock(), pid
        path = self.array_paths[rec]
        arr = self._handles.get(path)
        if arr is not None:
            return arr
        with self._lock:
            arr = self._handles.get(path)
            if arr is None:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
                if arr.ndim != 2:
                    raise ValueError(
                        f"{path}: expected a (n_samples, channels) array, got {arr.shape}"
                    )
                if len(self._handles) >= self.max_open:  # bound open maps: drop the oldest
                    self._handles.pop(next(iter(self._handles)))
                self._handles[path] = arr
        return arr

    def _read(self, i: int, out: np.ndarray) -> int:
        """Copy window ``i`` into ``out`` (window, channels), mirrored where it hangs over an
        end of its recording; returns its recording number."""
        rec, start = int(self.index.rec[i]), int(self.index.start[i])
        arr = self._array(rec)
        pad = self.index.pad
        if start < -pad or start + self.window > arr.shape[0] + pad:
            raise IndexError(
                f"window {i} [{start}, {start + self.window}) runs past the end of "
                f"{self.array_paths[rec]} ({arr.shape[0]} samples): index and cache disagree"
            )
        read_rows(arr, start, self.window, out)  # a contiguous read and dtype conversion
        return rec

    def _labels(self, i: int, rec: int) -> np.ndarray:
        """Per-sample seizure labels of window ``i`` (mirrored samples as what they mirror)."""
        n = int(self._array(rec).shape[0])
        return label_mask(self.intervals[rec], int(self.index.start[i]), self.window, n)

    def _channels(self, i: int) -> int:
        """Channel count of window ``i``'s recording (every cached array has the same)."""
        return int(self._array(int(self.index.rec[i])).shape[1])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.empty((self.window, self._channels(i)), dtype=self.dtype)
        rec = self._read(i, x)
        y = self._labels(i, rec)
        return torch.from_numpy(x), torch.from_numpy(y)

    def __getitems__(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch filled in place: x ``(B, window, channels)``, y ``(B, window)``.

        In a loader worker the batch is allocated in shared memory, so handing it to the
        training process moves a handle, not another copy of the data.
        """
        shape = (len(ids), self.window, self._channels(int(ids[0])))
        x_t = _empty(shape, self.dtype)
        y_t = _empty((len(ids), self.window), np.float32)
        x, y = x_t.numpy(), y_t.numpy()
        for b, i in enumerate(ids):
            rec = self._read(int(i), x[b])
            y[b] = self._labels(int(i), rec)
        return x_t, y_t

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without open memory maps (spawned workers reopen lazily)."""
        state = self.__dict__.copy()
        state["_handles"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
