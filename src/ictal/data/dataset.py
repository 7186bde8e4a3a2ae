"""Torch dataset of cached windows: mmap slices of the recordings, labels from intervals.

Each process opens the arrays it needs lazily and keeps the memory maps in its own cache,
so reading a window touches only that window's bytes and no handle crosses a fork.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ictal.data.windows import WindowIndex, label_mask


class WindowDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``i`` is window ``i`` of the index: x ``(channels, window)``, y ``(window,)``."""

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

    def __len__(self) -> int:
        return len(self.index)

    def _array(self, rec: int) -> np.ndarray:
        """Memory map of recording ``rec``, opened once per process (fork detected by pid)."""
        if self._pid != os.getpid():
            self._handles = {}
            self._pid = os.getpid()
        path = self.array_paths[rec]
        arr = self._handles.get(path)
        if arr is None:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.ndim != 2:
                raise ValueError(f"{path}: expected a (n_samples, channels) array, got {arr.shape}")
            if len(self._handles) >= self.max_open:  # bound open maps: drop the oldest
                self._handles.pop(next(iter(self._handles)))
            self._handles[path] = arr
        return arr

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rec, start = int(self.index.rec[i]), int(self.index.start[i])
        arr = self._array(rec)
        if start + self.window > arr.shape[0]:
            raise IndexError(
                f"window {i} [{start}, {start + self.window}) runs past the end of "
                f"{self.array_paths[rec]} ({arr.shape[0]} samples): index and cache disagree"
            )
        x = np.empty((arr.shape[1], self.window), dtype=self.dtype)
        x[...] = arr[start : start + self.window].T  # one pass: read, convert, transpose
        y = label_mask(self.intervals[rec], start, self.window)
        return torch.from_numpy(x), torch.from_numpy(y)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without open memory maps (spawned workers reopen lazily)."""
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state
