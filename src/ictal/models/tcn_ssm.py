"""TCN + selective state space: a dilated temporal conv front end strided down to ``out_hz``,
then bidirectional Mamba-style selective SSM blocks over the steps, one logit per step.

Each SSM block mixes the sequence forward and time-reversed with its own weights (offline
detection sees the whole window) and adds both to its input. The scan runs on mamba-ssm's
fused CUDA kernel when it can, else on the PyTorch reference (``ictal.models.selective_scan``,
``model.params.kernel``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ictal.config import ConfigError
from ictal.models.detector import ConvBlock, output_stride, split_stride
from ictal.models.metadata import bounded
from ictal.models.selective_scan import scan_path, selective_scan

# Sizes a checkpoint's model.params may ask of this model (they come from untrusted files).
LIMITS = {"width": 4096, "tcn_depth": 16, "ssm_layers": 32, "d_state": 256, "d_conv": 16,
          "expand": 8}  # fmt: skip


class DilatedBlock(nn.Module):
    """x + GELU(BN(conv_k3(x))) at dilation ``dilation``: the length is kept."""

    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm1d(channels),
            nn.GELU(),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Mixer(nn.Module):
    """One direction of a Mamba block over ``(B, L, d_model)``: in_proj to (x, z), causal
    depthwise conv, SiLU, x_proj to (dt, B, C), dt_proj, selective scan gated by SiLU(z)."""

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, kernel: str) -> None:
        super().__init__()
        inner = expand * d_model
        self.kernel, self.d_state = kernel, d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * inner, bias=False)
        self.conv = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        # Mamba's initialisation: dt between 1e-3 and 1e-1 (log-uniform) through the softplus,
        # A = -(1..N) per channel (S4D-real), D = 1.
        dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, d_model, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        length = h.shape[1]
        x, z = self.in_proj(h).transpose(1, 2).chunk(2, dim=1)  # (B, inner, L) each
        x = F.silu(self.conv(x)[..., :length])  # causal: drop the right padding
        dt, b, c = self.x_proj(x.transpose(1, 2)).split(
            [self.dt_rank, self.d_state, self.d_state], dim=-1
        )
        delta = (dt @ self.dt_proj.weight.T).transpose(1, 2)  # the bias goes in the scan
        y = selective_scan(
            self.kernel,
            x.contiguous(),
            delta.contiguous(),
            -torch.exp(self.A_log.float()),
            b.transpose(1, 2).contiguous(),
            c.transpose(1, 2).contiguous(),
            self.D.float(),
            z=z.contiguous(),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )
        return self.out_proj(y.transpose(1, 2))


class BiSSMBlock(nn.Module):
    """h + forward(norm h) + reversed(backward(reversed(norm h))), then dropout."""

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, kernel: str,
                 dropout: float) -> None:  # fmt: skip
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.forward_mixer = Mixer(d_model, d_state, d_conv, expand, kernel)
        self.backward_mixer = Mixer(d_model, d_state, d_conv, expand, kernel)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.norm(h)
        back = self.backward_mixer(x.flip(1)).flip(1)
        return h + self.drop(self.forward_mixer(x) + back)


class TCNSSM(nn.Module):
    """Input ``(B, channels, S)`` -> seizure logits ``(B, S // output_stride)``."""

    DESCRIPTION = "dilated TCN down to out_hz, then bidirectional Mamba-style selective SSM blocks"
    # How the model runs, not what it computes: a checkpoint trained on the fused kernel is
    # rebuilt for evaluation or detection with these (the same weights, the reference scan
    # where the kernel cannot load).
    INFERENCE_PARAMS: ClassVar[dict[str, str]] = {"kernel": "auto"}

    def __init__(
        self,
        *,
        n_channels: int,
        fs: float,
        out_hz: float = 1.0,
        width: int = 64,
        tcn_depth: int = 2,
        ssm_layers: int = 2,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dropout: float = 0.1,
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        sizes = {"width": width, "tcn_depth": tcn_depth, "ssm_layers": ssm_layers,
                 "d_state": d_state, "d_conv": d_conv, "expand": expand}  # fmt: skip
        for key, value in sizes.items():
            bounded(key, value, LIMITS[key], low=0 if key == "tcn_depth" else 1)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        path, why = scan_path(kernel, "cuda" if torch.cuda.is_available() else "cpu")
        if path == "unusable":
            raise ConfigError(
                f"{why}; fix: set model.params.kernel=auto (the fused kernel when it loads, "
                "else the reference), or install mamba-ssm for this torch and CUDA"
            )
        self.n_channels, self.fs, self.out_hz, self.kernel = n_channels, fs, out_hz, kernel
        self.output_stride = output_stride(fs, out_hz)
        layers: list[nn.Module] = []
        c_in = n_channels
        for s in split_stride(self.output_stride):
            layers.append(ConvBlock(c_in, width, s, dropout))
            layers += [DilatedBlock(width, 2**i, dropout) for i in range(tcn_depth)]
            c_in = width
        if not layers:  # out_hz == fs: no stride, one pointwise projection
            layers.append(nn.Conv1d(n_channels, width, 1))
        self.tcn = nn.Sequential(*layers)
        self.ssm = nn.ModuleList(
            BiSSMBlock(width, d_state, d_conv, expand, kernel, dropout) for _ in range(ssm_layers)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.n_channels:
            raise ValueError(
                f"expected input (batch, {self.n_channels}, window), got {tuple(x.shape)}"
            )
        if x.shape[2] < self.output_stride:
            raise ValueError(f"window {x.shape[2]} is shorter than one output step")
        h = self.tcn(x).transpose(1, 2)  # (B, T, width)
        for block in self.ssm:
            h = block(h)
        return self.head(self.norm(h)).squeeze(-1)
