"""The check of an export: real windows from the cache of the checkpoint's config, and the
largest difference between the exported model's logits and torch's on them."""

from __future__ import annotations

import numpy as np

from ictal.cache.locate import locate
from ictal.cache.manifest import open_cache
from ictal.config import Config
from ictal.errors import PreflightError
from ictal.export.formats import Logits
from ictal.stitch import windows

TOLERANCE = 1e-4  # absolute, on logits
SPLITS = ("dev", "eval", "train")  # where check windows come from, in order of preference


def check_windows(cfg: Config, n_channels: int, window: int, recordings: int = 3) -> np.ndarray:
    """Up to two windows (start, middle) of a few recordings of the config's cache, as
    ``(B, C, window)`` float32; refuses (exit 3) when there is no cache to check against."""
    located = locate(cfg)
    if not located.committed or located.path is None:
        raise PreflightError(
            f"no cache for the checkpoint's config under {cfg.cache.root}: an export is checked "
            "on real windows from it",
            "run `ictal build` with the run's config (or pass -c/--set pointing at the cache)",
        )
    view = open_cache(located.path)
    if len(view.channels) != n_channels:
        raise PreflightError(
            f"the cache {view.path} has {len(view.channels)} channels, the model {n_channels}",
            "export with the config the model was trained with (the run's frozen config)",
        )
    rows = [r for s in SPLITS for r in view.split(s)][:recordings]
    if not rows:
        raise PreflightError(f"the cache {view.path} holds no recording", "run `ictal build`")
    batches = []
    for r in rows:
        array = np.load(view.array_path(r), mmap_mode="r", allow_pickle=False)
        n = int(array.shape[0])
        batches.append(windows(array, sorted({0, max(0, n // 2 - window // 2)}), window))
    return np.concatenate(batches)


def max_difference(reference: Logits, exported: Logits, batches: list[np.ndarray]) -> float:
    """Largest absolute logit difference over ``batches`` (inf when shapes differ or NaN)."""
    worst = 0.0
    for x in batches:
        a, b = reference(x), exported(x)
        if a.shape != b.shape:
            return float("inf")
        diff = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        worst = max(worst, diff if np.isfinite(diff) else float("inf"))
    return worst
