"""Whole-recording inference: output length, padding, overlap-add stitching, burst position."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ictal.models.inference import infer_recording
from ictal.stitch import default_hop, window_starts, windows


class ConstantModel(nn.Module):
    """Logit ``value`` at every output step; records the batch shapes it saw."""

    def __init__(self, stride: int, value: float) -> None:
        super().__init__()
        self.output_stride = stride
        self.value = value
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return torch.full((x.shape[0], x.shape[2] // self.output_stride), self.value)


class BurstModel(nn.Module):
    """High logit where the channel mean over an output step is high, low elsewhere."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.output_stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, w = x.shape
        t = w // self.output_stride
        level = x[..., : t * self.output_stride].mean(1).reshape(b, t, -1).mean(-1)
        return 10.0 * level - 5.0


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 100, 131, 640, 1001])
def test_output_length_and_constant_model(n: int) -> None:
    # stride 8, window 64 (8 steps), hop 32: ceil(n / 8) steps, each the constant probability
    model = ConstantModel(stride=8, value=1.3)
    x = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
    p = infer_recording(model, x, window=64, stride=8, hop=32, batch_size=4)
    assert p.dtype == np.float32
    assert p.shape == (math.ceil(n / 8),)
    np.testing.assert_allclose(p, sigmoid(1.3), rtol=1e-6)
    assert all(s[1:] == (3, 64) for s in model.shapes)


def test_recording_shorter_than_a_window_is_one_padded_window() -> None:
    model = ConstantModel(stride=4, value=0.0)
    p = infer_recording(model, np.ones((10, 2), np.float32), window=32, stride=4, hop=16)
    assert model.shapes == [(1, 2, 32)]
    assert p.shape == (3,)  # ceil(10 / 4)


def test_tail_is_covered_and_padding_is_zero() -> None:
    # a burst in the very last samples (past the last full hop) must be found
    n, stride = 1000, 8
    x = np.zeros((n, 2), np.float32)
    x[-5:] = 1.0
    p = infer_recording(BurstModel(stride), x, window=64, stride=stride, hop=32)
    assert p.shape == (125,)
    assert p[-1] > 0.5  # last step: 5 ones + 3 padded zeros -> mean 0.625 -> logit 1.25
    assert np.all(p[:-1] < 0.01)
    starts = window_starts(n, 64, stride, 32)
    assert starts[-1] + 64 >= n and starts[-2] + 64 < n  # no window more than needed


def test_burst_position_is_recovered() -> None:
    n, stride, fs = 256 * 300, 256, 256.0
    x = np.zeros((n, 19), np.float32)
    a, b = 256 * 100, 256 * 130  # 100 s .. 130 s
    x[a:b] = 1.0
    p = infer_recording(BurstModel(stride), x, window=256 * 60, stride=stride, hop=256 * 30)
    on = np.flatnonzero(p > 0.5)
    assert on[0] / (fs / stride) == 100.0 and (on[-1] + 1) / (fs / stride) == 130.0
    assert len(on) == 30


def test_memmap_float16_input(tmp_path: Path) -> None:
    x = np.zeros((500, 2), np.float16)
    x[200:300] = 1.0
    np.save(tmp_path / "a.npy", x)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    p = infer_recording(BurstModel(10), mm, window=100, stride=10, hop=50)
    assert np.flatnonzero(p > 0.5).tolist() == list(range(20, 30))


def test_tent_weighting_prefers_window_centres() -> None:
    # a model that is right (1) in the middle of each window and wrong (0) at its edges:
    # the tent weights pull every interior step towards the middle's answer
    class EdgeModel(nn.Module):
        output_stride = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            w = x.shape[2]
            j = torch.arange(w)
            centre = (j >= w // 4) & (j < w - w // 4)
            return torch.where(centre, 20.0, -20.0).expand(x.shape[0], w).float()

    p = infer_recording(EdgeModel(), np.zeros((400, 1), np.float32), 40, 1, 20)
    # flat averaging gives exactly 0.5 (one centre and one edge vote per step); tent > 0.5
    assert p[20:380].min() > 0.51


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="multiple of the output stride"):
        window_starts(100, 64, 8, 30)
    with pytest.raises(ValueError, match="at least 1"):
        window_starts(0, 64, 8, 32)
    assert default_hop(64, 8) == 32 and default_hop(60, 8) == 24 and default_hop(8, 8) == 8

    class WrongModel(ConstantModel):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 3)

    with pytest.raises(ValueError, match="expected"):
        infer_recording(WrongModel(8, 0.0), np.zeros((100, 1), np.float32), 64, 8, 32)


@pytest.mark.parametrize("mirror", [False, True])
def test_windows_into_a_dirty_buffer_equal_fresh_ones(mirror: bool) -> None:
    # stitch reuses one batch buffer: what an earlier batch left must never leak (the zero
    # tail of the old windowing included)
    x = np.random.default_rng(5).standard_normal((1000, 3)).astype(np.float32)
    starts = window_starts(1000, 64, 8, 32, 32 if mirror else 0)[-4:]
    buffer = np.full((6, 3, 64), 7.0, np.float32)
    got = windows(x, starts, 64, mirror=mirror, buffer=buffer)
    assert got.base is buffer or got is buffer
    np.testing.assert_array_equal(got, windows(x, starts, 64, mirror=mirror))
    if not mirror:
        assert np.all(got[-1, :, 1000 - starts[-1] :] == 0.0)


def test_one_worker_in_the_caller_runs_torch_on_one_thread() -> None:
    # the caller running detect's tasks itself computes as a worker process does
    from ictal.detect.task import one_thread

    torch.set_num_threads(2)
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
