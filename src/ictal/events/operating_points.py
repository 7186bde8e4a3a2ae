"""Operating points: sweep thresholds on dev, freeze the chosen ones to a file, apply to eval.

Records stream through one at a time; only pooled counts per (scorer, threshold) are kept, so
memory is bounded by one recording's trace. Eval only ever meets thresholds read from dev.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ictal.errors import UsageError
from ictal.events.counts import ZERO, EventCounts
from ictal.events.postprocess import Event, PostProcess, events_from_probs
from ictal.events.scorers import get_scorer
from ictal.events.szcore import DEFAULT as DEFAULT_SZCORE
from ictal.events.szcore import SzcoreParams
from ictal.io.atomic import atomic_write_json
from ictal.io.untrusted import read_json

DEFAULT_TARGETS: tuple[float, ...] = (10.0, 5.0, 2.5, 1.0)
DEFAULT_SCORERS: tuple[str, ...] = ("ovlp", "taes", "szcore")
FORMAT_VERSION = 1


def default_thresholds() -> tuple[float, ...]:
    """0.02 .. 0.98 in steps of 0.02, then a finer top end where low FA rates live."""
    coarse = [round(0.02 * k, 4) for k in range(1, 50)]
    fine = [0.985, 0.99, 0.9925, 0.995, 0.9975, 0.999]
    return tuple(coarse + fine)


@dataclass(frozen=True)
class RecordingTrace:
    """One recording's probability trace with its reference events and duration."""

    recording_id: str
    probs: np.ndarray
    fs_out: float
    ref_events: Sequence[Event]
    duration_s: float


@dataclass(frozen=True)
class OperatingCurve:
    """Pooled counts per scorer at each threshold, for one post-processing setting."""

    postprocess: PostProcess
    thresholds: tuple[float, ...]
    counts: dict[str, tuple[EventCounts, ...]]
    n_recordings: int


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold chosen for one FA/24h target; ``threshold`` None if none meets it."""

    scorer: str
    target_fa_per_24h: float
    threshold: float | None
    counts: EventCounts | None  # pooled counts at ``threshold`` on the split it was chosen on

    @property
    def sensitivity(self) -> float:
        """Pooled sensitivity where it was chosen; nan without a threshold."""
        return self.counts.sensitivity if self.counts else math.nan

    @property
    def fa_per_24h(self) -> float:
        """Pooled FA/24h where it was chosen; nan without a threshold."""
        return self.counts.fa_per_24h if self.counts else math.nan


@dataclass(frozen=True)
class OperatingPoints:
    """Frozen operating points: scorer -> FA/24h target -> point, plus the post-processing."""

    postprocess: PostProcess
    points: dict[str, dict[float, OperatingPoint]]
    split: str = "dev"
    meta: dict[str, Any] = field(default_factory=dict)

    def threshold(self, scorer: str, target_fa_per_24h: float) -> float | None:
        """The frozen threshold for a scorer and FA/24h target (None if none met it)."""
        return self.points[scorer][float(target_fa_per_24h)].threshold


@dataclass(frozen=True)
class AppliedPoint:
    """An operating point scored on another split at its frozen threshold."""

    scorer: str
    target_fa_per_24h: float
    threshold: float | None
    counts: EventCounts | None


def at_threshold(pp: PostProcess, threshold: float) -> PostProcess:
    """``pp`` at another threshold; a hysteresis low keeps its distance below the threshold."""
    if pp.hysteresis_low is None:
        return replace(pp, threshold=threshold)
    gap = pp.threshold - pp.hysteresis_low
    return replace(pp, threshold=threshold, hysteresis_low=max(0.0, threshold - gap))


def _score_records(
    records: Iterable[RecordingTrace],
    pp: PostProcess,
    thresholds: Sequence[float],
    scorers: Sequence[str],
    szcore: SzcoreParams = DEFAULT_SZCORE,
) -> tuple[dict[str, list[EventCounts]], int]:
    """Pooled counts per scorer and threshold, one record in memory at a time."""
    fns = {name: get_scorer(name, szcore) for name in scorers}
    settings = [at_threshold(pp, t) for t in thresholds]
    totals = {name: [ZERO] * len(thresholds) for name in scorers}
    n = 0
    for rec in records:
        for k, setting in enumerate(settings):
            hyp = events_from_probs(rec.probs, rec.fs_out, setting)
            for name, fn in fns.items():
                totals[name][k] = totals[name][k] + fn(rec.ref_events, hyp, rec.duration_s)
        n += 1
    return totals, n


def sweep(
    records: Iterable[RecordingTrace],
    pp: PostProcess,
    thresholds: Sequence[float] | None = None,
    scorers: Sequence[str] = DEFAULT_SCORERS,
    szcore: SzcoreParams = DEFAULT_SZCORE,
) -> OperatingCurve:
    """Pooled (sensitivity, FA/24h) per scorer over a threshold grid, streaming the records;
    SzCORE's with the ``szcore`` parameters."""
    grid = tuple(sorted({float(t) for t in (thresholds or default_thresholds())}))
    totals, n = _score_records(records, pp, grid, scorers, szcore)
    return OperatingCurve(
        postprocess=pp,
        thresholds=grid,
        counts={name: tuple(c) for name, c in totals.items()},
        n_recordings=n,
    )


