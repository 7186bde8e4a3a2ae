"""SeizureTransformer (Wu et al. 2025, first in the 2025 SzCORE challenge): a U-Net-like conv
encoder, a residual CNN stack and a transformer encoder at 1/32 of the input rate, then a conv
decoder with skips back to one logit per input sample (``output_stride = 1``).

Written from the published architecture (keruiwu/SeizureTransformer); the published model ends
in a sigmoid, this one returns logits (the loss applies the sigmoid). Any length >= 1 sample
works: odd lengths pool with ceil (as if padded right with -inf) and the decoder crops each
upsampled map to its skip's length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ictal.models.metadata import bounded

FILTERS = (32, 64, 128, 256, 512)
ENCODER_KERNELS = (11, 9, 7, 7, 5)
DECODER_KERNELS = (3, 5, 5, 7, 7)
RES_KERNELS = (3, 3, 3, 3, 2, 3, 2)
# Sizes a checkpoint's model.params may ask of this model (they come from untrusted files).
LIMITS = {"filters": 4096, "stages": 8, "kernel": 63, "res_blocks": 32, "layers": 32,
          "heads": 64, "ff": 16384}  # fmt: skip


def _bounded(key: str, value: int, low: int = 1) -> int:
    return bounded(key, value, LIMITS[key], low)


def same_conv(c_in: int, c_out: int, kernel: int) -> nn.Conv1d:
    """A conv that keeps the length for an odd kernel (an even one is padded by its caller)."""
    return nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2 if kernel % 2 else 0)


class SpatialDropout(nn.Module):
    """Drops whole channels (the same ones over all time steps), as Keras' SpatialDropout1D."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.drop = nn.Dropout2d(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x.unsqueeze(-1)).squeeze(-1)


class ResBlock(nn.Module):
    """x + conv(drop(relu(bn(conv(drop(relu(bn(x)))))))); an even kernel pads right only."""

    def __init__(self, channels: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.right = 0 if kernel % 2 else kernel - 1  # even kernels: all padding on the right
        self.norm1 = nn.BatchNorm1d(channels, eps=1e-3)
        self.conv1 = same_conv(channels, channels, kernel)
        self.norm2 = nn.BatchNorm1d(channels, eps=1e-3)
        self.conv2 = same_conv(channels, channels, kernel)
        self.drop = SpatialDropout(dropout)

    def _half(self, x: torch.Tensor, norm: nn.Module, conv: nn.Module) -> torch.Tensor:
        y = self.drop(F.relu(norm(x)))
        return conv(F.pad(y, (0, self.right)) if self.right else y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._half(self._half(x, self.norm1, self.conv1), self.norm2, self.conv2)


def sinusoid(length: int, d_model: int, like: torch.Tensor) -> torch.Tensor:
    """The sinusoidal positional encoding ``(length, d_model)`` in ``like``'s dtype, computed
    in float32 for this length (no table to cap, a dynamic time axis in ONNX, and positions
    past 2048 stay exact under float16 autocast)."""
    position = torch.arange(length, device=like.device, dtype=torch.float32).unsqueeze(1)
    half = torch.arange(0, d_model, 2, device=like.device, dtype=torch.float32)
    angle = position * torch.exp(half * (-math.log(10000.0) / d_model))
    pe = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(1)  # sin, cos, ...
    return pe[:, :d_model].to(like.dtype)


class EncoderLayer(nn.Module):
    """A post-norm transformer encoder layer over ``(B, T, d_model)``, as
    ``nn.TransformerEncoderLayer`` (ReLU feed-forward, dropout 3 places), written out so that
    its traced graph keeps batch and time dynamic (the built-in attention's is not)."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, d_model)
        )
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop1, self.drop2, self.drop_attn = (nn.Dropout(dropout) for _ in range(3))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, heads, T, T)
        mixed = self.drop_attn(scores.softmax(-1)) @ v
        return self.out(mixed.transpose(1, 2).flatten(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop1(self.attend(x)))
        return self.norm2(x + self.drop2(self.ff(x)))


class SeizureTransformer(nn.Module):
    """Input ``(B, channels, S)`` -> seizure logits ``(B, S)``, one per sample."""

    DESCRIPTION = "SeizureTransformer (Wu et al. 2025): conv U-Net + transformer, 1 logit/sample"

    def __init__(
        self,
        *,
        n_channels: int,
        fs: float,
        filters: Sequence[int] = FILTERS,
        encoder_kernels: Sequence[int] = ENCODER_KERNELS,
        decoder_kernels: Sequence[int] = DECODER_KERNELS,
        res_kernels: Sequence[int] = RES_KERNELS,
        layers: int = 8,
        heads: int = 4,
        ff: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        filters, encoder_kernels = list(filters), list(encoder_kernels)
        decoder_kernels, res_kernels = list(decoder_kernels), list(res_kernels)
        _bounded("stages", len(filters))
        for f in filters:
            _bounded("filters", f)
        if not len(encoder_kernels) == len(decoder_kernels) == len(filters):
            raise ValueError(
                f"filters, encoder_kernels and decoder_kernels must be as long (one per stage), "
                f"got {len(filters)}, {len(encoder_kernels)} and {len(decoder_kernels)}"
            )
        for k in [*encoder_kernels, *decoder_kernels, *res_kernels]:
            _bounded("kernel", k)
        if any(k % 2 == 0 for k in [*encoder_kernels, *decoder_kernels]):
            raise ValueError("encoder_kernels and decoder_kernels must be odd (centred convs)")
        _bounded("res_blocks", len(res_kernels), low=0)
        _bounded("layers", layers)
        _bounded("ff", ff)
        d_model = filters[-1]
        _bounded("heads", heads)
        if d_model % heads:
            raise ValueError(f"heads ({heads}) must divide d_model, the last filter ({d_model})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_channels, self.fs, self.d_model = n_channels, fs, d_model
        self.output_stride = 1
        self.encoder = nn.ModuleList(
            same_conv(c_in, c_out, k)
            for c_in, c_out, k in zip(
                [n_channels, *filters[:-1]], filters, encoder_kernels, strict=True
            )
        )
        self.pool = nn.MaxPool1d(2, ceil_mode=True)  # odd lengths: the last sample alone
        self.res_stack = nn.Sequential(*(ResBlock(d_model, k, dropout) for k in res_kernels))
        self.pe_drop = nn.Dropout(dropout)
        self.transformer = nn.Sequential(
            *(EncoderLayer(d_model, heads, ff, dropout) for _ in range(layers))
        )
        up = filters[::-1]
        self.decoder = nn.ModuleList(
            same_conv(c_in, c_out, k)
            for c_in, c_out, k in zip([d_model, *up[:-1]], up, decoder_kernels, strict=True)
        )
        self.head = same_conv(filters[0], 1, 11)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.n_channels:
            raise ValueError(
                f"expected input (batch, {self.n_channels}, samples), got {tuple(x.shape)}"
            )
        skips = []
        for conv in self.encoder:
            x = F.elu(conv(x))
            skips.append(x)
            x = self.pool(x)
        res = self.res_stack(x)
        seq = res.transpose(1, 2)  # (B, T, d_model)
        seq = self.pe_drop(seq + sinusoid(seq.shape[1], self.d_model, seq))
        x = self.transformer(seq).transpose(1, 2) + res
        for conv, skip in zip(self.decoder, reversed(skips), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")[..., : skip.shape[-1]]
            x = F.elu(conv(x)) + skip
        return self.head(x).squeeze(1)
