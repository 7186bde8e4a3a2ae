"""braindecode models by name (``model.name: braindecode/EEGNetv4``): a braindecode class,
which classifies one window, becomes an Ictal detector by sliding it over the input, one
logit per step of ``step_s`` seconds from that step and ``context_s`` seconds either side.

braindecode is installed code (the ``ictal[braindecode]`` extra), like an entry point: a name
is checked to be a plain class name before anything is imported, and only the installed
``braindecode.models`` is ever imported for it."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import inspect
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ictal.models.metadata import check_windowing
from ictal.models.source import Found, ModelNotFound, ModelSource, NotAModel

PREFIX = "braindecode/"
PACKAGE = "braindecode"
INSTALL = "pip install 'ictal[braindecode]'"
SHAPE = ("n_chans", "n_outputs", "n_times")  # what a usable class must take
# What ``_given`` sets from the data, and braindecode 0.8's older spellings of it: never
# model.params.
GIVEN = frozenset(
    {*SHAPE, "sfreq", "input_window_seconds", "chs_info", "add_log_softmax", "in_chans",
     "n_classes", "input_window_samples", "n_channels", "fs"}
)  # fmt: skip
# Sized to the window Ictal gives, unless model.params says otherwise (braindecode 0.8's
# defaults of some classes are fixed sizes that give several outputs, or fail).
AUTO = ("final_conv_length", "final_fc_length", "final_pool_length")
MAX_SECONDS = 600.0  # step_s and context_s: a checkpoint's values are untrusted
MAX_SIZE = 1 << 16  # any integer in model.params (filters, kernel lengths): bounds memory
_CLASS = re.compile(r"^[A-Z][A-Za-z0-9_]{0,63}$")


def installed_version() -> str | None:
    """braindecode's installed version, from its metadata (nothing imported); None without it."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def class_name(name: str) -> str:
    """The class of ``braindecode/<Class>``, refused unless it is a plain public class name."""
    cls = name.removeprefix(PREFIX)
    if not _CLASS.match(cls):
        raise NotAModel(
            f"model.name={name[:80]!r}: after {PREFIX!r} comes a braindecode class name, "
            "e.g. braindecode/EEGNetv4"
        )
    return cls


def _models() -> Any:
    """The installed ``braindecode.models`` module, or a refusal naming the install."""
    if installed_version() is None:
        raise ModelNotFound(f"braindecode is not installed: {INSTALL}")
    try:
        return importlib.import_module("braindecode.models")
    except (Exception, SystemExit) as exc:
        raise ModelNotFound(
            f"braindecode cannot be imported ({type(exc).__name__}: {str(exc)[:120]}): {INSTALL}"
        ) from None


def _usable(obj: object) -> bool:
    """A braindecode ``nn.Module`` class that takes n_chans, n_outputs and n_times."""
    if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
        return False
    if obj.__module__.split(".", 1)[0] != PACKAGE:
        return False
    try:
        takes = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    return all(p in takes for p in SHAPE)


def load_class(name: str) -> type[nn.Module]:
    """The braindecode class ``braindecode/<Class>`` names, checked to be a usable model."""
    cls = class_name(name)
    obj = getattr(_models(), cls, None)
    if obj is None:
        raise ModelNotFound(
            f"model.name={name!r}: braindecode {installed_version()} has no model {cls!r}; "
            f"its models: {', '.join(braindecode_names())}"
        )
    if not _usable(obj):
        raise NotAModel(
            f"model.name={name!r} is not a braindecode model: an nn.Module class taking "
            f"{', '.join(SHAPE)}"
        )
    return obj


def braindecode_names() -> list[str]:
    """``braindecode/<Class>`` of every usable class installed, sorted; empty without it."""
    if installed_version() is None:
        return []
    try:
        models = _models()
    except ModelNotFound:
        return []
    usable = (n for n in dir(models) if _CLASS.match(n) and _usable(getattr(models, n)))
    return sorted(PREFIX + n for n in usable)


def find(name: str) -> Found:
    """Where ``braindecode/<Class>`` stands for code, without importing it: the installed
    braindecode at its version (refused, naming the install, when it is missing)."""
    cls = class_name(name)
    version = installed_version()
    if version is None:
        raise ModelNotFound(f"model.name={name!r}: braindecode is not installed: {INSTALL}")
    source = ModelSource("braindecode", f"braindecode.models:{cls}", PACKAGE, version)
    return Found(source, lambda: builder(name))


