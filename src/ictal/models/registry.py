"""Model registry: detectors are built from the config by registered name, by import path
(``package.module:factory``) or by an ``ictal.models`` entry point, and each build records
where its model came from so that a checkpoint can be rebuilt, or refused, elsewhere."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ictal.config import ConfigError

Builder = Callable[..., nn.Module]
_BUILDERS: dict[str, Builder] = {}
ENTRY_POINT_GROUP = "ictal.models"


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make a model class or factory buildable as ``name``."""

    def decorate(builder: Builder) -> Builder:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"model name {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorate


def available() -> list[str]:
    """Registered model names and installed entry points, sorted."""
    points = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(set(_BUILDERS) | points)


@dataclass(frozen=True)
class ModelSource:
    """Where a model's code came from: Ictal itself, an import path or an entry point, and
    the installed distribution (name and version) that provides it, when there is one."""

    kind: str  # "builtin", "import" or "entry_point"
    target: str  # the registered name, or "module:factory"
    package: str | None = None
    version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "package": self.package,
                "version": self.version}  # fmt: skip

    def describe(self) -> str:
        pkg = f" from {self.package} {self.version}" if self.package else ""
        return f"{self.target!r}{pkg}"


class ModelNotFound(ConfigError):
    """``model.name`` names nothing importable here (exit 2; readers of a checkpoint turn
    it into a preflight refusal naming the package to install)."""


def _distribution(module: str) -> tuple[str | None, str | None]:
    """(distribution name, version) of the installed package holding a top-level module."""
    top = module.split(".", 1)[0]
    names = metadata.packages_distributions().get(top, [])
    if not names:
        return None, None
    try:
        return names[0], metadata.version(names[0])
    except metadata.PackageNotFoundError:
        return names[0], None


def _import(target: str) -> Builder:
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ModelNotFound(f"model.name={target!r}: an import path is 'package.module:factory'")
    if module.split(".", 1)[0] in sys.stdlib_module_names:  # a checkpoint names this: no
        raise ModelNotFound(  # os:system or a module that acts when imported
            f"model.name={target!r}: {module!r} is Python's standard library, not a model"
        )
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ModelNotFound(
            f"model.name={target!r}: module {module!r} cannot be imported ({exc}); install "
            "the package that provides it, or put it on PYTHONPATH"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelNotFound(f"model.name={target!r}: {module!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelNotFound(f"model.name={target!r}: {attr!r} is not callable")
    return obj


def resolve(name: str) -> tuple[Builder, ModelSource]:
    """The builder ``model.name`` stands for and where it comes from."""
    if name in _BUILDERS:
        return _BUILDERS[name], ModelSource("builtin", name)
    if ":" in name:
        builder = _import(name)
        package, version = _distribution(name.partition(":")[0])
        return builder, ModelSource("import", name, package, version)
    points = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if points:
        ep = points[0]
        try:
            builder = ep.load()
        except ImportError as exc:
            raise ModelNotFound(
                f"model.name={name!r}: entry point {ep.value!r} cannot be loaded ({exc})"
            ) from None
        dist = ep.dist
        return builder, ModelSource(
            "entry_point", ep.value, dist.name if dist else None, dist.version if dist else None
        )
    raise ModelNotFound(
        f"model.name={name!r} is not a known model; available: "
        f"{', '.join(available()) or '(none)'}; or give an import path 'package.module:factory'"
    )


def build_model(name: str, *, n_channels: int, fs: float, **params: Any) -> nn.Module:
    """Build model ``name`` for ``n_channels`` inputs at ``fs`` Hz with its own ``params``;
    an unknown name or parameters the model does not accept are a config error naming
    ``model.name`` / ``model.params`` (exit 2)."""
    builder, _ = resolve(name)
    return construct(builder, name, n_channels=n_channels, fs=fs, **params)


def construct(
    builder: Builder, name: str, *, n_channels: int, fs: float, **params: Any
) -> nn.Module:
    """Call a resolved builder with the data's shape and ``model.params``."""
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
        model = builder(n_channels=n_channels, fs=fs, **params)
    except (TypeError, ValueError, ZeroDivisionError, RuntimeError) as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) or "(defaults)"
        raise ConfigError(
            f"model {name!r} cannot be built with model.params {shown}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {name!r}: its factory returned {type(model).__name__}, "
                          "not a torch.nn.Module")  # fmt: skip
    return model
