"""Model registry: detectors are built by name from the config, with the data's shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

Builder = Callable[..., nn.Module]
_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make a model class or factory buildable as ``name``."""

    def decorate(builder: Builder) -> Builder:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"model name {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorate


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_BUILDERS)


def build_model(name: str, *, n_channels: int, fs: float, **params: Any) -> nn.Module:
    """Build model ``name`` for ``n_channels`` inputs at ``fs`` Hz with its own ``params``."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(available()) or '(none)'}"
        ) from None
    return builder(n_channels=n_channels, fs=fs, **params)