def choose_operating_points(
    curve: OperatingCurve,
    targets: Sequence[float] = DEFAULT_TARGETS,
    split: str = "dev",
) -> OperatingPoints:
    """Per scorer and FA/24h target: the threshold with the highest sensitivity whose FA/24h is
    at most the target; among those the fewest false alarms; a plateau of thresholds that tie
    on both gives its middle one (the widest margin either way for data it was not chosen on,
    where the top of the plateau would sit on the edge of missing seizures); None when no
    threshold qualifies."""
    points: dict[str, dict[float, OperatingPoint]] = {}
    for name, counts in curve.counts.items():
        points[name] = {}
        for target in targets:
            # a nan FA rate fails ``<=``; a nan sensitivity (no references) ranks last
            ok = [
                (t, c)
                for t, c in zip(curve.thresholds, counts, strict=True)
                if c.fa_per_24h <= target
            ]
            chosen: tuple[float | None, EventCounts | None] = (None, None)
            if ok:
                top = max(_rank(c) for _, c in ok)
                best = [tc for tc in ok if _rank(tc[1]) >= top - 1e-12]
                fewest = min(c.false_alarms for _, c in best)
                plateau = sorted(
                    (tc for tc in best if tc[1].false_alarms <= fewest + 1e-12),
                    key=lambda tc: tc[0],
                )
                chosen = plateau[(len(plateau) - 1) // 2]
            points[name][float(target)] = OperatingPoint(
                scorer=name, target_fa_per_24h=float(target), threshold=chosen[0], counts=chosen[1]
            )
    meta = {"n_recordings": curve.n_recordings, "thresholds": list(curve.thresholds)}
    return OperatingPoints(postprocess=curve.postprocess, points=points, split=split, meta=meta)


def _rank(c: EventCounts) -> float:
    """Sensitivity for ranking thresholds; nan (no reference events) ranks lowest."""
    return -math.inf if math.isnan(c.sensitivity) else c.sensitivity


def apply_operating_points(
    records: Iterable[RecordingTrace], ops: OperatingPoints, szcore: SzcoreParams = DEFAULT_SZCORE
) -> dict[str, dict[float, AppliedPoint]]:
    """Score ``records`` at the frozen thresholds of ``ops``; nothing is re-chosen."""
    wanted = sorted(
        {
            p.threshold
            for per in ops.points.values()
            for p in per.values()
            if p.threshold is not None
        }
    )
    totals, _ = _score_records(records, ops.postprocess, wanted, tuple(ops.points), szcore)
    index = {t: k for k, t in enumerate(wanted)}
    return {
        name: {
            target: AppliedPoint(
                scorer=name,
                target_fa_per_24h=target,
                threshold=p.threshold,
                counts=None if p.threshold is None else totals[name][index[p.threshold]],
            )
            for target, p in per.items()
        }
        for name, per in ops.points.items()
    }


def scorer_order(names: Iterable[str]) -> list[str]:
    """Scorers in the canonical order (ovlp, taes, szcore), unknown ones after, by name."""
    known = list(DEFAULT_SCORERS)
    return sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))


def _counts_to_json(c: EventCounts | None) -> dict[str, float] | None:
    return None if c is None else asdict(c)


def _counts_from_json(d: dict[str, Any] | None) -> EventCounts | None:
    return None if d is None else EventCounts(**d)


def save_operating_points(path: str | os.PathLike[str], ops: OperatingPoints) -> Path:
    """Write the frozen operating points as JSON (atomically)."""
    doc = {
        "format_version": FORMAT_VERSION,
        "split": ops.split,
        "postprocess": asdict(ops.postprocess),
        "meta": ops.meta,
        "points": {
            name: [
                {
                    "target_fa_per_24h": p.target_fa_per_24h,
                    "threshold": p.threshold,
                    "counts": _counts_to_json(p.counts),
                }
                for p in per.values()
            ]
            for name, per in ops.points.items()
        },
    }
    return atomic_write_json(path, doc)


def load_operating_points(path: str | os.PathLike[str]) -> OperatingPoints:
    """Read operating points written by ``save_operating_points``."""
    doc = read_json(path, "operating points file", 16 << 20)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a JSON object")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported operating-points format {doc.get('format_version')}")
    points = {
        name: {
            float(p["target_fa_per_24h"]): OperatingPoint(
                scorer=name,
                target_fa_per_24h=float(p["target_fa_per_24h"]),
                threshold=None if p["threshold"] is None else float(p["threshold"]),
                counts=_counts_from_json(p["counts"]),
            )
            for p in per
        }
        for name, per in doc["points"].items()
    }
    return OperatingPoints(
        postprocess=PostProcess(**doc["postprocess"]),
        points=points,
        split=doc["split"],
        meta=doc.get("meta", {}),
    )


def read_operating_points(path: Path) -> OperatingPoints:
    """Frozen operating points from a file a user named, or a usage error naming that file."""
    try:
        return load_operating_points(path)
    except FileNotFoundError:
        raise UsageError(f"operating points file {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"operating points file {path} is not usable: {exc}") from exc
