"""Training data of one run: the train window index through the balanced sampler, and dev
windows (stride = window) for validation, with loaders built from the config."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ictal.cache.manifest import CacheView
from ictal.config import Config, ConfigError
from ictal.data.dataset import WindowDataset
from ictal.data.loader import make_loader
from ictal.data.sampler import BalancedSampler
from ictal.data.windows import CLASS_NAMES, WindowIndex, index_recordings, window_samples
from ictal.ui import log, pairs_text


@dataclass
class TrainData:
    """Window indexes, sampler and loaders of one run."""

    index: WindowIndex
    sampler: BalancedSampler
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader | None
    window: int
    stride: int
    stride_out: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    workers: int
    backend: str
    corpora: tuple[str, ...] = ()  # corpus id -> name when the sampler weighs corpora


def window_index(cfg: Config, recs: list[dict[str, Any]], fs: float, stride: int) -> WindowIndex:
    """Window index of some recordings from their lengths and seizure intervals only."""
    w = cfg.windows
    return index_recordings(recs, fs, w.length_s, stride / fs, w.full_threshold, w.edges)


def window_dataset(
    view: CacheView, recs: list[dict[str, Any]], index: WindowIndex
) -> WindowDataset:
    """Dataset of the indexed windows in the cache's dtype (``model_input`` makes float32)."""
    return WindowDataset(
        [view.array_path(r) for r in recs],
        index,
        [np.asarray(r["seizures"], dtype=np.int64).reshape(-1, 2) for r in recs],
        index.window,
        np.dtype(view.manifest["dtype"]),
    )


