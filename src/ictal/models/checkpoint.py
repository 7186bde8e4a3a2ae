"""The checkpoint file: its format, the model identity it carries, and safe loading.

A checkpoint is a dict of tensors and plain containers, read with ``weights_only=True`` (no
pickled objects). Training writes it (``ictal.train.state``); evaluation and every other
reader rebuild the model from it here, so no reader depends on the training code. Its values
are untrusted: the inference metadata is validated (``InferenceMeta``), the model code it
names is imported only as the user's ``ModelTrust`` allows, and the model is first built on
the meta device, so weights that do not fit refuse before anything is allocated.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import ValidationError, field_validator, model_validator
from torch import nn

from ictal.config import ConfigError
from ictal.errors import PreflightError, UsageError
from ictal.io.untrusted import UnreadableInput, regular_file
from ictal.models.metadata import (
    Identity,
    MissingChannels,
    Part,
    Preprocessing,
    Shape,
    check_rate,
    invalid,
)
from ictal.models.registry import (
    Found,
    ModelNotFound,
    ModelSource,
    NotAModel,
    construct,
    find,
    permit,
)
from ictal.models.trust import FLAG, ModelTrust
from ictal.ui import log

FORMAT = "ictal-checkpoint-1"
# Keys only training needs; load_model drops them.
TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "sampler", "rng", "rng_ranks")
ALTERED = (
    "use the run's own checkpoint, as ictal train wrote it (the sink holds a copy when "
    "sink.url is set): this one was altered or is not a checkpoint of this Ictal"
)


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

    def __post_init__(self) -> None:  # a checkpoint every reader would refuse is not written
        fields = {"model_name": self.name, "model_params": self.params,
                  "model_source": self.source, "n_channels": self.n_channels, "fs": self.fs,
                  "output_stride": self.output_stride, "window": self.window}  # fmt: skip
        try:
            Identity.model_validate(fields)
            Shape.model_validate(fields)
        except ValidationError as exc:
            raise ConfigError(f"this model cannot be checkpointed: {invalid(exc)}") from None


class _Policy(Part):
    missing_channels: MissingChannels = "error"


class _Corpus(Part):
    policy: _Policy


class _Trained(Part):
    """The parts of the frozen config inference reads: preprocessing and channel policy."""

    signal: Preprocessing
    corpus: _Corpus


class InferenceMeta(Identity, Shape):
    """A checkpoint's values that inference uses, typed and bounded (``ictal.models.metadata``):
    a refusal names the field."""

    format: Literal["ictal-checkpoint-1"]
    config: _Trained | None = None  # absent (or empty): evaluate needs none, detect refuses

    @field_validator("config", mode="before")
    @classmethod
    def _empty(cls, value: object) -> object:
        return None if value == {} else value

    @model_validator(mode="after")
    def _same_rate(self) -> InferenceMeta:
        if self.config is not None:
            check_rate(self.fs, self.config.signal)
        return self


class CheckpointError(PreflightError, ValueError):
    """A checkpoint file that cannot be read (empty, truncated, foreign) or whose values are
    not what training writes: exit 3."""


class ModelSourceError(PreflightError):
    """A checkpoint whose model code is missing here, or another version of it: exit 3."""


def check_format(ckpt: Any) -> None:
    """Refuse anything that is not an ictal checkpoint of a supported format."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"not an {FORMAT} checkpoint (format {str(found)[:40]!r})")


def _first_sentence(exc: BaseException) -> str:
    """The first line of an error, cut at its first sentence and 120 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text.split(". ")[0][:120]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict, read without unpickling objects; an empty, truncated or foreign
    file (or a FIFO, a device, a directory) is a CheckpointError naming it."""
    try:
        regular_file(path, "checkpoint")
        ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
    except UnreadableInput as exc:
        raise CheckpointError(str(exc), "give the checkpoint file ictal train wrote") from None
    except (EOFError, RuntimeError, pickle.UnpicklingError, ValueError, OSError,
            RecursionError, MemoryError) as exc:  # fmt: skip
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


def inference_meta(ckpt: dict[str, Any], path: str | Path) -> InferenceMeta:
    """The checkpoint's inference metadata, validated: a refusal names the file and field."""
    try:
        return InferenceMeta.model_validate(ckpt)
    except ValidationError as exc:
        raise CheckpointError(f"checkpoint {path}: {invalid(exc)}", ALTERED) from None


def _check_source(meta: InferenceMeta, found: Found, path: str | Path, trust: ModelTrust) -> None:
    """The code here must be what the checkpoint was trained with: the same kind and target,
    the same package at the same recorded version (a missing version is a refusal, not a
    skip); ``trust.any_version`` (--allow-version-mismatch) turns a refusal into a warning."""
    rec, here = meta.model_source, found.source
    builtin = ("builtin", here.target)
    if here.kind == "builtin" and (rec is None or (rec.kind, rec.target) == builtin):
        return  # Ictal's own model: the code is this Ictal's
    pinned = f"'{rec.package}=={rec.version}'" if rec and rec.package and rec.version else None
    if rec is None or not rec.version:
        problem = (f"checkpoint {path} records no version of its model code "
                   f"{meta.model_name!r}, so the code here ({here.describe()}) cannot be "
                   "checked against it")  # fmt: skip
    elif (rec.kind, rec.target) != (here.kind, here.target):
        problem = (f"checkpoint {path} was trained with the {rec.kind} {rec.target!r}; here "
                   f"{meta.model_name!r} is the {here.kind} {here.target!r}")  # fmt: skip
    elif (here.package, here.version) != (rec.package, rec.version):
        problem = (f"checkpoint {path} was trained with {rec.package} {rec.version}; here "
                   f"{here.package or rec.package} is "
                   f"{here.version or 'not an installed distribution'}")  # fmt: skip
    else:
        return
    if trust.any_version:
        log.warning(f"{problem} (--allow-version-mismatch: going on)")
        return
    install = f"pip install {pinned}, or " if pinned else ""
    raise ModelSourceError(problem, f"{install}pass --allow-version-mismatch to go on")


