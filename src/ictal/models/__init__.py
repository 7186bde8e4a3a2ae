"""Seizure detectors and the registry that builds them by name.

Its names load lazily: ``ictal.models.trust`` and ``ictal.models.metadata`` are torch-free
(an ONNX export runs without torch), the registry imports torch."""

from __future__ import annotations

from typing import Any

__all__ = ["available", "build_model", "factory", "register"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ictal.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'ictal.models' has no attribute {name!r}")
