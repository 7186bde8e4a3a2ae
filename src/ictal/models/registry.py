"""Model registry: detectors are built from the config by registered name, by import path
(``package.module:factory``) or by an ``ictal.models`` entry point, and each build records
where its model came from so that a checkpoint can be rebuilt, or refused, elsewhere.

A name is found (``find``) without importing anything; an import path is imported only when
the caller's ``ModelTrust`` allows it (``ictal.models.trust``), and what it names must be a
model: an ``nn.Module`` subclass or a function marked ``@factory`` (or ``@register``). So a
file that names ``os:system``, ``torch.hub:load`` or ``builtins:exec`` never gets it called."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import inspect
import keyword
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from ictal.config import ConfigError
from ictal.models.detector import ConvBiGRU
from ictal.models.seizure_transformer import SeizureTransformer
from ictal.models.source import Builder, Found, ModelNotFound, ModelSource, NotAModel
from ictal.models.tcn_ssm import TCNSSM
from ictal.models.trust import ModelTrust, require_trusted

F = TypeVar("F", bound=Callable[..., Any])
ENTRY_POINT_GROUP = "ictal.models"
MARK = "__ictal_model_factory__"  # set on a function by @factory and @register
_BUILDERS: dict[str, Builder] = {
    "conv_bigru": ConvBiGRU,
    "seizure_transformer": SeizureTransformer,
    "tcn_ssm": TCNSSM,
}
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
IMPORT_PATH = re.compile(rf"^({_DOTTED}):({_DOTTED})$")


def factory(fn: F) -> F:
    """Decorator: mark a function as an Ictal model factory, so that an import path
    (``model.name: my_package.models:build``) may name it. A class needs no mark: any
    ``nn.Module`` subclass is a factory."""
    setattr(fn, MARK, True)
    return fn


def register(name: str) -> Callable[[F], F]:
    """Decorator: make a model class or factory buildable as ``name`` (and a factory)."""

    def decorate(builder: F) -> F:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"model name {name!r} is already registered")
        _BUILDERS[name] = builder
        return factory(builder) if inspect.isfunction(builder) else builder

    return decorate


def is_model_factory(obj: object) -> bool:
    """An ``nn.Module`` subclass, or a plain function marked by ``@factory``: never a
    built-in, a partial, a method or a callable instance."""
    if inspect.isclass(obj):
        return issubclass(obj, nn.Module)
    return inspect.isfunction(obj) and obj.__dict__.get(MARK) is True


def available() -> list[str]:
    """Registered model names and installed entry points, sorted."""
    points = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(set(_BUILDERS) | points)


def _distribution(module: str) -> tuple[str | None, str | None]:
    """(distribution name, version) of the installed package holding a top-level module, from
    the installed metadata (nothing is imported)."""
    top = module.split(".", 1)[0]
    names = metadata.packages_distributions().get(top, [])
    if not names:
        return None, None
    try:
        return names[0], metadata.version(names[0])
    except metadata.PackageNotFoundError:
        return names[0], None


def _check_path(target: str) -> tuple[str, str]:
    """The module and attribute path of ``module:attr``, refused before anything is imported
    when it is not one, climbs through dunders, or points into Python's standard library."""
    match = IMPORT_PATH.match(target)
    if match is None or len(target) > 300:
        raise NotAModel(
            f"model.name={target!r}: an import path is 'package.module:factory' (dotted names)"
        )
    module, attr = match.groups()
    parts = [*module.split("."), *attr.split(".")]
    if any(p.startswith("__") or keyword.iskeyword(p) for p in parts):
        raise NotAModel(f"model.name={target!r}: a dunder or keyword is not a model's name")
    if module.split(".", 1)[0] in sys.stdlib_module_names:  # no os:system, no antigravity
        raise NotAModel(
            f"model.name={target!r}: {module!r} is Python's standard library, not a model"
        )
    return module, attr


