"""The console summary of an evaluation: one row per detector (threshold) and scorer, with
95 % intervals and onset latency, readable in five seconds; a mixture's corpora side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from ictal.evaluate.corpora import cell_lines, column_label, side_by_side, threshold_of
from ictal.evaluate.evaluation import EvaluationResult
from ictal.evaluate.tables import CAPTION, HEADERS, result_rows


def _pooled(s: dict[str, Any]) -> str:
    """How the table's numbers are pooled (SzCORE's default column may be per subject)."""
    szcore = s["default"]["scores"].get("szcore") or {}
    if szcore.get("pooling") == "subject":
        return "pooled over files; SzCORE at the default threshold: mean over subjects"
    return "pooled over files (NEDC-style; SzCORE counts pooled too)"


def summary_table(result: EvaluationResult) -> Table:
    """One row per detector (the default threshold, then each scorer's budgets): threshold,
    sensitivity and false alarms per 24 h with 95 % intervals, precision, onset latency."""
    s = result.scores
    opsd = s["operating_points"]
    hours = s["total_duration_s"] / 3600.0
    how = (
        f"chosen on {opsd['chosen_on']}"
        if opsd["mode"] == "chosen"
        else f"frozen, chosen on {opsd['chosen_on']} ({Path(opsd['file']).name})"
    )
    if opsd.get("chosen_on_corpora"):
        how += f" over {', '.join(opsd['chosen_on_corpora'])}"
    auroc = "n/a" if s["auroc"] is None else f"{s['auroc']:.3f}"
    split = s["split"]
    if s.get("corpus_selection"):
        split += f" ({', '.join(s['corpus_selection'])})"
    n = len(s.get("per_patient") or [])
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"{split}: {s['n_recordings']} recordings, {n} patient{'s' * (n != 1)}, "
        f"{hours:.1f} h, {s['n_reference_events']} seizures; AUROC {auroc}; operating points {how}",
        caption=f"{_pooled(s)}. {CAPTION}",
    )
    for k, head in enumerate(HEADERS):
        table.add_column(head, justify="left" if k < 2 else "right")
    for row in result_rows(s):
        table.add_row(*row.cells(), end_section=row.last)
    return table


def corpus_table(result: EvaluationResult) -> Table | None:
    """A mixture's corpora side by side: a row per corpus (then the pooled whole), its size and
    AUROC, sensitivity and FA/24h of the key scorers at each operating point; None for a
    single corpus."""
    columns, rows = side_by_side(result.scores)
    if not rows:
        return None
    with_auroc = any(r.auroc is not None for r in rows)
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"{result.scores['split']} by corpus: sensitivity and FA/24h [95% CI] at the "
        "operating points (<=N: the point chosen for N FA/24h)",
        caption="each corpus pooled over its own files; the same thresholds for every corpus",
    )
    table.add_column("corpus", no_wrap=True)
    table.add_column("size", no_wrap=True)
    if with_auroc:
        table.add_column("AUROC")
    for scorer, target in columns:
        table.add_column(column_label(scorer, target, threshold_of(result.scores, scorer, target)))
    for r in rows:
        size = f"{r.n_recordings} rec, {r.hours:.1f} h\n{r.n_seizures} seizures"
        auroc = ["n/a" if r.auroc is None else f"{r.auroc:.3f}"] if with_auroc else []
        table.add_row(r.name, size, *auroc, *("\n".join(cell_lines(c)) for c in r.cells))
    return table
