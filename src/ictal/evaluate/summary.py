"""The console summary of an evaluation: one row per scorer, one column per operating point,
readable in five seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from ictal.evaluate.evaluation import EvaluationResult
from ictal.events.scorers import LABELS


def _cell(c: dict[str, Any] | None, threshold: float | None, samples: bool = False) -> str:
    """One table cell: sensitivity, FA/24h (events only), precision, threshold."""
    if c is None or threshold is None:
        return "-"

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    first = pct(c["sensitivity"]) if samples else f"{pct(c['sensitivity'])} @ {_fa(c)}"
    return f"{first}\nP {pct(c['precision'])}  t={threshold:.3g}"


def _fa(c: dict[str, Any]) -> str:
    v = c["fa_per_24h"]
    return "n/a" if v is None else f"{v:.1f} FA"


def summary_table(result: EvaluationResult) -> Table:
    """Per scorer: sensitivity, FA/24h and precision at the default threshold and each target."""
    s = result.scores
    opsd = s["operating_points"]
    hours = s["total_duration_s"] / 3600.0
    how = (
        f"chosen on {opsd['chosen_on']}"
        if opsd["mode"] == "chosen"
        else f"frozen, chosen on {opsd['chosen_on']} ({Path(opsd['file']).name})"
    )
    auroc = "n/a" if s["auroc"] is None else f"{s['auroc']:.3f}"
    table = Table(
        title=f"{s['split']}: {s['n_recordings']} recordings, {hours:.1f} h, "
        f"{s['n_reference_events']} seizures; AUROC {auroc}",
        caption=f"pooled over files (NEDC-style; SzCORE counts pooled too); operating points {how}",
    )
    table.add_column("scorer")
    thr = s["default"]["postprocess"]["threshold"]
    table.add_column(f"default t={thr:g}")
    targets = [row["target_fa_per_24h"] for row in next(iter(opsd["points"].values()))]
    for t in targets:
        table.add_column(f"<= {t:g} FA/24h")
    for name in [*opsd["points"], "szcore_samples"]:
        samples = name == "szcore_samples"
        base = "szcore" if samples else name
        cells = [_cell(s["default"]["scores"].get(name), thr, samples)]
        for row in opsd["points"].get(base, []):
            c = row["szcore_samples"] if samples else row["counts"]
            cells.append(_cell(c, row["threshold"], samples))
        table.add_row(LABELS.get(name, name), *cells)
    return table