def _import(target: str, module: str, attr: str) -> Builder:
    """The model factory at an import path (the trust decision was taken before)."""
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ModelNotFound(
            f"model.name={target!r}: module {module!r} cannot be imported ({exc}); install "
            "the package that provides it, or put it on PYTHONPATH"
        ) from None
    except (Exception, SystemExit) as exc:  # the module fails when imported
        raise ModelNotFound(
            f"model.name={target!r}: importing {module!r} failed ({type(exc).__name__}: {exc})"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelNotFound(f"model.name={target!r}: {module!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not is_model_factory(obj):
        raise NotAModel(
            f"model.name={target!r} is not a model factory ({type(obj).__name__}): name an "
            "nn.Module subclass, or mark the function with @ictal.models.factory"
        )
    return obj


def _entry_point(name: str) -> Found | None:
    points = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not points:
        return None
    ep = points[0]
    dist = ep.dist

    def load() -> Builder:
        try:
            builder = ep.load()
        except (Exception, SystemExit) as exc:
            raise ModelNotFound(
                f"model.name={name!r}: entry point {ep.value!r} cannot be loaded "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if not callable(builder):  # the package declared it a model: no mark needed
            raise NotAModel(f"model.name={name!r}: entry point {ep.value!r} is not callable")
        return builder

    source = ModelSource("entry_point", ep.value, dist.name if dist else None,
                         dist.version if dist else None)  # fmt: skip
    return Found(source, load)


def find(name: str) -> Found:
    """Where ``model.name`` stands for code, without importing any of it: a braindecode class
    (``braindecode/<Class>``), a registered name, an import path (checked, its distribution
    from the installed metadata) or an entry point."""
    if name.startswith("braindecode/"):  # installed code, like an entry point
        from ictal.models import braindecode

        return braindecode.find(name)
    if name in _BUILDERS:
        builder = _BUILDERS[name]
        return Found(ModelSource("builtin", name), lambda: builder)
    if ":" in name:
        module, attr = _check_path(name)
        package, version = _distribution(module)
        return Found(ModelSource("import", name, package, version),
                     lambda: _import(name, module, attr))  # fmt: skip
    found = _entry_point(name)
    if found is not None:
        return found
    raise ModelNotFound(
        f"model.name={name!r} is not a known model; available: "
        f"{', '.join(available()) or '(none)'}; or give an import path 'package.module:factory' "
        "or a braindecode model, braindecode/<Class>"
    )


def permit(found: Found, trust: ModelTrust, origin: str) -> None:
    """Refuse (exit 3) to import an import path ``origin`` names that ``trust`` does not
    allow; registered models and entry points are the user's installed code."""
    if found.source.kind == "import":
        require_trusted(found.source.target, trust, origin)


def resolve(
    name: str, trust: ModelTrust = ModelTrust(), origin: str = "model.name"
) -> tuple[Builder, ModelSource]:
    """The builder ``model.name`` stands for and where it comes from; an import path only
    when ``trust`` allows it (a config's own ``model.name``: ``ModelTrust(named=name)``)."""
    found = find(name)
    permit(found, trust, origin)
    return found.load(), found.source


def build_model(name: str, *, n_channels: int, fs: float, **params: Any) -> nn.Module:
    """Build model ``name`` (the caller's own choice) for ``n_channels`` inputs at ``fs`` Hz
    with its own ``params``; an unknown name or parameters the model does not accept are a
    config error naming ``model.name`` / ``model.params`` (exit 2)."""
    builder, _ = resolve(name, ModelTrust(named=name))
    return construct(builder, name, n_channels, fs, params)


def construct(
    builder: Builder, name: str, n_channels: int, fs: float, params: Mapping[str, Any]
) -> nn.Module:
    """Call a resolved builder with the data's shape and ``model.params`` (any parameter
    name but the shape's own, ``n_channels`` and ``fs``)."""
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ConfigError(f"model.params of model {name!r} must be a mapping of names to values")
    reserved = sorted({"n_channels", "fs"} & set(params))
    if reserved:
        raise ConfigError(
            f"model.params: {', '.join(reserved)} is given by the data, not a parameter"
        )
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
    except (TypeError, ValueError, ZeroDivisionError, RuntimeError, OverflowError) as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) or "(defaults)"
        raise ConfigError(
            f"model {name!r} cannot be built with model.params {shown[:200]}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {name!r}: its factory returned {type(model).__name__}, "
                          "not a torch.nn.Module")  # fmt: skip
    return model
