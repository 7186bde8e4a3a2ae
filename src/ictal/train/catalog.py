"""The model catalog behind ``ictal models``: every model Ictal can build here, each built
once at the config's data shape to say what it is (parameters, output rate, receptive field)
rather than what its documentation claims."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ictal.config import Config
from ictal.data.windows import window_samples
from ictal.models.registry import ModelSource, available, construct, find, permit
from ictal.models.trust import ModelTrust
from ictal.signal.montage import montage_channels


@dataclass(frozen=True)
class ModelInfo:
    """One model as built at the config's shape; ``error`` says why it could not be built."""

    name: str
    source: str
    description: str
    parameters: int | None = None
    output_stride: int | None = None
    output_hz: float | None = None
    receptive_field_s: float | None = None
    whole_window: bool = False  # every input sample of the window reaches the middle output
    window_s: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def description(builder: object) -> str:
    """A model's one-line description: its ``DESCRIPTION``, else its docstring's first line."""
    text = getattr(builder, "DESCRIPTION", None)
    if not isinstance(text, str) or not text.strip():
        text = (inspect.getdoc(builder) or "").strip().splitlines()[:1]
        text = text[0] if text else ""
    return " ".join(text.split())[:160]


def _source(source: ModelSource) -> str:
    if source.kind == "builtin":
        return "ictal"
    if source.package:
        return f"{source.package} {source.version or ''}".strip()
    return f"{source.kind}: {source.target}"


def receptive_field(model: nn.Module, n_channels: int, samples: int) -> tuple[int, bool]:
    """Input samples that reach the middle output step of a window of ``samples`` (measured:
    the span of non-zero gradient of that output on a random input, in eval mode), and whether
    that span is the whole window (recurrence or attention)."""
    stride = int(model.output_stride)  # type: ignore[arg-type]
    samples -= samples % stride
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, n_channels, samples, generator=gen).requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        out = model(x)
        out[0, out.shape[-1] // 2].backward()
    finally:
        model.train(was_training)
    assert x.grad is not None
    reach = torch.nonzero(x.grad.abs().sum(dim=(0, 1))).flatten()
    if reach.numel() == 0:
        return 0, False
    first, last = int(reach[0]), int(reach[-1])
    return last - first + 1, first == 0 and last == samples - 1


def describe(
    name: str, n_channels: int, fs: float, window: int, params: Mapping[str, Any]
) -> ModelInfo:
    """Build model ``name`` with ``params`` at this shape and measure it (an import path only
    when it is the config's own ``model.name``, as for training)."""
    source = "-"
    try:
        found = find(name)
        source = _source(found.source)
        permit(found, ModelTrust(named=name), "model.name")
        builder = found.load()
        text = description(builder)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a library's advice on its own defaults: not here
            torch.manual_seed(0)
            model = construct(builder, name, n_channels, fs, params)
        stride = int(model.output_stride)  # type: ignore[arg-type]
        declared = getattr(model, "receptive_field", None)  # exact by construction
        if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
            span, whole = min(declared, window), declared >= window
        else:
            span, whole = receptive_field(model, n_channels, window)
    except Exception as exc:  # one model that cannot be built is its row, not the end
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ModelInfo(name, source, "", error=first[:200])
    return ModelInfo(
        name,
        source,
        text,
        parameters=sum(p.numel() for p in model.parameters()),
        output_stride=stride,
        output_hz=fs / stride,
        receptive_field_s=span / fs,
        whole_window=whole,
        window_s=window / fs,
    )


def names() -> list[str]:
    """Every model name buildable here: registered, entry points, and braindecode's models
    when it is installed."""
    extra: list[str] = []
    try:
        from ictal.models.braindecode import braindecode_names
    except ImportError:
        pass
    else:
        extra = braindecode_names()
    return [*available(), *sorted(set(extra) - set(available()))]


def catalog(cfg: Config, only: list[str] | None = None) -> list[ModelInfo]:
    """Every model (or those ``only`` names) at the config's shape (its montage's channels,
    its rate, one training window); the config's own model with its ``model.params``, the
    others at their defaults."""
    fs = cfg.signal.fs
    n_channels = len(montage_channels(cfg.signal.montage))
    window, _ = window_samples(cfg.windows.length_s, cfg.windows.stride_s, fs)
    listed = names()
    if cfg.model.name not in listed:
        listed.append(cfg.model.name)  # the config's own import path
    if only:
        listed = list(dict.fromkeys(only))  # a name not known is its row, saying so
    return [
        describe(n, n_channels, fs, window, cfg.model.params if n == cfg.model.name else {})
        for n in listed
    ]
