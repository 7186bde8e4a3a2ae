"""The training objective, written once for the training step and validation: binary cross
entropy of each output step's seizure logit against the seizure fraction of the samples it
covers, seizure steps weighted by the draw's ``pos_weight`` ((1 - p) / p)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ictal.models.detector import pool_targets


def step_targets(y: torch.Tensor, stride: int, steps: int) -> torch.Tensor:
    """Per-sample labels ``(B, W)`` as the seizure fraction of each of ``steps`` outputs."""
    return pool_targets(y, stride)[:, :steps]


def seizure_bce(
    logits: torch.Tensor,
    target: torch.Tensor,
    pos_weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """BCE of float32 logits against step targets; ``pos_weight`` weighs seizure steps."""
    return F.binary_cross_entropy_with_logits(
        logits.float(), target, pos_weight=pos_weight, reduction=reduction
    )
