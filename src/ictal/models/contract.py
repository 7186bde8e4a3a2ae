"""The model contract, checked on a trial batch before any training: a model maps
``(batch, channels, samples)`` float32 at the cache rate to logits
``(batch, samples // output_stride)`` and has an integer ``output_stride``."""

from __future__ import annotations

import torch
from torch import nn

from ictal.errors import PreflightError

DOCS = "see docs/models.md (the model contract)"


class ContractError(PreflightError):
    """A model that does not fit the contract: refused before training starts (exit 3)."""


def output_stride(model: nn.Module, name: str) -> int:
    """The model's input samples per output step, or a refusal naming what it has."""
    stride = getattr(model, "output_stride", None)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ContractError(
            f"model {name!r} must have an integer attribute output_stride >= 1 (input samples "
            f"per output step); it has {stride!r}",
            DOCS,
        )
    return stride


def check_contract(model: nn.Module, name: str, n_channels: int, samples: int) -> int:
    """Run one trial batch of zeros through ``model`` (eval mode, no gradients, so no state
    or random stream moves) and refuse an output that breaks the contract; return the stride."""
    stride = output_stride(model, name)
    samples -= samples % stride
    if samples < stride:
        raise ContractError(
            f"model {name!r}: output_stride {stride} is longer than a training window",
            "use longer windows.length_s or a model with a smaller output_stride",
        )
    shape_in = (2, n_channels, samples)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape_in, dtype=torch.float32))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ContractError(
            f"model {name!r} fails on a trial batch of shape {shape_in}: "
            f"{type(exc).__name__}: {first}",
            DOCS,
        ) from None
    finally:
        model.train(was_training)
    want = (2, samples // stride)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != want or not out.is_floating_point():
        raise ContractError(
            f"model {name!r} maps a trial batch {shape_in} to {got}; the contract wants "
            f"logits of shape {want} (batch, samples // output_stride, output_stride={stride})",
            DOCS,
        )
    return stride
