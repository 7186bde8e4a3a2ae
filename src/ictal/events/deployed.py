"""Which threshold a model is used at: an operating point named ``SCORER@BUDGET`` (the
threshold tuned on dev for that scorer within that FA/24h budget) or a bare threshold.

The one place that decides it, for ``detect``, ``export`` and ``evaluate``'s hypothesis
exports: the default point and its fallback rule, the points exported, and the record of the
choice (``Point.doc``) that ``summary.json``, the export sidecar and ``scores.json`` carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ictal.config import DEFAULT_POINT, EXPORT_PATTERN, POINT_PATTERN
from ictal.errors import UsageError
from ictal.events.operating_points import (
    OperatingPoints,
    at_threshold,
    read_operating_points,
    scorer_order,
)
from ictal.events.postprocess import PostProcess
from ictal.ui import log


def _number(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


@dataclass(frozen=True)
class Point:
    """A threshold and, when it is a tuned operating point, its scorer, FA/24h budget and the
    sensitivity and FA/24h it had where it was tuned (``chosen_on``, normally dev)."""

    threshold: float
    scorer: str | None = None
    budget_fa24h: float | None = None
    dev_sensitivity: float | None = None
    dev_fa24h: float | None = None
    chosen_on: str | None = None

    @property
    def name(self) -> str:
        """``ovlp@10``, or ``threshold`` for a bare threshold."""
        return "threshold" if self.scorer is None else f"{self.scorer}@{self.budget_fa24h:g}"

    @property
    def label(self) -> str:
        """A folder name that says the point and its threshold: ``ovlp@10_t0.42``."""
        head = "" if self.scorer is None else f"{self.name}_"
        return f"{head}t{self.threshold:g}"

    def doc(self) -> dict[str, float | str | None]:
        """The record of the choice: scorer, budget, threshold, dev sensitivity and FA/24h."""
        return {
            "scorer": self.scorer,
            "budget_fa24h": self.budget_fa24h,
            "threshold": self.threshold,
            "dev_sensitivity": _number(self.dev_sensitivity),
            "dev_fa24h": _number(self.dev_fa24h),
        }

    def describe(self) -> str:
        """One line: ``ovlp@10: threshold 0.42 (dev: sensitivity 81.0 %, 9.6 FA/24h)``."""
        if self.scorer is None:
            return f"threshold {self.threshold:g} (no tuned operating point)"
        sens, fa = _number(self.dev_sensitivity), _number(self.dev_fa24h)
        where = self.chosen_on or "dev"
        tail = "n/a" if sens is None else f"sensitivity {100 * sens:.1f} %"
        tail += "" if fa is None else f", {fa:.1f} FA/24h"
        return f"{self.name}: threshold {self.threshold:g} ({where}: {tail})"


@dataclass(frozen=True)
class Wanted:
    """The operating point the user asked for: ``--operating-point``, ``--threshold``,
    ``--operating-points FILE`` (None each: the default, ``detect.operating_point``)."""

    point: str | None = None
    threshold: float | None = None
    file: Path | None = None


def bare_threshold(threshold: float, where: str = "--threshold") -> Point:
    """A threshold given instead of an operating point; outside [0, 1] is a usage error."""
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"{where} {threshold:g} is outside [0, 1]; give a probability")
    return Point(float(threshold))


def parse_point(text: str, where: str) -> tuple[str, float]:
    """``SCORER@BUDGET`` -> (scorer, budget in FA/24h); a usage error naming ``where``."""
    if not re.fullmatch(POINT_PATTERN, text.strip()):
        raise UsageError(f"{where} {text!r} is not SCORER@BUDGET; give e.g. {DEFAULT_POINT} "
                         "(OVLP's threshold tuned on dev for at most 10 FA/24h)")  # fmt: skip
    scorer, budget = text.strip().split("@")
    return scorer, float(budget)


def point_at(ops: OperatingPoints, scorer: str, budget: float) -> Point | None:
    """The tuned point of ``scorer`` for ``budget``; None when no threshold met it."""
    p = ops.points[scorer][budget]
    if p.threshold is None:
        return None
    return Point(p.threshold, scorer, budget, p.sensitivity, p.fa_per_24h, ops.split)


def listing(ops: OperatingPoints) -> str:
    """Every tuned point, ``ovlp@10 (t=0.42)`` or ``ovlp@1 (none met it)``, for error lines."""
    parts = []
    for scorer in scorer_order(ops.points):
        for budget, p in sorted(ops.points[scorer].items(), reverse=True):
            t = "none met it" if p.threshold is None else f"t={p.threshold:g}"
            parts.append(f"{scorer}@{budget:g} ({t})")
    return ", ".join(parts) or "none"


def exact_point(ops: OperatingPoints, text: str, where: str) -> Point:
    """The point ``text`` names, exactly; a usage error listing the points that exist when the
    scorer or budget was never tuned or no threshold met that budget."""
    scorer, budget = parse_point(text, where)
    if scorer not in ops.points:
        why = f"no scorer {scorer!r} was tuned"
    elif budget not in ops.points[scorer]:
        why = f"{scorer} was never tuned for {budget:g} FA/24h"
    elif (point := point_at(ops, scorer, budget)) is not None:
        return point
    else:
        why = f"no threshold kept {scorer} within {budget:g} FA/24h on {ops.split}"
    raise UsageError(f"{where} {text}: {why}; the points that exist: {listing(ops)}")


def default_point(ops: OperatingPoints, text: str, where: str) -> tuple[Point | None, str]:
    """The configured default point; when it has no threshold (budget not tuned, or nothing
    met it), the fallback rule: the same scorer's largest tuned budget below it that has a
    threshold (fewer false alarms), else its smallest budget above it. None when the scorer
    has no threshold at all (the caller says what it uses); the note says any fallback."""
    scorer, budget = parse_point(text, where)
    if scorer not in ops.points:
        raise UsageError(f"{where} {text}: no scorer {scorer!r} was tuned; the points that "
                         f"exist: {listing(ops)}")  # fmt: skip
    if budget in ops.points[scorer] and (point := point_at(ops, scorer, budget)):
        return point, ""
    budgets = sorted(ops.points[scorer])
    order = [b for b in reversed(budgets) if b < budget] + [b for b in budgets if b > budget]
    for b in order:
        if (point := point_at(ops, scorer, b)) is not None:
            return point, f"{where} {text} has no threshold here; using {point.name} instead"
    return None, f"{where} {text}: no {scorer} budget has a threshold ({listing(ops)})"


def check_export_specs(
    specs: Sequence[str], scorers: Iterable[str], budgets: Iterable[float], where: str
) -> None:
    """Refuse, before any work, an export point that names a scorer or budget not tuned."""
    scorers, budgets = scorer_order(scorers), sorted({float(b) for b in budgets}, reverse=True)
    have = f"scorers {', '.join(scorers)}; budgets {', '.join(f'{b:g}' for b in budgets)} FA/24h"
    for spec in specs:
        scorer, _, budget = spec.strip().partition("@")
        if not re.fullmatch(EXPORT_PATTERN, spec.strip()):
            raise UsageError(f"{where} {spec!r} is not SCORER or SCORER@BUDGET "
                             f"(e.g. ovlp or ovlp@10); tuned: {have}")  # fmt: skip
        if scorer not in scorers or (budget and float(budget) not in budgets):
            raise UsageError(f"{where} {spec}: that point is never tuned; tuned: {have}")


def export_points(
    ops: OperatingPoints, specs: Sequence[str], where: str
) -> tuple[list[Point], list[str]]:
    """The points hypotheses are exported at: ``SCORER`` gives each of its tuned budgets,
    ``SCORER@BUDGET`` one; loosest first, each once. Budgets without a threshold are skipped
    and said (second value)."""
    check_export_specs(specs, ops.points, {b for per in ops.points.values() for b in per}, where)
    points: list[Point] = []
    skipped: list[str] = []
    for spec in specs:
        scorer, _, budget = spec.strip().partition("@")
        budgets = [float(budget)] if budget else sorted(ops.points[scorer], reverse=True)
        for b in budgets:
            point = point_at(ops, scorer, b) if b in ops.points[scorer] else None
            if b not in ops.points[scorer]:
                skipped.append(f"{scorer}@{b:g}: {scorer} was not tuned for {b:g} FA/24h")
            elif point is None:
                skipped.append(f"{scorer}@{b:g}: no threshold met it on {ops.split}")
            elif point.label not in {p.label for p in points}:
                points.append(point)
    return points, skipped


def choose(ops: OperatingPoints, asked: str | None, default: str) -> tuple[Point | None, str]:
    """``--operating-point`` exactly when given, else the configured default
    (``detect.operating_point``) with its fallback (``default_point``); the note says one."""
    if asked is not None:
        return exact_point(ops, asked, "--operating-point"), ""
    return default_point(ops, default, "detect.operating_point")


def tuned_point(
    path: Path, asked: str | None, default: str
) -> tuple[PostProcess, str, Point] | None:
    """From the operating-points file ``path``: the post-processing at the point ``choose``
    picks, a line saying it and the file, and that point; None when the default's scorer has
    no threshold at all. A fallback, or nothing to use, is one warning."""
    ops = read_operating_points(path)
    point, note = choose(ops, asked, default)
    if note:
        log.warning(note)
    if point is None:
        return None
    return at_threshold(ops.postprocess, point.threshold), f"{point.describe()} ({path})", point


def same_point(point: Point, asked: str) -> bool:
    """Whether ``point`` is the one ``asked`` (``SCORER@BUDGET``) names."""
    scorer, budget = parse_point(asked, "--operating-point")
    return (point.scorer, point.budget_fa24h) == (scorer, budget)


@dataclass(frozen=True)
class ExportPlan:
    """Where ``evaluate`` writes hypotheses: each of ``points`` in ``hyp/<label>/``, the
    ``deployed`` point (detect's default, ``detect.operating_point``) always among them: it
    gives the events of the per-recording rows of scores.json; ``skipped`` says budgets
    without a threshold."""

    deployed: Point
    basis: str
    points: list[Point]
    skipped: list[str]


def check_plan(
    default: str, specs: Sequence[str], scorers: Iterable[str], budgets: Iterable[float]
) -> None:
    """Refuse, before inference, export points or a default scorer that will not be tuned."""
    scorers, budgets = list(scorers), list(budgets)
    check_export_specs(specs, scorers, budgets, "--export-point (evaluate.export_points)")
    scorer, _ = parse_point(default, "detect.operating_point")
    check_export_specs([scorer], scorers, budgets, "detect.operating_point")


def export_plan(
    ops: OperatingPoints, default: str, specs: Sequence[str], threshold: float
) -> ExportPlan:
    """The export points of ``specs``, then the deployed point (``default`` with its fallback,
    ``default_point``; else the bare ``threshold`` of the config) unless among them."""
    deployed, note = default_point(ops, default, "detect.operating_point")
    if deployed is None:
        deployed, basis = Point(threshold), f"evaluate.threshold={threshold:g} ({note})"
    else:
        basis = deployed.describe() + (f"; {note}" if note else "")
    points, skipped = export_points(ops, specs, "--export-point (evaluate.export_points)")
    if deployed.label not in {p.label for p in points}:
        points.append(deployed)
    return ExportPlan(deployed, basis, points, skipped)
