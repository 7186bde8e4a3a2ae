"""Whole-recording inference with a torch module: the windowing and overlap-add stitching of
``ictal.stitch`` (shared with exported models) around the module's sigmoid outputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ictal.stitch import Predict, stitch


def torch_predict(model: nn.Module, device: str | torch.device = "cpu") -> Predict:
    """A module as a ``Predict``: windows -> sigmoid probabilities, in eval and inference mode."""
    model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(x).to(device)).float()
            return torch.sigmoid(logits).cpu().numpy()

    return predict


def infer_recording(
    model: nn.Module,
    array: np.ndarray,
    window: int,
    stride: int,
    hop: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    on_batch: Callable[[], None] | None = None,
    pad: int = 0,
) -> np.ndarray:
    """Probabilities (float32) per output step for a whole ``(n_samples, C)`` recording
    (``ictal.stitch.stitch`` with ``model`` on ``device``, ends mirrored by ``pad``)."""
    predict = torch_predict(model, device)
    return stitch(predict, array, window, stride, hop, batch_size, on_batch, pad)
