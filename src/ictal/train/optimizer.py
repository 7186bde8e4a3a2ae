"""The optimizer: torch's AdamW, stepped eagerly without loading torch's compiler.

Every torch optimizer wraps its methods so that a `torch.compile` trace can break around
them, and the wrappers import `torch._dynamo` on first use: 1.4-2.1 s of every training
process's start (each sweep trial, each DDP rank), for a compiler Ictal never runs on the
optimizer. This subclass calls the methods beneath the wrappers, doing in eager mode what the
wrappers would (gradients off during the update); the arithmetic, the state dict and the
checkpoints are torch's own, bit for bit. A torch whose methods carry no such wrapper gets its
methods as they are.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import AdamW, Optimizer


def _beneath(method: Callable[..., Any]) -> Callable[..., Any]:
    """The function beneath every wrapper (`functools.wraps` keeps each one's inner function:
    torch's compiler wrappers, and the step hooks torch adds to a class it instantiated)."""
    return inspect.unwrap(method)


class EagerAdamW(AdamW):
    """AdamW whose construction, step, zero_grad and state dict never import the compiler."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _beneath(Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _beneath(Optimizer.zero_grad)(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _beneath(Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _beneath(Optimizer.load_state_dict)(self, state_dict)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return _beneath(AdamW.step)(self, closure)
