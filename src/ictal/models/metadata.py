"""What inference needs of a trained model besides its weights (channels, rate, window,
output stride, preprocessing), typed and bounded. A checkpoint's and an export sidecar's
values are untrusted: each file's reader validates them with these types before anything is
built or allocated, and a refusal names the file and the field. Torch-free: the ONNX runtime
reads a sidecar without torch."""

from __future__ import annotations

import json
import reprlib
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)

from ictal.config import SignalConfig

MAX_CHANNELS = 1024  # model inputs (the canonical montage has 19)
MAX_FS = 4096.0  # Hz: signal.fs's own bound
MAX_WINDOW = 1 << 22  # samples in one window: 68 min at 1024 Hz, 4.5 h at 256 Hz
MAX_WINDOW_VALUES = 1 << 25  # channels x samples of one window: 128 MiB of float32
MAX_PARAMS_BYTES = 16 << 10  # model parameters, as JSON
RESERVED_PARAMS = ("n_channels", "fs")  # the data's shape, given by Ictal, never a parameter

Channels = Annotated[int, Field(strict=True, ge=1, le=MAX_CHANNELS)]
Rate = Annotated[float, Field(strict=True, gt=0.0, le=MAX_FS, allow_inf_nan=False)]
Samples = Annotated[int, Field(strict=True, ge=1, le=MAX_WINDOW)]
ModelName = Annotated[str, Field(strict=True, min_length=1, max_length=300,
                                 pattern=r"^(braindecode/)?[A-Za-z0-9_.:\-]+$")]  # fmt: skip
ShortText = Annotated[str, Field(strict=True, max_length=300)]
MissingChannels = Literal["error", "interpolate"]


class Part(BaseModel):
    """A part of an untrusted file: its own keys typed, keys it does not use ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class SourceRecord(Part):
    """Where a checkpoint's model code came from (``ModelSource.as_dict()``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["builtin", "import", "entry_point", "braindecode"]
    target: ShortText
    package: ShortText | None = None
    version: ShortText | None = None


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    reserved = sorted(set(params) & set(RESERVED_PARAMS))
    if reserved:
        raise ValueError(f"{', '.join(reserved)} is the data's shape, not a parameter")
    if len(json.dumps(params)) > MAX_PARAMS_BYTES:
        raise ValueError(f"more than {MAX_PARAMS_BYTES >> 10} KiB of parameters")
    return params


def _bounded_signal(signal: SignalConfig) -> SignalConfig:
    if len(signal.channels) > MAX_CHANNELS:
        raise ValueError(f"{len(signal.channels)} channels, more than {MAX_CHANNELS}")
    return signal


# model.params: keyword arguments of the factory, plain JSON values under identifier keys.
Params = Annotated[
    dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], JsonValue],
    AfterValidator(_plain_params),
]
# A preprocessing section (the config's ``signal``) within the channel bound.
Preprocessing = Annotated[SignalConfig, AfterValidator(_bounded_signal)]


def trained_edges(meta: dict[str, Any]) -> str:
    """The ``windows.edges`` a checkpoint was trained with: its inference mirrors the ends
    alike. A checkpoint from before the setting existed says none (it never saw mirrors)."""
    trained = meta.get("config")
    windows = trained.get("windows") if isinstance(trained, dict) else None
    edges = windows.get("edges", "none") if isinstance(windows, dict) else "none"
    if edges not in ("reflect", "none"):
        raise ValueError(f"the checkpoint's windows.edges must be reflect or none, got {edges!r}")
    return str(edges)


def bounded(name: str, value: object, high: int, low: int = 1) -> int:
    """A model's size parameter checked against its bound (sizes come from untrusted
    checkpoints too): an integer from ``low`` to ``high``, else ValueError naming it."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high} (an integer), got {value!r}")
    return value


def check_windowing(n_channels: int, window: int, stride: int) -> None:
    """The bounds that tie channels, window and output stride together: a ValueError."""
    if stride > window:
        raise ValueError(f"output stride {stride} is longer than the window of {window} samples")
    if n_channels * window > MAX_WINDOW_VALUES:
        raise ValueError(
            f"{n_channels} channels x {window} samples is more than the {MAX_WINDOW_VALUES:,} "
            "values Ictal allows in one window"
        )


def check_rate(fs: float, signal: SignalConfig) -> None:
    """A model's rate is its preprocessing's output rate."""
    if fs != signal.fs:
        raise ValueError(f"the model's rate {fs} Hz is not its preprocessing's {signal.fs} Hz")


class Identity(Part):
    """Which model a checkpoint holds: its name, parameters and where its code came from."""

    model_name: ModelName
    model_params: Params
    model_source: SourceRecord | None = None


class Shape(Part):
    """What a checkpoint's model is fed: channels, rate, window and output stride."""

    n_channels: Channels
    fs: Rate
    output_stride: Samples
    window: Samples

    @model_validator(mode="after")
    def _fits(self) -> Shape:
        check_windowing(self.n_channels, self.window, self.output_stride)
        return self


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple = 2, 3, 3, 3
_SHORT.maxstring = _SHORT.maxother = 36


def _shown(value: object) -> str:
    """A found value, short (never a whole document, never a 5,000-digit number)."""
    try:
        return _SHORT.repr(value)
    except Exception:  # a repr that fails (an integer over Python's digit limit)
        return f"a {type(value).__name__}"


def invalid(exc: ValidationError) -> str:
    """A validation error as one line: the first failing field's dotted path, what is wrong
    and (shortened) what was found there."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    if not where:  # a rule that ties fields together: its message names them
        return msg
    if first["type"] == "missing":
        return f"{where}: missing"
    return f"{where}: {msg} (found {_shown(first.get('input'))})"
