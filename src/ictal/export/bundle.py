"""``ictal export``: write the model, check it against torch on real windows, then write the
sidecar (last: a directory with a sidecar holds a checked model; a failed check leaves none)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ictal import __version__
from ictal.errors import IctalError, UsageError
from ictal.events.deployed import Point
from ictal.export.check import TOLERANCE, check_windows, max_difference
from ictal.export.formats import WRITERS, load_logits, torch_logits
from ictal.export.sidecar import MODEL_FILES, SIDECAR, build_sidecar
from ictal.io.atomic import atomic_write_json
from ictal.io.digest import file_sha256
from ictal.models.checkpoint import load_model
from ictal.models.trust import ModelTrust
from ictal.runs.checkpoints import checkpoint_config, deployed_postprocess
from ictal.stitch import default_hop


class ExportMismatch(IctalError):
    """The exported model's outputs differ from torch's: exit 1, the model file removed."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how it was checked."""

    model: Path
    sidecar: Path
    max_diff: float
    windows: int
    tuned: bool
    operating_point: str
    point: Point


def _fresh_out(out: Path) -> None:
    """``--out`` must be a new or empty directory: an export never mixes with other files."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a new or empty directory")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty; give a new or empty directory")


def export_model(
    checkpoint: Path,
    fmt: str,
    out: Path,
    *,
    config: Path | None = None,
    sets: list[str] | None = None,
    tolerance: float = TOLERANCE,
    trust: ModelTrust | None = None,
    point: str | None = None,
    threshold: float | None = None,
    points_file: Path | None = None,
) -> ExportResult:
    """Export ``checkpoint`` as ``fmt`` into ``out`` with its sidecar, checked on real windows;
    ``trust``: the model code the user accepts (default: registered models, entry points);
    ``point``, ``threshold``, ``points_file``: the operating point (``deployed_postprocess``)."""
    if fmt not in MODEL_FILES:
        raise UsageError(f"--format {fmt}: use onnx or torchscript")
    checkpoint, out = Path(checkpoint), Path(out)
    _fresh_out(out)
    model, meta = load_model(checkpoint, "cpu", trust=trust)
    cfg = checkpoint_config(checkpoint, config, sets or [], embedded=meta.get("config"))
    window, stride = int(meta["window"]), int(meta["output_stride"])
    x = check_windows(cfg, int(meta["n_channels"]), window)  # refuses before writing anything
    batches = [x, np.concatenate([x[:1], x[-1:]], axis=2)]  # also a longer time axis
    instead = f"the sidecar holds evaluate.threshold={cfg.evaluate.threshold}, not tuned"
    deployed = deployed_postprocess(cfg, checkpoint, instead, point=point, threshold=threshold,
                                    points_file=points_file)  # fmt: skip
    pp, why, tuned = deployed.postprocess, deployed.source, deployed.tuned
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    target = out / MODEL_FILES[fmt]
    try:
        WRITERS[fmt](model, torch.from_numpy(x[:2]), target)
        diff = max_difference(torch_logits(model), load_logits(fmt, target), batches)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if not diff <= tolerance:
        target.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise ExportMismatch(
            f"the {fmt} export differs from torch by {diff:.3g} on logits (tolerance "
            f"{tolerance:g}) on {len(x)} windows of the cache; nothing was written"
        )
    check = {"compared": "logits", "max_abs_diff": diff, "tolerance": tolerance,
             "windows": len(x), "long_input_samples": int(batches[1].shape[2])}  # fmt: skip
    identity = {"path": str(checkpoint.resolve()), "sha256": file_sha256(checkpoint),
                "run_id": meta.get("run_id"), "cache_key": meta.get("cache_key"),
                "ictal_version": __version__}  # fmt: skip
    doc = build_sidecar(
        meta, fmt=fmt, hop=default_hop(window, stride), pp=pp, tuned=tuned, pp_source=why,
        point=deployed.point, check=check, checkpoint=identity,
    )  # fmt: skip
    sidecar = atomic_write_json(out / SIDECAR, doc)
    return ExportResult(target, sidecar, diff, len(x), tuned, why, deployed.point)
