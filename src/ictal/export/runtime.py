"""An exported ONNX model run with onnxruntime as a ``Predict`` (``ictal detect --model``).

Imports no torch: a machine that only detects needs ``pip install 'ictal[onnx]'``, not torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ictal.errors import UsageError
from ictal.events.deployed import Point
from ictal.events.postprocess import PostProcess
from ictal.export.sidecar import EXPORT_AGAIN, SIDECAR, Sidecar, SidecarError, read_sidecar
from ictal.io.paths import contained
from ictal.io.untrusted import UnreadableInput, regular_file
from ictal.stitch import Predict


@dataclass(frozen=True)
class Exported:
    """An export directory loaded for inference."""

    path: Path
    model_file: Path
    sidecar: dict[str, Any]
    meta: dict[str, Any]  # what detect reads from a checkpoint: config subset, window, stride
    postprocess: PostProcess
    predict: Predict
    point: Point  # the operating point the sidecar holds


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session of ``path``; a usage error when onnxruntime is missing."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError(
            "running an ONNX model needs onnxruntime: pip install 'ictal[onnx]'"
        ) from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise UsageError(f"{path} is not a loadable ONNX model ({exc}); export again") from exc


def logits_predict(session: Any) -> Predict:
    """A session as a logits function: windows ``(B, C, W)`` -> logits ``(B, W // stride)``."""
    name = session.get_inputs()[0].name

    def logits(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    return logits


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe float32 logistic function."""
    x = np.asarray(x, dtype=np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


def _trial(logits: Predict, sidecar: Sidecar, path: Path) -> None:
    """The model maps one window of the sidecar's shape to its number of output steps, or
    the sidecar does not describe it (a refusal now, not a failure per recording)."""
    n_channels, window = sidecar.model.input.shape[1], sidecar.windowing.window_samples
    steps = window // sidecar.output.stride
    shape: object
    try:
        shape = tuple(np.shape(logits(np.zeros((1, n_channels, window), np.float32))))
    except Exception as exc:  # onnxruntime raises its own exception types
        text = str(exc).strip()
        shape = f"an error ({text.splitlines()[0][:120] if text else type(exc).__name__})"
    if shape != (1, steps):
        raise SidecarError(
            f"{path / SIDECAR} does not describe {sidecar.model.file}: a window (1, "
            f"{n_channels}, {window}) gives {shape}, not (1, {steps}) logits "
            f"(output.stride {sidecar.output.stride})",
            EXPORT_AGAIN,
        )


def load_exported(model_dir: str | Path, threads: int = 1) -> Exported:
    """An export directory (``ictal export --format onnx``) ready to run, its sidecar
    validated and checked against the model on one window; a clear error for anything else."""
    path = Path(model_dir)
    if not path.is_dir():
        raise UsageError(f"--model {path}: not a directory; give the --out of `ictal export`")
    doc, sidecar = read_sidecar(path)
    fmt = sidecar.model.format
    if fmt != "onnx":
        raise UsageError(
            f"--model {path} holds a {fmt} export; detect runs ONNX exports "
            "(`ictal export CKPT --format onnx`) or the checkpoint itself (`ictal detect CKPT`)"
        )
    model_file = contained(path, sidecar.model.file, f"{path / SIDECAR} model.file")  # no link out
    try:
        regular_file(model_file, "the exported model")
    except FileNotFoundError:
        raise UsageError(
            f"--model {path}: {model_file.name} is missing; export the model again"
        ) from None
    except UnreadableInput as exc:
        raise UsageError(f"--model {path}: {exc}; export the model again") from None
    logits = logits_predict(onnx_session(model_file, threads))
    _trial(logits, sidecar, path)
    op = sidecar.operating_point
    return Exported(path, model_file, doc, sidecar.meta(), op.postprocess(),
                    lambda x: sigmoid(logits(x)), op.point())  # fmt: skip
