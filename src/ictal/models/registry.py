"""Model registry: detectors are built by name from the config, with the data's shape."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ictal.config import ConfigError

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
    """Build model ``name`` for ``n_channels`` inputs at ``fs`` Hz with its own ``params``;
    an unknown name or parameters the model does not accept are a config error naming
    ``model.name`` / ``model.params`` (exit 2)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ConfigError(
            f"model.name={name!r} is not a known model; available: "
            f"{', '.join(available()) or '(none)'}"
        ) from None
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        known = set(signature.parameters) - {"n_channels", "fs", "self"}
        unknown = sorted(set(params) - known)
        if unknown and not accepts_any:
            raise ConfigError(
                f"model.params: {', '.join(unknown)} not accepted by model {name!r}; it "
                f"takes {', '.join(sorted(known)) or 'no parameters'}"
            )
    try:
        return builder(n_channels=n_channels, fs=fs, **params)
    except (TypeError, ValueError, ZeroDivisionError, RuntimeError) as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) or "(defaults)"
        raise ConfigError(
            f"model {name!r} cannot be built with model.params {shown}: {exc}"
        ) from exc
