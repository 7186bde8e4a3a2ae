"""Whole-recording inference without torch: overlapping windows -> model -> overlap-add.

The recording is mirrored at both ends (``reflect``: sample ``-k`` is sample ``k``, sample
``n - 1 + k`` is ``n - 1 - k``) by ``pad`` samples, half a window by default (``edge_pad``),
and windows start every ``hop`` samples from ``-pad`` until one reaches ``pad`` past the last
output step. So the first and last seconds of a recording sit in the middle of a window, with
context on both sides, as every other second does; training windows hang over the ends the
same way (``data/windows.py``), so the model has seen mirrored context. With ``pad=0`` (the
old behaviour, ``windows.edges=none``) windows start at 0 and the tail is zero-padded.
Each window's per-step probabilities are averaged into the recording's trace with a tent
weight (``min(j + 1, m - j)`` for step ``j`` of ``m``): steps near a window's edge, which see
less context, count less than those in its middle, and every step keeps a positive weight.

The model is a ``Predict``: windows ``(B, C, W)`` float32 -> probabilities ``(B, W // stride)``,
a torch module (``ictal.models.inference``) or an exported one (``ictal.export.runtime``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def window_starts(n_samples: int, window: int, stride: int, hop: int, pad: int = 0) -> list[int]:
    """Window starts (``-pad`` plus multiples of ``hop``) whose windows cover all
    ``ceil(n / stride)`` steps and ``pad`` samples beyond them at each end."""
    if n_samples < 1:
        raise ValueError(f"recording has {n_samples} samples; need at least 1")
    if window < stride or stride < 1:
        raise ValueError(f"window {window} must be >= output stride {stride} >= 1")
    if hop < 1 or hop % stride:
        raise ValueError(f"hop {hop} must be a positive multiple of the output stride {stride}")
    if pad < 0 or pad % stride:
        raise ValueError(f"edge pad {pad} must be a multiple of the output stride {stride}")
    covered = (window // stride) * stride  # input samples whose output steps a window yields
    needed = math.ceil(n_samples / stride) * stride + 2 * pad
    n_windows = 1 + max(0, math.ceil((needed - covered) / hop))
    return [k * hop - pad for k in range(n_windows)]


def default_hop(window: int, stride: int) -> int:
    """Half a window, rounded down to a multiple of the output stride (at least one step)."""
    return max(stride, (window // 2) // stride * stride)


def edge_pad(window: int, stride: int) -> int:
    """Samples mirrored beyond each end of a recording at inference: half a window, a
    multiple of the output stride (so the recording's edges sit mid-window)."""
    return default_hop(window, stride)


EDGES = ("reflect", "none")  # windows.edges: mirror the ends, or the old zero-padded tail


def pad_for(edges: str, window: int, stride: int) -> int:
    """The inference edge pad of a model trained with ``windows.edges`` = ``edges``."""
    if edges not in EDGES:
        raise ValueError(f"windows.edges must be one of {EDGES}, got {edges!r}")
    return edge_pad(window, stride) if edges == "reflect" else 0


def reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Sample indices folded into ``[0, n)`` by mirroring about the first and last sample
    (numpy's ``reflect``: the edge sample is not repeated), as often as needed."""
    if n < 1:
        raise ValueError(f"cannot mirror a recording of {n} samples")
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    k = np.mod(index, period)
    return np.where(k < n, k, period - k)


def read_rows(array: np.ndarray, start: int, length: int, out: np.ndarray) -> None:
    """Rows ``[start, start + length)`` of a time-major array into ``out`` (length, C), rows
    outside the recording mirrored (``reflect``): one slice when the span lies inside."""
    n = int(array.shape[0])
    if start >= 0 and start + length <= n:
        out[...] = array[start : start + length]
    else:
        out[...] = array[reflect(np.arange(start, start + length), n)]


def tent_weights(m: int) -> np.ndarray:
    """Per-step stitching weights of one window of ``m`` output steps: 1, 2, .., 2, 1."""
    j = np.arange(m)
    return np.minimum(j + 1, m - j).astype(np.float64)


def windows(
    array: np.ndarray,
    starts: list[int],
    window: int,
    mirror: bool = False,
    buffer: np.ndarray | None = None,
) -> np.ndarray:
    """Windows ``(B, C, window)`` float32 read from a time-major array: beyond the ends
    mirrored (``mirror``) or zero-padded at the end (the old behaviour). Written into the
    first ``B`` rows of ``buffer`` when given (a batch's memory reused, not faulted in anew)."""
    n, c = array.shape
    if buffer is None:
        buffer = np.empty((len(starts), c, window), dtype=np.float32)
    out = buffer[: len(starts)]
    rows = np.empty((window, c), dtype=np.float32)
    for b, s in enumerate(starts):
        if mirror:
            read_rows(array, s, window, rows)
            out[b] = rows.T
            continue
        stop = min(s + window, n)
        if stop > s:
            out[b, :, : stop - s] = np.asarray(array[s:stop], dtype=np.float32).T
        out[b, :, max(stop - s, 0) :] = 0.0
    return out


def stitch(
    predict: Predict,
    array: np.ndarray,
    window: int,
    stride: int,
    hop: int,
    batch_size: int = 16,
    on_batch: Callable[[], None] | None = None,
    pad: int = 0,
) -> np.ndarray:
    """Probabilities (float32) per output step for a whole ``(n_samples, C)`` recording.

    Reads the windows batch by batch (``array`` may be a memmap), so memory is one batch plus
    the trace. The result has ``ceil(n_samples / stride)`` steps; step ``i`` covers input
    samples ``[i * stride, (i + 1) * stride)``. ``on_batch`` is called after each batch (for
    heartbeats). ``pad`` samples are mirrored beyond each end (``edge_pad``; 0: none).
    """
    if array.ndim != 2:
        raise ValueError(f"recording must be (n_samples, channels), got shape {array.shape}")
    n = int(array.shape[0])
    starts = window_starts(n, window, stride, hop, pad)
    m = window // stride
    n_out = math.ceil(n / stride)
    first = pad // stride  # the trace's step of the recording's first step
    length = (starts[-1] + pad) // stride + m
    acc = np.zeros(length, dtype=np.float64)
    wsum = np.zeros(length, dtype=np.float64)
    weights = tent_weights(m)
    buffer = np.empty((min(batch_size, len(starts)), array.shape[1], window), dtype=np.float32)
    for k in range(0, len(starts), batch_size):
        chunk = starts[k : k + batch_size]
        batch = windows(array, chunk, window, mirror=pad > 0, buffer=buffer)
        probs = np.asarray(predict(batch), dtype=np.float64)
        if probs.shape != (len(chunk), m):
            raise ValueError(
                f"model returned shape {probs.shape} for {len(chunk)} windows of {window} "
                f"samples; expected ({len(chunk)}, {m}) with output stride {stride}"
            )
        for b, s in enumerate(chunk):
            i = (s + pad) // stride
            acc[i : i + m] += weights * probs[b]
            wsum[i : i + m] += weights
        if on_batch is not None:
            on_batch()
    span = slice(first, first + n_out)
    return (acc[span] / wsum[span]).astype(np.float32)
