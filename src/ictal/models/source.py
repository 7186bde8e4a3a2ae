"""Where a model's code comes from, found before anything is imported: the records the
registry and the braindecode adapter share (so neither imports the other's module)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ictal.config import ConfigError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSource:
    """Where a model's code came from: Ictal itself, an import path or an entry point, and
    the installed distribution (name and version) that provides it, when there is one."""

    kind: str  # "builtin", "import", "entry_point" or "braindecode"
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


class NotAModel(ModelNotFound):
    """``model.name`` names something that is not a model factory (exit 2; from a checkpoint,
    a refusal, exit 3)."""


@dataclass(frozen=True)
class Found:
    """A model name found, nothing imported yet: where its code is, and how to load it."""

    source: ModelSource
    load: Callable[[], Builder]
