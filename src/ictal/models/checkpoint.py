"""The checkpoint file: its format, the model identity it carries, and safe loading.

A checkpoint is a dict of tensors and plain containers, read with ``weights_only=True`` (no
pickled objects). Training writes it (``ictal.train.state``); evaluation and every other
reader rebuild the model from it here, so no reader depends on the training code.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ictal.errors import PreflightError, UsageError
from ictal.models.registry import ModelNotFound, ModelSource, construct, resolve
from ictal.ui import log

FORMAT = "ictal-checkpoint-1"
# Keys only training needs; load_model drops them.
TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "sampler", "rng", "rng_ranks")
# What inference needs besides the weights.
INFERENCE_KEYS = ("model_name", "model_params", "n_channels", "fs", "output_stride", "window")


@dataclass(frozen=True)
class ModelSpec:
    """What inference needs to rebuild the model and feed it."""

    name: str
    params: dict[str, Any]
    n_channels: int
    fs: float
    output_stride: int
    window: int  # training window in samples
    source: dict[str, Any] | None = None  # ModelSource.as_dict(): where the code came from


class CheckpointError(PreflightError, ValueError):
    """A checkpoint file that cannot be read (empty, truncated, foreign): exit 3."""


class ModelSourceError(PreflightError):
    """A checkpoint whose model code is missing here, or another version of it: exit 3."""


def check_format(ckpt: Any) -> None:
    """Refuse anything that is not an ictal checkpoint of a supported format."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"not an {FORMAT} checkpoint (format {found!r})")


def _first_sentence(exc: BaseException) -> str:
    """The first line of an error, cut at its first sentence and 120 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text.split(". ")[0][:120]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict, read without unpickling objects; an empty, truncated or foreign
    file is a CheckpointError naming it."""
    try:
        ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be read (empty, truncated or not a torch file: "
            f"{type(exc).__name__}: {_first_sentence(exc)})",
            "restore it from a copy (the sink holds one when sink.url is set), or move it "
            "aside: a resumed run without last.pt starts again from step 0",
        ) from exc
    try:
        check_format(ckpt)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}", "pass a checkpoint of ictal train") from None
    return ckpt


def rebuild(
    ckpt: dict[str, Any], path: str | Path, *, allow_version_mismatch: bool = False
) -> nn.Module:
    """The untrained model of a checkpoint, from the code it was trained with: a package
    that is missing, or installed at another version, is refused (exit 3) unless allowed."""
    name = ckpt["model_name"]
    recorded = ModelSource(**ckpt["model_source"]) if ckpt.get("model_source") else None
    pinned = (
        f"'{recorded.package}=={recorded.version}'"
        if recorded is not None and recorded.package and recorded.version
        else None
    )
    try:
        builder, here = resolve(name)
    except ModelNotFound as exc:
        trained = recorded.describe() if recorded is not None else repr(name)
        raise ModelSourceError(
            f"checkpoint {path} was trained with model {trained}, which cannot be loaded "
            f"here: {exc}",
            f"pip install {pinned}" if pinned else "install the package that provides it",
        ) from None
    if recorded is not None and recorded.version and here.version != recorded.version:
        problem = (
            f"checkpoint {path} was trained with {recorded.package} {recorded.version}; "
            f"here {here.package or recorded.package} is "
            f"{here.version or 'not an installed distribution'}"
        )
        if not allow_version_mismatch:
            raise ModelSourceError(
                problem, f"pip install {pinned}, or pass --allow-version-mismatch to go on"
            )
        log.warning(f"{problem} (--allow-version-mismatch: going on)")
    return construct(
        builder, name, n_channels=ckpt["n_channels"], fs=ckpt["fs"], **ckpt["model_params"]
    )


def load_model(
    path: str | Path, device: str | torch.device = "cpu", *, allow_version_mismatch: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a checkpoint in eval mode on ``device``, and the checkpoint's metadata
    (without weights and training-only state). A missing, unreadable or incomplete file is a
    usage error naming it (exit 2): it is the CKPT the user passed; model code that is
    missing or of another version here is a ModelSourceError (exit 3)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        raise UsageError(exc.problem) from exc
    missing = [k for k in (*INFERENCE_KEYS, "model") if k not in ckpt]
    if missing:
        raise UsageError(f"checkpoint {path} lacks {', '.join(missing)}")
    model = rebuild(ckpt, path, allow_version_mismatch=allow_version_mismatch)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise UsageError(f"checkpoint {path}: weights do not fit the model ({exc})") from exc
    model.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k not in (*TRAINING_KEYS, "model")}
    return model, meta