def _samples(seconds: Any, fs: float, what: str, least: int) -> int:
    """``seconds`` at ``fs`` Hz as a whole number of samples, at least ``least``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"{what} must be a number of seconds, got {seconds!r}")
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"{what}={seconds} must be within 0 and {MAX_SECONDS:g} s")
    samples = seconds * fs
    if abs(samples - round(samples)) > 1e-6 or round(samples) < least:
        raise ValueError(
            f"{what}={seconds} s is {samples:g} samples at {fs:g} Hz: it must be a whole "
            f"number{' of at least 1' if least else ''}"
        )
    return round(samples)


def _check_sizes(params: dict[str, Any]) -> None:
    """Every integer in ``params`` within ``MAX_SIZE`` (a layer's size from a checkpoint)."""
    for key, value in params.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_SIZE:
                raise ValueError(f"{key}={item} is larger than {MAX_SIZE} allowed for a size")


def _given(
    takes: Mapping[str, inspect.Parameter],
    n_chans: int,
    fs: float,
    n_times: int,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """What Ictal gives a braindecode class of those it ``takes``: the window's shape with one
    output, every signal property it can ask for (braindecode's raise when unset, which
    breaks ``torch.jit.trace``; the channels get placeholder names, Ictal's montage is not the
    class's business), no log-softmax, and final layers sized to the window."""
    seconds = n_times / fs
    if int(seconds * fs) != n_times:  # braindecode checks n_times == int(seconds * sfreq)
        seconds = math.nextafter(seconds, math.inf)
    offered = {"n_chans": n_chans, "n_outputs": 1, "n_times": n_times, "sfreq": fs,
               "input_window_seconds": seconds, "add_log_softmax": False,
               "chs_info": [{"ch_name": f"ch{i}"} for i in range(n_chans)]}  # fmt: skip
    given = {k: v for k, v in offered.items() if k in takes}
    given.update({k: "auto" for k in AUTO if k in takes and k not in params})
    return given


class BraindecodeWindows(nn.Module):
    """A braindecode window classifier slid over ``(batch, channels, samples)``: step ``t``
    is classified from its own ``output_stride`` samples and ``context`` samples either side
    (the input's ends padded by reflection, or repetition when too short), giving logits
    ``(batch, samples // output_stride)``."""

    DESCRIPTION = "a braindecode window classifier slid over the input, one logit per step"

    def __init__(self, model: nn.Module, stride: int, context: int, source: str) -> None:
        super().__init__()
        self.model = model
        self.output_stride = stride
        self.context = context
        self.n_times = stride + 2 * context
        self.receptive_field = self.n_times  # input samples each output step sees, exactly
        self.source = source  # e.g. "braindecode 0.8.1"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, samples = x.shape
        steps = samples // self.output_stride
        x = x[..., : steps * self.output_stride]
        if self.context:
            mode = "reflect" if x.shape[-1] > self.context else "replicate"
            x = F.pad(x, (self.context, self.context), mode=mode)
        # step t's window starts at t * stride; gathered by index, not Tensor.unfold, which
        # the ONNX exporter cannot export with a dynamic time axis
        starts = torch.arange(steps, device=x.device) * self.output_stride
        index = starts[:, None] + torch.arange(self.n_times, device=x.device)[None, :]
        windows = x[:, :, index]  # (B, C, T, n_times)
        windows = windows.transpose(1, 2).reshape(-1, channels, self.n_times)
        out = self.model(windows)  # (B*T, 1), or (B*T, 1, k) of a dense model: averaged
        return out.reshape(windows.shape[0], -1).mean(1).reshape(batch, steps)


def builder(name: str) -> Callable[..., nn.Module]:
    """The factory of ``braindecode/<Class>``: it takes ``n_channels``, ``fs``, ``step_s``,
    ``context_s`` and the class's own parameters (its signature says so, for ``construct``
    to refuse any other)."""
    cls = load_class(name)
    source = f"{PACKAGE} {installed_version()}"
    own = inspect.signature(cls).parameters

    def build(
        n_channels: int, fs: float, step_s: float = 1.0, context_s: float = 2.0, **params: Any
    ) -> nn.Module:
        stride = _samples(step_s, fs, "step_s", 1)
        context = _samples(context_s, fs, "context_s", 0)
        check_windowing(n_channels, stride + 2 * context, stride)  # a window's bounds
        _check_sizes(params)
        given = _given(own, n_channels, fs, stride + 2 * context, params)
        try:
            model = cls(**given, **params)
        except Exception as exc:  # any failure of braindecode's code: the params do not fit
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            failed = f"{type(exc).__name__}: {first}"
            raise ValueError(f"braindecode's {cls.__name__}: {failed}") from exc
        return BraindecodeWindows(model, stride, context, source)

    shown = [
        p.replace(kind=p.KEYWORD_ONLY)
        for p in own.values()
        if p.name not in GIVEN and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    fixed = list(inspect.signature(build).parameters.values())[:4]
    build.__signature__ = inspect.Signature([*fixed, *shown])  # type: ignore[attr-defined]
    build.__name__ = cls.__name__
    build.__doc__ = inspect.getdoc(cls)  # ``ictal models`` describes it by its first line
    return build
