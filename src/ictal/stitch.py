"""Whole-recording inference without torch: overlapping windows -> model -> overlap-add.

Windows start every ``hop`` samples from 0 until one reaches past the last output step; the
tail (and a recording shorter than a window) is zero-padded, i.e. filled with the median of
the robust-normalised signal. Each window's per-step probabilities are averaged into the
recording's trace with a tent weight (``min(j + 1, m - j)`` for step ``j`` of ``m``): steps
near a window's edge, which see less context, count less than those in its middle, and every
step keeps a positive weight so the first and last steps of the recording are covered.

The model is a ``Predict``: windows ``(B, C, W)`` float32 -> probabilities ``(B, W // stride)``,
a torch module (``ictal.models.inference``) or an exported one (``ictal.export.runtime``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def window_starts(n_samples: int, window: int, stride: int, hop: int) -> list[int]:
    """Window starts (multiples of ``hop``) whose windows cover all ``ceil(n / stride)`` steps."""
    if n_samples < 1:
        raise ValueError(f"recording has {n_samples} samples; need at least 1")
    if window < stride or stride < 1:
        raise ValueError(f"window {window} must be >= output stride {stride} >= 1")
    if hop < 1 or hop % stride:
        raise ValueError(f"hop {hop} must be a positive multiple of the output stride {stride}")
    covered = (window // stride) * stride  # input samples whose output steps a window yields
    needed = math.ceil(n_samples / stride) * stride
    n_windows = 1 + max(0, math.ceil((needed - covered) / hop))
    return [k * hop for k in range(n_windows)]


def default_hop(window: int, stride: int) -> int:
    """Half a window, rounded down to a multiple of the output stride (at least one step)."""
    return max(stride, (window // 2) // stride * stride)


def tent_weights(m: int) -> np.ndarray:
    """Per-step stitching weights of one window of ``m`` output steps: 1, 2, .., 2, 1."""
    j = np.arange(m)
    return np.minimum(j + 1, m - j).astype(np.float64)


def windows(array: np.ndarray, starts: list[int], window: int) -> np.ndarray:
    """Windows ``(B, C, window)`` float32 read from a time-major array, zero-padded at the end."""
    n, c = array.shape
    out = np.zeros((len(starts), c, window), dtype=np.float32)
    for b, s in enumerate(starts):
        stop = min(s + window, n)
        if stop > s:
            out[b, :, : stop - s] = np.asarray(array[s:stop], dtype=np.float32).T
    return out


def stitch(
    predict: Predict,
    array: np.ndarray,
    window: int,
    stride: int,
    hop: int,
    batch_size: int = 16,
    on_batch: Callable[[], None] | None = None,
) -> np.ndarray:
    """Probabilities (float32) per output step for a whole ``(n_samples, C)`` recording.

    Reads the windows batch by batch (``array`` may be a memmap), so memory is one batch plus
    the trace. The result has ``ceil(n_samples / stride)`` steps; step ``i`` covers input
    samples ``[i * stride, (i + 1) * stride)``. ``on_batch`` is called after each batch (for
    heartbeats).
    """
    if array.ndim != 2:
        raise ValueError(f"recording must be (n_samples, channels), got shape {array.shape}")
    n = int(array.shape[0])
    starts = window_starts(n, window, stride, hop)
    m = window // stride
    n_out = math.ceil(n / stride)
    length = starts[-1] // stride + m
    acc = np.zeros(length, dtype=np.float64)
    wsum = np.zeros(length, dtype=np.float64)
    weights = tent_weights(m)
    for k in range(0, len(starts), batch_size):
        chunk = starts[k : k + batch_size]
        probs = np.asarray(predict(windows(array, chunk, window)), dtype=np.float64)
        if probs.shape != (len(chunk), m):
            raise ValueError(
                f"model returned shape {probs.shape} for {len(chunk)} windows of {window} "
                f"samples; expected ({len(chunk)}, {m}) with output stride {stride}"
            )
        for b, s in enumerate(chunk):
            i = s // stride
            acc[i : i + m] += weights * probs[b]
            wsum[i : i + m] += weights
        if on_batch is not None:
            on_batch()
    return (acc[:n_out] / wsum[:n_out]).astype(np.float32)