def _locate(meta: InferenceMeta, path: str | Path, trust: ModelTrust) -> Found:
    """The checkpoint's model code found (nothing imported), allowed and version-checked."""
    name, rec = meta.model_name, meta.model_source
    try:
        found = find(name)
    except NotAModel as exc:
        raise ModelSourceError(f"checkpoint {path}: {exc}", ALTERED) from None
    except ModelNotFound as exc:
        trained = repr(name) if rec is None else ModelSource(**rec.model_dump()).describe()
        pinned = f"'{rec.package}=={rec.version}'" if rec and rec.package and rec.version else None
        raise ModelSourceError(
            f"checkpoint {path} was trained with model {trained}, which cannot be loaded "
            f"here: {exc}",
            f"pip install {pinned}" if pinned else "install the package that provides it",
        ) from None
    permit(found, trust, f"checkpoint {path}")
    _check_source(meta, found, path, trust)
    return found


def _weights(ckpt: dict[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    weights = ckpt.get("model")
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise CheckpointError(f"checkpoint {path}: model: not a mapping of names to tensors",
                              ALTERED)  # fmt: skip
    return weights


def _shapes(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in tensors.items()}


def inference_params(builder: Any, meta: InferenceMeta) -> dict[str, Any]:
    """The checkpoint's model_params with the model's ``INFERENCE_PARAMS`` (how it runs, not
    what it computes, e.g. tcn_ssm's scan kernel) in place of those it trained with."""
    params = dict(meta.model_params)
    given = getattr(builder, "INFERENCE_PARAMS", None)
    if isinstance(given, dict):
        params.update({k: v for k, v in given.items() if k in params})
    return params


def _build(meta: InferenceMeta, builder: Any, path: str | Path, weights: dict) -> nn.Module:
    """The model, first on the meta device: weights that do not fit its parameters refuse
    before anything is allocated (a model that cannot be built there is built directly)."""
    name, shape = meta.model_name, (meta.n_channels, meta.fs, inference_params(builder, meta))
    try:
        with torch.device("meta"):
            probe: nn.Module | None = construct(builder, name, *shape)
    except Exception:  # code that needs real tensors: built directly, checked below
        probe = None
    if probe is not None and _shapes(probe.state_dict()) != _shapes(weights):
        wanted, held = _shapes(probe.state_dict()), _shapes(weights)
        first = sorted(k for k in wanted.keys() | held.keys() if wanted.get(k) != held.get(k))[0]
        raise CheckpointError(
            f"checkpoint {path}: its weights do not fit model {name!r} with its model_params "
            f"({first[:80]}: {wanted.get(first)} in the model, {held.get(first)} in the file)",
            ALTERED,
        )
    try:
        model = construct(builder, name, *shape)
        model.load_state_dict(weights)
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}", ALTERED) from None
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path}: its weights do not fit the model ({_first_sentence(exc)})",
            ALTERED,
        ) from None
    stride = getattr(model, "output_stride", None)
    if stride != meta.output_stride:
        raise CheckpointError(f"checkpoint {path}: output_stride is {meta.output_stride}, "
                              f"the model's is {stride!r}", ALTERED)  # fmt: skip
    return model


def rebuild(
    ckpt: dict[str, Any], path: str | Path, *, trust: ModelTrust | None = None
) -> nn.Module:
    """The checkpoint's model with its weights, from the code it was trained with. Its
    metadata is validated; an import path is imported only as ``trust`` allows; a package
    that is missing, or installed at another or an unrecorded version, is refused (exit 3)
    unless ``trust.any_version``."""
    trust = trust or ModelTrust()
    meta = inference_meta(ckpt, path)
    weights = _weights(ckpt, path)
    found = _locate(meta, path, trust)
    try:
        builder = found.load()
    except NotAModel as exc:
        raise ModelSourceError(f"checkpoint {path}: {exc}", ALTERED) from None
    except ModelNotFound as exc:
        raise ModelSourceError(
            f"checkpoint {path}: its model code cannot be loaded here: {exc}",
            "install the package that provides it",
        ) from None
    return _build(meta, builder, path, weights)


def load_model(
    path: str | Path, device: str | torch.device = "cpu", *, trust: ModelTrust | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a checkpoint in eval mode on ``device``, and the checkpoint's metadata
    (without weights and training-only state). A missing or unreadable file, or one that is
    not a checkpoint, is a usage error naming it (exit 2): it is the CKPT the user passed;
    altered values, model code the user did not name (``trust``, see ``FLAG``), and model
    code missing or of another version here are refusals (exit 3)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        raise UsageError(exc.problem) from exc
    model = rebuild(ckpt, path, trust=trust)
    model.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k not in (*TRAINING_KEYS, "model")}
    return model, meta


__all__ = ["FLAG", "CheckpointError", "InferenceMeta", "ModelSourceError", "ModelSpec",
           "load_checkpoint", "load_model", "rebuild"]  # fmt: skip
