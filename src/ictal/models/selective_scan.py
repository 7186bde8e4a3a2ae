"""The selective scan of Mamba (Gu and Dao 2023): ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t
u_t``, ``y_t = C_t h_t + D u_t``, gated by ``SiLU(z)``, with the signature and semantics of
``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``.

Two paths: mamba-ssm's fused CUDA kernel, and a pure-PyTorch reference that runs anywhere and
exports to ONNX with a dynamic time axis. The reference is a parallel prefix scan (Hillis and
Steele doubling) of the linear recurrence with its decays kept as log-decays (sums of
``delta * A <= 0``), so nothing is ever divided by a decay or exponentiated above 1. The number
of doubling steps is ``ceil(log2 L)`` when run eagerly and, under tracing, the number needed by
the longest sequence the model accepts: a step whose shift is past the end adds exact zeros.
``scan_path`` is the one decision of which path runs (the model and ``ictal doctor`` ask it).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ictal.models.metadata import MAX_WINDOW

KERNELS = ("auto", "fused", "reference")
FUSED_MODULE = "mamba_ssm.ops.selective_scan_interface"
MAX_STEPS = math.ceil(math.log2(MAX_WINDOW))  # doubling steps that cover any accepted length


@functools.cache
def fused_kernel() -> tuple[Callable[..., Any] | None, str]:
    """mamba-ssm's ``selective_scan_fn`` and "", or None and why it does not load here."""
    try:
        import importlib

        module = importlib.import_module(FUSED_MODULE)
        return module.selective_scan_fn, ""
    except Exception as exc:  # not installed, or its CUDA extension fails to load
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        return None, f"mamba_ssm does not load ({type(exc).__name__}: {first})"


def scan_path(kernel: str, device: torch.device | str) -> tuple[str, str]:
    """Which scan runs for ``model.params.kernel`` on ``device``: ("fused" | "reference" |
    "unusable", why). "unusable": a kernel value that is not one of KERNELS, or ``fused``
    when the fused kernel cannot run on this machine (the model refuses to build, doctor
    fails). ``auto`` on a CPU device is decided without importing mamba_ssm."""
    if kernel not in KERNELS:
        return (
            "unusable",
            f"model.params.kernel must be one of {', '.join(KERNELS)}, got {kernel!r}",
        )
    if kernel == "reference":
        return "reference", "model.params.kernel=reference"
    on_cuda = torch.device(device).type == "cuda"
    if kernel == "auto" and not on_cuda:  # decided without importing mamba_ssm
        return "reference", "auto: the fused kernel is CUDA-only"
    fn, why = fused_kernel()
    if kernel == "auto":
        if fn is None:
            return "reference", f"auto: {why}"
        return "fused", "auto: mamba_ssm's CUDA kernel on a CUDA device"
    if fn is None:
        return "unusable", f"model.params.kernel=fused but {why}"
    if not on_cuda and not torch.cuda.is_available():
        return "unusable", "model.params.kernel=fused but no CUDA device (the kernel is CUDA-only)"
    if not on_cuda:
        return "reference", "input on the CPU (the fused kernel is CUDA-only)"
    return "fused", "model.params.kernel=fused: mamba_ssm's CUDA kernel"


def _shift(x: torch.Tensor, by: int) -> torch.Tensor:
    """``x`` moved ``by`` steps later along dim 2, zeros first; the length never changes (a
    gather, so a shift past the end is all zeros for any length, also in an ONNX graph)."""
    index = torch.arange(x.shape[2], device=x.device) - by
    valid = (index >= 0).to(x.dtype).view(1, 1, -1, 1)
    return x.index_select(2, index.clamp(min=0)) * valid


def _steps(length: int) -> int:
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return MAX_STEPS  # the traced graph must serve every length
    return max(0, math.ceil(math.log2(max(length, 1))))


def _per_step(m: torch.Tensor, d: int) -> torch.Tensor:
    """B or C as ``(batch, d, L, N)``: from ``(batch, N, L)`` or grouped ``(batch, G, N, L)``."""
    if m.ndim == 3:
        return m.transpose(1, 2).unsqueeze(1)
    groups = m.shape[1]
    return m.repeat_interleave(d // groups, dim=1).transpose(2, 3)


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The selective scan in PyTorch: u, delta, z ``(batch, D, L)``, A ``(D, N)``, B and C
    ``(batch, N, L)`` (or ``(batch, groups, N, L)``), D ``(D,)``, delta_bias ``(D,)``;
    returns y ``(batch, D, L)`` (and the last state ``(batch, D, N)``), in u's dtype."""
    dtype = u.dtype
    u, delta, A = u.float(), delta.float(), A.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    d = u.shape[1]
    log_decay = delta.unsqueeze(-1) * A.unsqueeze(1)  # (batch, D, L, N), <= 0
    h = (delta * u).unsqueeze(-1) * _per_step(B.float(), d)  # the input each step adds
    for k in range(_steps(u.shape[2])):
        # after step k, h_t sums the inputs of t - 2^(k+1) < s <= t with their decays
        h = h + torch.exp(log_decay) * _shift(h, 1 << k)
        log_decay = log_decay + _shift(log_decay, 1 << k)
    y = (h * _per_step(C.float(), d)).sum(-1)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype)
    return (y, h[:, :, -1]) if return_last_state else y


def selective_scan_loop(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The same scan one step at a time, in float64: the definition the fast paths are
    tested against (slow, never used by a model)."""
    u, delta, A = u.double(), delta.double(), A.double()
    if delta_bias is not None:
        delta = delta + delta_bias.double()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    d = u.shape[1]
    Bs, Cs = _per_step(B.double(), d), _per_step(C.double(), d)
    h = u.new_zeros(u.shape[0], d, A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        h = (
            torch.exp(delta[:, :, t, None] * A) * h
            + (delta[:, :, t] * u[:, :, t])[..., None] * Bs[:, :, t]
        )
        ys.append((h * Cs[:, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.double()[:, None]
    if z is not None:
        y = y * F.silu(z.double())
    return y


_warned: set[str] = set()


def warn_once(message: str) -> None:
    """One warning line per distinct message in a process (the fallback is not a crash)."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def selective_scan(kernel: str, *args: Any, **kwargs: Any) -> torch.Tensor:
    """The scan on the path ``scan_path`` picks for ``kernel`` and u's device; under ``auto``
    a fused kernel that fails when called is one warning and the reference."""
    path, why = scan_path(kernel, args[0].device)
    if path == "fused":
        fn, _ = fused_kernel()
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:
            if kernel == "fused":
                raise
            warn_once(f"tcn_ssm: the fused selective scan failed ({exc}); using the reference")
    elif kernel == "auto" and torch.device(args[0].device).type == "cuda":
        warn_once(f"tcn_ssm: fused selective scan unavailable, using the reference ({why})")
    return selective_scan_ref(*args, **kwargs)