def recording_corpora(recs: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    """Sorted corpus names of some recordings and each one's position in that list; no names
    for a single-corpus cache (its rows carry no ``corpus``)."""
    if not any("corpus" in r for r in recs):
        return [], np.zeros(len(recs), dtype=np.int64)
    labels = [str(r.get("corpus", "(unnamed)")) for r in recs]
    names = sorted(set(labels))
    position = {name: k for k, name in enumerate(names)}
    return names, np.array([position[x] for x in labels], dtype=np.int64)


def corpus_weighting(
    cfg: Config, index: WindowIndex, recs: list[dict[str, Any]]
) -> tuple[list[str], np.ndarray, list[float]] | None:
    """Corpus names, per-window corpus ids and per-corpus weights for the sampler, or None
    when ``sampler.corpus_weights`` is empty (the unweighted draw). Unnamed corpora weigh 1;
    a name that is not a corpus of the train split is a config error (a typo would otherwise
    silently weigh nothing)."""
    weights = cfg.sampler.corpus_weights
    if not weights:
        return None
    names, rec_corpus = recording_corpora(recs)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        present = (
            f"the train split's corpora are {', '.join(names)}"
            if names
            else "the cache is a single corpus (no mixture), so there is nothing to weigh"
        )
        what = "is not a corpus" if len(unknown) == 1 else "are not corpora"
        raise ConfigError(
            f"sampler.corpus_weights names {', '.join(map(repr, unknown))}, which {what} of "
            f"the train split: {present}; use those names or remove the entry"
        )
    return names, rec_corpus[index.rec], [float(weights.get(n, 1.0)) for n in names]


def check_window_fits(cfg: Config, recs: list[dict[str, Any]], fs: float) -> None:
    """A window longer than every train recording is a config error, said before the model
    is built (its trial batch would be one such window)."""
    longest = max((int(r["n_samples"]) for r in recs), default=0)
    window, _ = window_samples(cfg.windows.length_s, cfg.windows.stride_s, fs)
    if window > longest:
        raise ConfigError(
            f"windows.length_s={cfg.windows.length_s:g} is longer than every recording of the "
            f"train split (the longest is {longest / fs:.0f} s); lower windows.length_s"
        )


def make_sampler(
    cfg: Config,
    index: WindowIndex,
    recs: list[dict[str, Any]],
    fs: float,
    rank: int = 0,
    world: int = 1,
) -> BalancedSampler:
    """The balanced sampler of the train windows, or a config error naming the setting that
    makes it impossible (windows longer than every recording, ratios or corpus weights that
    draw nothing or no seizure samples, a corpus weight for a corpus not in the split)."""
    check_window_fits(cfg, recs, fs)
    ratios = cfg.sampler
    named = (
        f"sampler.partial={ratios.partial:g}, full={ratios.full:g}, "
        f"background={ratios.background:g}"
    )
    corpus: np.ndarray | None = None
    weights: list[float] | None = None
    weighting = corpus_weighting(cfg, index, recs)
    if weighting is not None:
        names, corpus, weights = weighting
        named += f", corpus_weights={dict(zip(names, weights, strict=True))}"
    try:
        sampler = BalancedSampler(
            index,
            partial=ratios.partial,
            full=ratios.full,
            background=ratios.background,
            seed=cfg.train.seed,
            rank=rank,
            world_size=world,
            corpus=corpus,
            corpus_weights=weights,
        )
    except ValueError as exc:
        raise ConfigError(f"{named}: no training draw is possible ({exc})") from exc
    if sampler.expected_positive_fraction(0) <= 0.0:
        fix = "sampler.partial or sampler.full"
        if weighting is not None:
            fix += " (or the corpus_weights of corpora with seizures)"
        raise ConfigError(f"{named} draws no seizure samples: raise {fix}")
    return sampler


def make_train_data(
    cfg: Config,
    view: CacheView,
    device: torch.device,
    model_stride: int,
    *,
    validation: bool = True,
    rank: int = 0,
    world: int = 1,
) -> TrainData:
    """Train windows through the balanced sampler; dev windows (stride = window) to validate.

    With several ranks, each takes a disjoint share of every epoch's draw and of the dev
    windows, and ``loader.batch_size`` is the global batch (each rank loads its part), so
    the ranks together train on the windows one process would, step for step.
    """
    fs = view.fs
    window, stride = window_samples(cfg.windows.length_s, cfg.windows.stride_s, fs)
    train_recs = view.split("train")
    index = window_index(cfg, train_recs, fs, stride)
    sampler = make_sampler(cfg, index, train_recs, fs, rank, world)
    lc = cfg.loader
    if lc.batch_size % world:
        raise ConfigError(
            f"loader.batch_size={lc.batch_size} is the global batch of {world} ranks: make it "
            f"a multiple of {world}"
        )
    batch = lc.batch_size // world
    loader_args = {
        "batch_size": batch,
        "num_workers": lc.num_workers,  # None: the backend's default for this machine
        "backend": lc.backend,
        "prefetch_factor": lc.prefetch_factor,
        "persistent_workers": lc.persistent_workers,
        "pin_memory": device.type == "cuda",
        "timeout_s": lc.timeout_s,
    }
    train_loader = make_loader(window_dataset(view, train_recs, index), sampler, **loader_args)
    val_loader = None
    dev_recs = view.split("dev")
    if validation:
        val_index = window_index(cfg, dev_recs, fs, window) if dev_recs else None
        if val_index is None or len(val_index) == 0:
            log.warning("no dev windows (no dev recordings or all shorter than a window): "
                        "validation, early stopping and best.pt are skipped")  # fmt: skip
        else:
            val_set = window_dataset(view, dev_recs, val_index)
            shard = list(range(rank, len(val_set), world))  # this rank's dev windows
            val_loader = make_loader(val_set, shard, **loader_args)
    steps = math.ceil(len(sampler) / batch)
    if cfg.train.steps_per_epoch is not None:
        steps = min(steps, cfg.train.steps_per_epoch)
    return TrainData(
        index=index,
        sampler=sampler,
        train_loader=train_loader,
        val_loader=val_loader,
        window=window,
        stride=stride,
        stride_out=model_stride,
        batch_size=batch,
        steps_per_epoch=steps,
        total_steps=steps * cfg.train.epochs,
        workers=train_loader.num_workers,
        backend=lc.backend,
        corpora=tuple(recording_corpora(train_recs)[0]),
    )


def describe_corpora(sampler: BalancedSampler, corpora: tuple[str, ...], epoch: int = 0) -> str:
    """The draw of ``epoch`` per corpus with its weight, share and classes (empty without
    corpus weights), so the log shows what the weights did to a mixture."""
    if sampler.corpus_weights is None:
        return ""
    counts = sampler.corpus_class_counts(epoch)
    total = max(int(counts.sum()), 1)
    parts = []
    for name, weight, row in zip(corpora, sampler.corpus_weights, counts, strict=True):
        classes = ", ".join(f"{c} {int(n)}" for c, n in zip(CLASS_NAMES, row, strict=True))
        parts.append(
            f"{name} (weight {weight:g}) {int(row.sum())} = {row.sum() / total:.0%} ({classes})"
        )
    return f"draw of epoch {epoch + 1} per corpus: " + "; ".join(parts)


def describe(data: TrainData) -> str:
    """One log line about the windows, the draw (per corpus when weighted) and the steps of
    an epoch."""
    index = data.index
    line = (
        f"windows of {data.window} samples at stride {data.stride}: train "
        f"({pairs_text(index.counts())}; {index.n_short} recordings shorter than a window); "
        f"{len(data.sampler)} drawn per epoch, {data.steps_per_epoch} steps of "
        f"{data.batch_size}; loader: {data.workers} {data.backend}; "
        f"validation {'on' if data.val_loader is not None else 'off'}"
    )
    corpora = describe_corpora(data.sampler, data.corpora)
    return f"{line}; {corpora}" if corpora else line
