"""Preflight: the checks train and evaluate run before any expensive work (docs/design.md,
invariant 1). A refusal names the exact command that fixes it; nothing is preprocessed."""

from __future__ import annotations

from dataclasses import dataclass

from ictal.cache import layout
from ictal.cache.locate import Located, locate, same_semantic_other_source
from ictal.cache.manifest import CacheView, open_cache
from ictal.cache.verify import verify_l0
from ictal.config import Config
from ictal.errors import PreflightError
from ictal.ui import log, pairs_text


@dataclass
class Preflight:
    """A cache that passed preflight, and the facts printed about it."""

    view: CacheView
    located: Located
    rows: list[tuple[str, str]]


def _refuse_missing(cfg: Config, located: Located, fix: str) -> None:
    root = layout.CacheRoot.of(cfg)
    remote = cfg.cache.remote
    if located.key is None:
        raise PreflightError(
            f"no cache under {root.path} matches this config, and the corpus {cfg.corpus.root} is "
            "not reachable to build one",
            f"run `ictal stage` (fetches the cache published at {remote})"
            if remote
            else f"make corpus.root reachable, then run `{fix}`; or set cache.remote to where "
            "the cache was published and run `ictal stage`",
        )
    building = root.builds_of(located.key)
    if building:
        done = len(list((building[-1].path / layout.RECORDS).glob("*.json")))
        raise PreflightError(
            f"the cache for this config is not finished: {done} of {located.n_source} "
            f"recordings are built in {building[-1].path}",
            f"run `{fix}` (it resumes where it stopped)",
        )
    stale = same_semantic_other_source(cfg, located)
    if stale:
        raise PreflightError(
            f"the corpus changed since the cache {stale[-1]} was built (files added, removed or "
            f"modified); there is no cache for the current corpus under {root.path}",
            f"run `{fix}` (the old cache stays until `ictal gc`)",
        )
    raise PreflightError(
        f"no cache for this config under {root.path}",
        f"run `ictal stage` if it is published at {remote}, else `{fix}`"
        if remote
        else f"run `{fix}`",
    )


def windows_per_class(cfg: Config, view: CacheView, split: str) -> dict[str, int]:
    """Training windows per class of one split, from lengths and intervals only."""
    from ictal.data.windows import index_recordings

    w = cfg.windows
    index = index_recordings(
        view.split(split), view.fs, w.length_s, w.stride_s, w.full_threshold, w.edges
    )
    return index.counts()


def preflight(cfg: Config, *, split: str = "train", fix: str = "ictal build") -> Preflight:
    """L0, completeness, seizures present in `split`, failures within budget; or refuse."""
    located = locate(cfg)
    if not located.committed or located.path is None:
        _refuse_missing(cfg, located, fix)
    assert located.path is not None
    if located.note:
        log.warning(located.note)
    problems = verify_l0(located.path, cfg, located.key)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more; `ictal verify` lists them)" if problems[1:] else ""
        raise PreflightError(f"cache {located.path} failed verification: {first.path}: "
                             f"{first.what}{more}", first.fix)  # fmt: skip
    view = open_cache(located.path)
    man = view.manifest
    if located.corpus_reachable and man["source"]["recordings"] != located.n_source:
        raise PreflightError(
            f"cache {located.path} planned {man['source']['recordings']} recordings, the corpus "
            f"has {located.n_source}",
            f"run `{fix}`",
        )
    split_totals = man["per_split"].get(split, {})
    if not split_totals.get("recordings"):
        raise PreflightError(
            f"cache {located.path} has no recordings in the {split} split",
            f"check corpus.splits and the corpus layout (`ictal census`), then `{fix}`",
        )
    if split == "train" and not split_totals.get("seizure_events"):
        raise PreflightError(
            f"cache {located.path} has no seizures in the {split} split "
            f"({split_totals.get('recordings')} recordings, labels.source="
            f"{cfg.labels.source}): a detector cannot learn from it",
            "check the annotation files with `ictal census` (label source and vocabulary), "
            f"then `{fix}`",
        )
    planned = man["totals"]["planned"]
    failed = man["totals"]["failed"]
    if planned and failed / planned > cfg.cache.max_failed_fraction:
        raise PreflightError(
            f"{failed} of {planned} recordings failed to build ({failed / planned:.1%}), more "
            f"than cache.max_failed_fraction={cfg.cache.max_failed_fraction}",
            "see the failures with `ictal verify`; fix the files or raise the budget with "
            "--set cache.max_failed_fraction=...",
        )
    counts = windows_per_class(cfg, view, split)
    rows = [
        ("cache", str(located.path)),
        ("recordings", f"{man['totals']['recordings']} ({failed} failed)"),
        ("hours", f"{man['totals']['hours']:.1f} h of EEG"),
        (f"{split} windows", pairs_text(counts)),
        ("size on disk", f"{man['totals']['bytes'] / 1e9:.2f} GB"),
    ]
    return Preflight(view, located, rows)
