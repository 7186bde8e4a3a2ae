"""The console summary of an evaluation: one row per scorer, one column per operating point,
readable in five seconds; for a mixture cache, its corpora side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from ictal.evaluate.corpora import cell_lines, column_label, side_by_side
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


def _pooled(s: dict[str, Any]) -> str:
    """How the table's numbers are pooled (SzCORE's default column may be per subject)."""
    szcore = s["default"]["scores"].get("szcore") or {}
    if szcore.get("pooling") == "subject":
        return "pooled over files; SzCORE at the default threshold: mean over subjects"
    return "pooled over files (NEDC-style; SzCORE counts pooled too)"


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
    if opsd.get("chosen_on_corpora"):
        how += f" over {', '.join(opsd['chosen_on_corpora'])}"
    auroc = "n/a" if s["auroc"] is None else f"{s['auroc']:.3f}"
    split = s["split"]
    if s.get("corpus_selection"):
        split += f" ({', '.join(s['corpus_selection'])})"
    table = Table(
        title=f"{split}: {s['n_recordings']} recordings, {hours:.1f} h, "
        f"{s['n_reference_events']} seizures; AUROC {auroc}",
        caption=f"{_pooled(s)}; operating points {how}",
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


def corpus_table(result: EvaluationResult) -> Table | None:
    """A mixture's corpora side by side: a row per corpus (then the pooled whole), its size and
    AUROC, sensitivity and FA/24h of the key scorers at each operating point; None for a
    single corpus."""
    columns, rows = side_by_side(result.scores)
    if not rows:
        return None
    with_auroc = any(r.auroc is not None for r in rows)
    table = Table(
        title=f"{result.scores['split']} by corpus: sensitivity and FA/24h at the operating "
        "points (<=N: the point chosen for N FA/24h)",
        caption="each corpus pooled over its own files; the same thresholds for every corpus",
    )
    table.add_column("corpus", no_wrap=True)
    table.add_column("size", no_wrap=True)
    if with_auroc:
        table.add_column("AUROC")
    for scorer, target in columns:
        table.add_column(column_label(scorer, target))
    for r in rows:
        size = f"{r.n_recordings} rec, {r.hours:.1f} h\n{r.n_seizures} seizures"
        auroc = ["n/a" if r.auroc is None else f"{r.auroc:.3f}"] if with_auroc else []
        table.add_row(r.name, size, *auroc, *("\n".join(cell_lines(c)) for c in r.cells))
    return table
