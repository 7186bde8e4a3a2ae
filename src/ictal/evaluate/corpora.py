"""The corpora of a mixture cache in evaluation: which corpus each recording belongs to, the
``--corpus`` selection, and the side-by-side rows of the per-corpus results (the console
summary and the HTML report render the same rows).

A single-corpus cache's rows carry no ``corpus`` key: it has no corpora here, and nothing
per corpus is added to its scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ictal.cache.manifest import CacheView
from ictal.errors import UsageError
from ictal.evaluate.cells import cell_ci, fa_text, interval_text, sens_text, threshold_text

# The scorers the side-by-side table shows at every operating point (the pooled table and
# scores.json carry all of them): NEDC's any-overlap and SzCORE's event score.
KEY_SCORERS: tuple[str, ...] = ("ovlp", "szcore")
SHORT: dict[str, str] = {"ovlp": "OVLP", "taes": "TAES", "szcore": "SzCORE"}
POOLED_ROW = "pooled"


def corpus_of(row: dict[str, Any]) -> str | None:
    """The corpus a recordings-table row belongs to; None in a single-corpus cache."""
    name = row.get("corpus")
    return None if name is None else str(name)


def cache_corpora(view: CacheView) -> list[str]:
    """The corpus names of a mixture cache, in manifest order (then any other name its table
    holds, by first appearance); empty for a single-corpus cache."""
    listed = view.manifest.get("corpora")
    names: list[str] = []
    if isinstance(listed, list):
        names = [str(c["name"]) for c in listed if isinstance(c, dict) and "name" in c]
    for row in view.recordings:
        name = corpus_of(row)
        if name is not None and name not in names:
            names.append(name)
    return names


def parse_corpus_names(values: Iterable[str] | None) -> list[str]:
    """``--corpus`` values (repeated, or comma lists) as names, in order, without repeats."""
    names: list[str] = []
    for value in values or ():
        for part in value.split(","):
            name = part.strip()
            if name and name not in names:
                names.append(name)
    return names


def check_corpus_names(view: CacheView, names: list[str]) -> None:
    """Refuse (usage error, exit 2) names the cache does not hold, naming those it holds."""
    known = cache_corpora(view)
    if not known:
        raise UsageError(
            f"--corpus {','.join(names)}: the cache {view.path} holds one corpus (not a "
            "mixture of corpus.roots); evaluate without --corpus"
        )
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"--corpus: unknown corpus {', '.join(repr(n) for n in unknown)}; the cache "
            f"holds {', '.join(known)}"
        )


def select_corpora(
    view: CacheView, rows: list[dict[str, Any]], names: list[str], split: str
) -> list[dict[str, Any]]:
    """The rows of ``split`` that belong to the named corpora, in table order; a usage error
    for an unknown name or a named corpus without recordings in the split."""
    check_corpus_names(view, names)
    empty = [n for n in names if not any(corpus_of(r) == n for r in rows)]
    if empty:
        present = sorted({c for r in rows if (c := corpus_of(r)) is not None})
        raise UsageError(
            f"--corpus: {', '.join(empty)} has no recordings in the {split} split (the "
            f"{split} split holds {', '.join(present) or 'none'})"
        )
    return [r for r in rows if corpus_of(r) in names]


def corpus_by_id(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Recording id -> corpus for the rows of a mixture; empty for a single corpus."""
    return {str(r["id"]): c for r in rows if (c := corpus_of(r)) is not None}


@dataclass(frozen=True)
class CorpusRow:
    """One row of the side-by-side table: a corpus (or the pooled whole) and its cells."""

    name: str
    n_recordings: int
    hours: float
    n_seizures: int
    auroc: float | None
    cells: list[dict[str, Any] | None]  # counts at each column's operating point


def _points_at(doc: dict[str, Any], scorer: str, target: float) -> dict[str, Any] | None:
    """Counts of ``scorer`` at the operating point for ``target`` with their ``ci95`` (when
    scores.json has them); None without a threshold."""
    for row in ((doc.get("operating_points") or {}).get("points") or {}).get(scorer, []):
        if row["target_fa_per_24h"] == target and row["threshold"] is not None:
            c = row.get("counts")
            return None if c is None else {**c, "ci95": row.get("ci95")}
    return None


def _row(name: str, doc: dict[str, Any], columns: list[tuple[str, float]]) -> CorpusRow:
    return CorpusRow(
        name=name,
        n_recordings=int(doc.get("n_recordings") or 0),
        hours=float(doc.get("total_duration_s") or 0.0) / 3600.0,
        n_seizures=int(doc.get("n_reference_events") or 0),
        auroc=doc.get("auroc"),
        cells=[_points_at(doc, s, t) for s, t in columns],
    )


def side_by_side(scores: dict[str, Any]) -> tuple[list[tuple[str, float]], list[CorpusRow]]:
    """(columns, rows) of the per-corpus table: a column per key scorer and FA/24h target, a
    row per corpus in the config's order, then the pooled row when there are several;
    ([], []) without ``per_corpus`` (a single-corpus cache)."""
    per = scores.get("per_corpus") or {}
    if not per:
        return [], []
    points = (scores.get("operating_points") or {}).get("points") or {}
    columns = [
        (name, float(row["target_fa_per_24h"]))
        for name in KEY_SCORERS
        for row in points.get(name, [])
    ]
    order = [n for n in scores.get("corpora") or [] if n in per] or sorted(per)
    rows = [_row(name, per[name], columns) for name in order]
    if len(rows) > 1:
        rows.append(_row(POOLED_ROW, scores, columns))
    return columns, rows


def threshold_of(scores: dict[str, Any], scorer: str, target: float) -> float | None:
    """The threshold of ``scorer``'s operating point for ``target`` (None: none met it)."""
    for row in ((scores.get("operating_points") or {}).get("points") or {}).get(scorer, []):
        if row["target_fa_per_24h"] == target:
            return row["threshold"]
    return None


def column_label(scorer: str, target: float, threshold: float | None = None) -> str:
    """A short column header: the scorer, the FA/24h budget of its operating point and, when
    given, the threshold that point is (every corpus is scored at it)."""
    label = f"{SHORT.get(scorer, scorer)}\n<={target:g}"
    return label if threshold is None else f"{label}\nt={threshold_text(threshold)}"


def cell_lines(c: dict[str, Any] | None) -> tuple[str, ...]:
    """A cell's lines: the sensitivity, then the FA/24h, each followed by its 95 % interval
    on a line of its own when the cell has one (narrow columns); one '-' without a threshold."""
    if c is None:
        return ("-",)
    sens, fa = c.get("sensitivity"), c.get("fa_per_24h")
    lines = (
        sens_text(sens),
        interval_text(cell_ci(c, "sensitivity"), percent=True) if sens is not None else "",
        fa_text(fa),
        interval_text(cell_ci(c, "fa_per_24h")) if fa is not None else "",
    )
    return tuple(line for line in lines if line)
