"""Validation on dev windows: loss (plain and pos-weighted) and per-sample AUROC, with
its own heartbeat progress and bounded memory."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.utils.data
from torch import nn

from ictal.auroc import HistogramAuroc
from ictal.config import Config
from ictal.data.dataset import model_input
from ictal.train.distributed import Ranks
from ictal.train.loss import seizure_bce, step_targets
from ictal.train.monitor import Recorder, StopRequest


@dataclass
class Validation:
    """Validation loss (mean unweighted BCE per output step, selects the best checkpoint),
    the same loss with the training pos_weight (comparable to the training loss), AUROC."""

    loss: float
    loss_weighted: float
    auroc: float
    windows: int
    seconds: float


def validate(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    stride: int,
    device: torch.device,
    cfg: Config,
    stop: StopRequest,
    rec: Recorder,
    pos_weight: torch.Tensor | None = None,
    ranks: Ranks | None = None,
) -> Validation | None:
    """One pass over the dev windows in bounded memory; None when a stop was requested.
    With several ranks each validates its share and the sums are added together, so every
    rank gets the same result."""
    ranks = ranks or Ranks()
    t0 = time.perf_counter()
    model.eval()
    auroc = HistogramAuroc(bins=1000)
    loss_sum, weighted_sum, n, windows = 0.0, 0.0, 0, 0
    amp = device.type == "cuda" and cfg.train.amp
    with torch.random.fork_rng(devices=[]):
        batches = iter(loader)
    try:
        with torch.no_grad():
            for i, (x, y) in enumerate(batches):
                if stop.requested and not ranks.active:  # ranks agree on a stop below
                    return None
                x, y = model_input(x, device), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    logits = model(x).float()
                target = step_targets(y, stride, logits.shape[1])
                loss_sum += float(seizure_bce(logits, target, reduction="sum"))
                if pos_weight is not None:
                    weighted_sum += float(seizure_bce(logits, target, pos_weight, "sum"))
                n += target.numel()
                windows += len(x)
                probs = torch.sigmoid(logits).repeat_interleave(stride, dim=1)
                auroc.update(y[:, : probs.shape[1]].cpu().numpy(), probs.cpu().numpy())
                rec.live.update(val_batches=i + 1)
    except RuntimeError:
        if stop.requested and not ranks.active:
            return None
        raise
    finally:
        model.train()
    stopped, loss_sum, weighted_sum, n, windows = ranks.agree(
        [float(stop.requested), loss_sum, weighted_sum, n, windows]
    )
    if stopped:
        return None
    auroc.pos = ranks.agree_counts(auroc.pos)
    auroc.neg = ranks.agree_counts(auroc.neg)
    weighted = weighted_sum / max(n, 1) if pos_weight is not None else float("nan")
    elapsed = time.perf_counter() - t0
    return Validation(loss_sum / max(n, 1), weighted, auroc.value(), int(windows), elapsed)
