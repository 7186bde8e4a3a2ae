"""The torch device from the config: 'auto' takes CUDA when present; an explicit request for
CUDA without it is an error, never a silent CPU fallback (docs/design.md, invariant 6)."""

from __future__ import annotations

import torch

from ictal.errors import UsageError


def pick_device(name: str) -> torch.device:
    """'auto' takes CUDA when present; asking for CUDA without it is an error (no fallback)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("train.device=cuda but no CUDA device is available; use train.device=cpu")
    return torch.device(name)
