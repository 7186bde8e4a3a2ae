"""Writing a torch module as ONNX (legacy TorchScript-based exporter: the dynamo one cannot
export the GRU) or TorchScript, and running the written file back for the check."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ictal.io.atomic import atomic_write_with

OPSET = 17
DYNAMIC_AXES = {"eeg": {0: "batch", 2: "samples"}, "logits": {0: "batch", 1: "steps"}}
Logits = Callable[[np.ndarray], np.ndarray]


def write_onnx(model: nn.Module, example: torch.Tensor, target: Path) -> None:
    """ONNX with dynamic batch and time axes (``eeg`` -> ``logits``), written atomically."""

    def write(fh: object) -> None:
        with warnings.catch_warnings():  # tracer and deprecation notes, not problems
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), fh, dynamo=False, opset_version=OPSET,
                input_names=["eeg"], output_names=["logits"],
                dynamic_axes=DYNAMIC_AXES,
            )  # fmt: skip

    atomic_write_with(target, write)


def write_torchscript(model: nn.Module, example: torch.Tensor, target: Path) -> None:
    """A traced TorchScript module saved with ``torch.jit.save``, written atomically."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (example,), check_trace=False)
    atomic_write_with(target, lambda fh: torch.jit.save(traced, fh))


WRITERS = {"onnx": write_onnx, "torchscript": write_torchscript}


def torch_logits(model: nn.Module) -> Logits:
    """A module (or loaded TorchScript) as a logits function on numpy windows."""

    def logits(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return logits


def load_logits(fmt: str, path: Path) -> Logits:
    """The written file run back: onnxruntime for ONNX, ``torch.jit.load`` for TorchScript."""
    if fmt == "onnx":
        from ictal.export.runtime import logits_predict, onnx_session

        return logits_predict(onnx_session(path, threads=0))
    return torch_logits(torch.jit.load(str(path), map_location="cpu").eval())
