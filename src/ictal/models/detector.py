"""Default seizure detector: strided conv encoder down to ``out_hz``, BiGRU, per-step logits.

The encoder's total stride equals ``fs / out_hz`` (``output_stride``), so each output step
covers a fixed span of input samples and per-sample labels pool to targets by averaging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ictal.models.metadata import MAX_WINDOW, bounded

MAX_STRIDE = 4  # largest stride built from small factors (a prime factor may exceed it)
MAX_PRIME = 7  # larger prime factors would need one huge strided kernel
# Sizes a checkpoint's model.params may ask of this model (they come from untrusted files).
LIMITS = {"width": 4096, "gru_hidden": 4096, "gru_layers": 16, "stages": 32}


def output_stride(fs: float, out_hz: float) -> int:
    """Input samples per output step: ``fs / out_hz``, which must be an integer."""
    ratio = fs / out_hz
    if not 0 < ratio <= MAX_WINDOW:
        raise ValueError(
            f"fs / out_hz = {fs} / {out_hz} must be between 1 and {MAX_WINDOW} samples"
        )
    stride = round(ratio)
    if stride < 1 or abs(ratio - stride) > 1e-9 * max(1.0, ratio):
        raise ValueError(
            f"fs / out_hz must be a positive integer, got {fs} / {out_hz} = {ratio}; "
            "choose out_hz so that it divides the cache rate"
        )
    return stride


def split_stride(total: int) -> list[int]:
    """Factor ``total`` into conv strides of at most MAX_STRIDE (largest first): 256 -> 4,4,4,4."""
    factors, n, p = [], total, 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    if n > 1:
        factors.append(n)
    if factors and max(factors) > MAX_PRIME:
        raise ValueError(
            f"output stride {total} has the prime factor {max(factors)} > {MAX_PRIME}; "
            "pass explicit strides or pick out_hz so fs / out_hz factors into small numbers"
        )
    stages: list[int] = []
    for f in sorted(factors, reverse=True):
        if stages and stages[-1] * f <= MAX_STRIDE:
            stages[-1] *= f
        else:
            stages.append(f)
    return sorted(stages, reverse=True)


def pool_targets(y: torch.Tensor, stride: int) -> torch.Tensor:
    """Per-sample labels ``(B, W)`` -> seizure fraction per output step ``(B, W // stride)``."""
    t_out = y.shape[-1] // stride
    return y[..., : t_out * stride].reshape(*y.shape[:-1], t_out, stride).mean(-1)


class ConvBlock(nn.Sequential):
    """Strided conv (kernel covers the stride plus half a stride each side), norm, GELU."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        pad = stride // 2
        # Output length is exactly floor(L / stride) for kernel = stride + 2 * pad.
        super().__init__(
            nn.Conv1d(c_in, c_out, stride + 2 * pad, stride=stride, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
            nn.GELU(),
            nn.Dropout(dropout),
        )


class ConvBiGRU(nn.Module):
    """Input ``(B, channels, W)`` -> seizure logits ``(B, W // output_stride)``."""

    DESCRIPTION = "strided conv encoder down to out_hz, bidirectional GRU, 1 logit per step"

    def __init__(
        self,
        *,
        n_channels: int,
        fs: float,
        out_hz: float = 1.0,
        width: int = 32,
        gru_hidden: int = 64,
        gru_layers: int = 1,
        dropout: float = 0.1,
        strides: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        sizes = {"width": width, "gru_hidden": gru_hidden, "gru_layers": gru_layers,
                 "stages": len(strides) if strides is not None else 1}  # fmt: skip
        for key, value in sizes.items():
            bounded(key, value, LIMITS[key])
        self.n_channels = n_channels
        self.fs = fs
        self.out_hz = out_hz
        self.output_stride = output_stride(fs, out_hz)
        stages = list(strides) if strides is not None else split_stride(self.output_stride)
        if any(s < 1 for s in stages) or math.prod(stages) != self.output_stride:
            raise ValueError(
                f"strides {stages} must multiply to fs / out_hz = {self.output_stride}"
            )
        blocks, c_in = [], n_channels
        for i, s in enumerate(stages):
            c_out = width * 2 ** min(i, 2)  # widen while the time axis shrinks, up to 4x
            blocks.append(ConvBlock(c_in, c_out, s, dropout))
            c_in = c_out
        self.encoder = nn.Sequential(*blocks)
        self.gru = nn.GRU(
            c_in,
            gru_hidden,
            num_layers=gru_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if gru_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * gru_hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.n_channels:
            raise ValueError(
                f"expected input (batch, {self.n_channels}, window), got {tuple(x.shape)}"
            )
        if x.shape[2] < self.output_stride:
            raise ValueError(f"window {x.shape[2]} is shorter than one output step")
        h = self.encoder(x).transpose(1, 2)  # (B, T, C)
        h, _ = self.gru(h)
        return self.head(h).squeeze(-1)
