"""The model's line of the diagnosis: for a model whose speed depends on an optional kernel
(``tcn_ssm``'s selective scan), which path training will take on this machine and why.
Cheap: nothing is built, only the decision the model itself makes is asked."""

from __future__ import annotations

from ictal.config import Config
from ictal.doctor import Check

FIX = "set model.params.kernel=auto (the fused kernel when it loads, else the reference)"


def model(cfg: Config) -> list[Check]:
    """A "model" line for ``tcn_ssm`` (no line for other models)."""
    if cfg.model.name != "tcn_ssm":
        return []
    import torch

    from ictal.models.selective_scan import scan_path

    kernel = cfg.model.params.get("kernel", "auto")
    wanted = cfg.train.device
    device = ("cuda" if torch.cuda.is_available() else "cpu") if wanted == "auto" else wanted
    path, why = scan_path(kernel, device)
    if path == "unusable":
        fix = f"{FIX}, or install mamba-ssm" if kernel == "fused" else FIX
        return [Check("model", "fail", f"tcn_ssm: {why}", fix)]
    detail = f"tcn_ssm: {path} selective scan on {device} ({why})"
    if path == "reference" and device == "cuda" and kernel == "auto":
        return [Check("model", "warn", detail, "install mamba-ssm for the fused CUDA kernel")]
    return [Check("model", "ok", detail)]
