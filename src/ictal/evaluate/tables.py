"""The rows of an evaluation's result tables, shared by the console and the report: one row
per detector (one threshold) and the scorer that chose and scores it, never two detectors in
one column; and the per-patient rows. Cells are text made by evaluate/cells.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ictal.evaluate.cells import (
    SAMPLES,
    cell_ci,
    fa_text,
    latency_text,
    pct,
    sens_text,
    threshold_text,
)
from ictal.evaluate.corpora import KEY_SCORERS, SHORT
from ictal.events.operating_points import scorer_order
from ictal.events.scorers import LABELS

# Two-line headers: a header never makes its column wider than its numbers.
HEADERS = ("scorer", "budget\nFA/24h", "threshold", "sensitivity\n[95% CI]",
           "false alarms/24h\n[95% CI]", "precision", "onset latency\nmedian [IQR]")  # fmt: skip
CAPTION = (
    "One row per detector: the threshold chosen for a scorer's FA/24h budget on the points' "
    "split, scored by that scorer. FA: false-alarm events; FP-s: SzCORE samples count "
    "false-positive seconds, not events. 95% CI: envelope of exact and patient-bootstrap "
    "intervals. Latency: first detection minus annotated onset (negative kept), detected "
    "seizures only, median."
)


def budget_label(target: float) -> str:
    """An operating point's cell: '<= 10', the point chosen for at most 10 FA/24h."""
    return f"<= {target:g}"


@dataclass(frozen=True)
class ResultRow:
    """One detector scored by one scorer, as text cells; ``last`` ends its scorer's group."""

    scorer: str
    point: str
    threshold: str
    sensitivity: str
    false_alarms: str
    precision: str
    latency: str
    last: bool = False

    def cells(self) -> tuple[str, ...]:
        """The row's cells in HEADERS order."""
        return (self.scorer, self.point, self.threshold, self.sensitivity,
                self.false_alarms, self.precision, self.latency)  # fmt: skip


def _row(
    scorer: str, point: str, th: float | None, c: dict[str, Any] | None,
    ci: dict[str, Any] | None, lat: dict[str, Any] | None, samples: bool,
) -> ResultRow:  # fmt: skip
    """A row from counts (None: no threshold met the budget), their interval and latencies."""
    t = "none met it" if th is None else threshold_text(th)
    if c is None:
        return ResultRow(scorer, point, t, "-", "-", "-", "-")
    c = {**c, "ci95": ci}
    unit = {"unit": SAMPLES} if samples else {}
    return ResultRow(
        scorer, point, t,
        sens_text(c.get("sensitivity"), cell_ci(c, "sensitivity")),
        fa_text(c.get("fa_per_24h"), cell_ci(c, "fa_per_24h"), **unit),
        pct(c.get("precision")),
        "-" if samples else latency_text(lat),
    )  # fmt: skip


def result_rows(block: dict[str, Any]) -> list[ResultRow]:
    """Rows of a result block (scores.json, or one corpus's entry): per scorer, the default
    threshold then each budget loosest first; SzCORE samples at SzCORE's own points."""
    default = block.get("default") or {}
    dthr = (default.get("postprocess") or {}).get("threshold")
    dscores, dci = default.get("scores") or {}, default.get("ci95") or {}
    points = (block.get("operating_points") or {}).get("points") or {}
    rows: list[ResultRow] = []
    for name in scorer_order([*points, *(["szcore_samples"] if "szcore" in points else [])]):
        samples = name == "szcore_samples"
        per = points.get("szcore" if samples else name, [])
        label = LABELS.get(name, name)
        group = [_row(label, "default", dthr, dscores.get(name), dci.get(name),
                      default.get("latency_s"), samples)]  # fmt: skip
        for p in per:
            key = "szcore_samples" if samples else "counts"
            group.append(_row(label, budget_label(p["target_fa_per_24h"]), p["threshold"],
                              p.get(key), p.get(f"{key}_ci95" if samples else "ci95"),
                              p.get("latency_s"), samples))  # fmt: skip
        group = [group[0], *(ResultRow("", *r.cells()[1:]) for r in group[1:])]
        group[-1] = ResultRow(*group[-1].cells(), last=True)
        rows += group
    return rows


def patient_point(block: dict[str, Any]) -> float | None:
    """The FA/24h budget the per-patient rows show: the loosest one."""
    points = (block.get("operating_points") or {}).get("points") or {}
    targets = [p["target_fa_per_24h"] for per in points.values() for p in per]
    return max(targets) if targets else None


def patient_headers(block: dict[str, Any]) -> list[str]:
    """Headers of the per-patient table: size, then each key scorer at the loosest budget."""
    target, points = patient_point(block), (block.get("operating_points") or {}).get("points")
    heads = ["patient", "record-\nings", "hours", "seiz-\nures"]
    for name in KEY_SCORERS:
        th = next((p["threshold"] for p in (points or {}).get(name, [])
                   if p["target_fa_per_24h"] == target), None)  # fmt: skip
        t = "none" if th is None else threshold_text(th)
        heads.append(f"{SHORT.get(name, name)}\n<={target:g} FA/24h\nt={t}")
    return heads


def patient_rows(block: dict[str, Any]) -> list[tuple[str, ...]]:
    """A row per patient: recordings, hours, seizures, then sensitivity and FA/24h of each
    key scorer at the loosest budget ('-' where no threshold met it)."""
    target = patient_point(block)
    out = []
    for p in block.get("per_patient") or []:
        cells = [str(p["patient"]), str(p["n_recordings"]),
                 f"{p['total_duration_s'] / 3600:.2f}", str(p["n_reference_events"])]  # fmt: skip
        for name in KEY_SCORERS:
            c = next((r["counts"] for r in p["points"].get(name, [])
                      if r["target_fa_per_24h"] == target), None)  # fmt: skip
            cells.append("-" if c is None else
                         f"{pct(c['sensitivity'])}, {fa_text(c['fa_per_24h'])}")  # fmt: skip
        out.append(tuple(cells))
    return out
