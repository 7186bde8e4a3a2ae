"""An exported ONNX model run with onnxruntime as a ``Predict`` (``ictal detect --model``).

Imports no torch: a machine that only detects needs ``pip install 'ictal[onnx]'``, not torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ictal.errors import UsageError
from ictal.events.postprocess import PostProcess
from ictal.export.sidecar import SIDECAR, read_sidecar, sidecar_meta, sidecar_postprocess
from ictal.io.paths import check_name
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


def load_exported(model_dir: str | Path, threads: int = 1) -> Exported:
    """An export directory (``ictal export --format onnx``) ready to run; a clear usage error
    for anything else."""
    path = Path(model_dir)
    if not path.is_dir():
        raise UsageError(f"--model {path}: not a directory; give the --out of `ictal export`")
    doc = read_sidecar(path)
    try:  # the sidecar is untrusted input: its shape is checked, its file stays in the folder
        fmt = doc["model"]["format"]
        name = check_name(doc["model"]["file"], f"{path / SIDECAR} model.file")
        meta, postprocess = sidecar_meta(doc), sidecar_postprocess(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"{path / SIDECAR} is malformed ({type(exc).__name__}: {exc}); export the model again"
        ) from None
    if fmt != "onnx":
        raise UsageError(
            f"--model {path} holds a {fmt} export; detect runs ONNX exports "
            "(`ictal export CKPT --format onnx`) or the checkpoint itself (`ictal detect CKPT`)"
        )
    model_file = path / name
    if not model_file.is_file():
        raise UsageError(f"--model {path}: {model_file.name} is missing; export the model again")
    logits = logits_predict(onnx_session(model_file, threads))
    return Exported(path, model_file, doc, meta, postprocess, lambda x: sigmoid(logits(x)))
