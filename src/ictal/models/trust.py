"""Which model code a command may import. Registered models and ``ictal.models`` entry points
are code the user installed; an import path (``module:attr``) that a checkpoint or a run's
frozen config names is imported only when the user's own config names the same path or the
user passes ``--trust-model-code`` (Hugging Face's ``trust_remote_code``). Torch-free: detect's
workers carry the decision in their task."""

from __future__ import annotations

from dataclasses import dataclass

from ictal.errors import PreflightError

FLAG = "--trust-model-code"


@dataclass(frozen=True)
class ModelTrust:
    """What the user accepts of the model code a file names: the ``model.name`` of their own
    config (``-c``/``--set``, never a run's frozen config), any import path (``any_code``:
    --trust-model-code) and another version of the code (``any_version``:
    --allow-version-mismatch). The default accepts neither."""

    named: str | None = None
    any_code: bool = False
    any_version: bool = False

    def allows(self, target: str) -> bool:
        """May the import path ``target`` be imported?"""
        return self.any_code or target == self.named


class UntrustedModelCode(PreflightError):
    """An import path named by a file, not by the user: refused before any import (exit 3)."""


def require_trusted(target: str, trust: ModelTrust, origin: str) -> None:
    """Refuse the import path ``target`` that ``origin`` (a checkpoint, a run's frozen config)
    names, unless the user named it or passed --trust-model-code."""
    if trust.allows(target):
        return
    raise UntrustedModelCode(
        f"{origin} names the model code {target!r}, which your config does not name: Ictal "
        f"imports an import path only when you name it or pass {FLAG}",
        f"if you trust that code, pass {FLAG} (or --set model.name={target}); otherwise use "
        "a checkpoint of a registered model or an installed ictal.models entry point",
    )
