"""``ictal report``: one self-contained HTML page (PNG plots embedded as base64) for a run
directory, an evaluation directory, or a run directory holding ``eval-*`` directories.

Every part is optional: a run without an evaluation gets its training curves and says that
no evaluation exists yet; an evaluation without its run gets its scores only. A run's files
are read only when they are regular files: a symbolic link (metrics.jsonl, scores.json, a
probability file, an evaluation directory) is never followed, and the page says so.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ictal.errors import UsageError
from ictal.evaluate.cells import threshold_text
from ictal.evaluate.corpora import cell_lines, column_label, side_by_side, threshold_of
from ictal.evaluate.tables import CAPTION, HEADERS, patient_headers, patient_rows, result_rows
from ictal.events.operating_points import DEFAULT_SCORERS
from ictal.events.scorers import LABELS
from ictal.io.atomic import atomic_write_text
from ictal.io.paths import is_inside, is_safe_name, own_file, plain_dir, plain_file
from ictal.io.untrusted import read_json
from ictal.runs.directory import EvalDir, RunDir, run_of_checkpoint
from ictal.runs.meta import read_run_json
from ictal.runs.metrics import read_metrics

MAX_POINTS = 4000  # per plotted line; longer series are decimated (trace maxima kept)
CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.note{color:#666}img{max-width:100%}code{background:#f4f4f4;padding:0 3px}
tr.end td{border-bottom:2px solid #888}.side{display:flex;gap:1.5em;flex-wrap:wrap}
.ops td,.patients td,.corpora td{white-space:nowrap}
.patients{font-size:.85em}.corpora{font-size:.78em}
"""


def _ordered(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """Items by scorer in the order OVLP, TAES, SzCORE events, then others by name
    (scores.json is written with sorted keys)."""
    order = [*DEFAULT_SCORERS, "szcore_samples"]
    return sorted(d.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0]))


def _png(fig: Figure) -> str:
    """An <img> tag holding the figure as a base64 PNG."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # tight_layout already fitted it: no second layout pass
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _esc(v: Any) -> str:
    """Any value as HTML text (numbers too: a tampered scores.json may hold markup anywhere)."""
    return html.escape(str(v))


def _series(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(step, value) for rows that carry a finite ``key``, in file order, decimated."""
    pts = [
        (float(r.get("step", i)), float(r[key]))
        for i, r in enumerate(rows)
        if isinstance(r.get(key), int | float) and math.isfinite(r[key])
    ]
    if not pts:
        return np.empty(0), np.empty(0)
    arr = np.asarray(pts)
    step = max(1, len(arr) // MAX_POINTS)
    return arr[::step, 0], arr[::step, 1]


def training_curves(rows: list[dict[str, Any]]) -> str | None:
    """A 2x2 figure by step: the pos-weighted loss of train and dev (comparable), the
    unweighted dev loss that selects the best checkpoint, dev AUROC, learning rate."""
    panels = [
        ("loss (pos-weighted)", [("loss", "train"), ("val_loss_weighted", "dev")]),
        ("dev loss (unweighted, selects best)", [("val_loss", "dev")]),
        ("dev AUROC", [("val_auroc", "dev")]),
        ("learning rate", [("lr", "train")]),
    ]
    series = {key: _series(rows, key) for _, keys in panels for key, _ in keys}
    if not any(len(x) for x, _ in series.values()):
        return None
    fig = Figure(figsize=(11, 6.5))
    for k, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(2, 2, k + 1)
        drawn = 0
        for key, label in keys:
            x, y = series[key]
            if len(x):
                ax.plot(x, y, marker="o" if len(x) < 50 else None, lw=1.2, label=label)
                drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        elif len(keys) > 1:
            ax.legend(loc="best", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def operating_curves(scores: dict[str, Any]) -> str | None:
    """Sensitivity against FA/24h per scorer from the threshold sweep, drawn in FA order;
    each budget's line labelled and its chosen point marked with its threshold and 95 %
    intervals."""
    sw = scores.get("sweep") or {}
    scorers = sw.get("scorers") or {}
    if not scorers:
        return None
    points = (scores.get("operating_points") or {}).get("points") or {}
    fig = Figure(figsize=(5.5 * len(scorers), 4.4))
    for k, (name, cur) in enumerate(_ordered(scorers)):
        ax = fig.add_subplot(1, len(scorers), k + 1)
        pairs = [(f, s) for f, s in zip(cur["fa_per_24h"], cur["sensitivity"], strict=True)
                 if f is not None and s is not None]  # fmt: skip
        if pairs:
            fa, sens = zip(*sorted(pairs), strict=True)
            ax.plot(fa, np.asarray(sens) * 100, "-o", ms=2.5, lw=1.2, label="every threshold")
        for row in points.get(name, []):
            _budget(ax, row)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_ylim(-2, 108)
        ax.set_xlabel("false alarms per 24 h (pooled)")
        ax.set_ylabel("sensitivity %")
        ax.set_title(LABELS.get(name, name))
        ax.grid(alpha=0.3)
        by_label = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
        if by_label:
            ax.legend(by_label.values(), by_label.keys(), loc="lower right", fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _budget(ax: Any, row: dict[str, Any]) -> None:
    """One FA/24h budget on a curve: its labelled line, and the point chosen for it (with its
    threshold and 95 % intervals as error bars) where a threshold met it."""
    target = row["target_fa_per_24h"]
    ax.axvline(target, color="0.75", lw=0.8, ls="--")
    ax.text(target, 107, f"<={target:g}", fontsize=8, ha="center", va="top", color="0.35")
    c, ci = row.get("counts") or {}, row.get("ci95") or {}
    if row.get("threshold") is None or c.get("fa_per_24h") is None or c.get("sensitivity") is None:
        return
    x, y = c["fa_per_24h"], 100 * c["sensitivity"]
    xe = ci.get("fa_per_24h")
    ye = ci.get("sensitivity")
    ax.errorbar(
        x, y, fmt="o", color="C3", ms=4, lw=0.8, capsize=2,
        xerr=None if not xe else [[max(0.0, x - xe[0])], [max(0.0, xe[1] - x)]],
        yerr=None if not ye else [[max(0.0, y - 100 * ye[0])], [max(0.0, 100 * ye[1] - y)]],
        label="chosen point, 95% CI",
    )  # fmt: skip
    ax.annotate(f"t={threshold_text(row['threshold'])}", (x, y), xytext=(4, -10),
                textcoords="offset points", fontsize=7, color="C3")  # fmt: skip


def pick_recordings(recs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Best, typical (median) and worst recording by per-recording OVLP F1 at the export
    threshold; best and typical are taken among recordings with seizures when there are any."""
    if not recs:
        return []
    ranked = sorted(recs, key=lambda r: (r.get("ovlp_f1_export") or 0.0, len(r["ref_events"])))
    with_sz = [r for r in ranked if r["ref_events"]] or ranked
    picks = [("best", with_sz[-1]), ("typical", with_sz[len(with_sz) // 2]), ("worst", ranked[0])]
    seen: set[str] = set()
    out = []
    for tag, r in picks:
        if r["id"] not in seen:
            seen.add(r["id"])
            out.append((tag, r))
    return out


def _decimate_max(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, value) with at most MAX_POINTS points; each block keeps its maximum."""
    step = max(1, math.ceil(len(p) / MAX_POINTS))
    n = len(p) // step * step
    if step == 1:
        return np.arange(len(p)), p
    blocks = p[:n].reshape(-1, step).max(1)
    return np.arange(len(blocks)) * step, blocks


def trace_figure(eval_dir: EvalDir, scores: dict[str, Any]) -> str | None:
    """Probability traces of the picked recordings against reference and hypothesis events."""
    picks = [(t, r) for t, r in pick_recordings(scores.get("recordings") or [])
             if is_safe_name(r["id"]) and own_file(eval_dir.path, eval_dir.probs_of(r["id"]))
             ]  # fmt: skip
    if not picks:
        return None
    fs_out = float(scores["inference"]["fs_out"])
    threshold = (scores.get("exports") or {}).get("threshold")
    fig = Figure(figsize=(11, 2.3 * len(picks)))
    for k, (tag, r) in enumerate(picks):
        ax = fig.add_subplot(len(picks), 1, k + 1)
        p = np.load(eval_dir.probs_of(r["id"]), allow_pickle=False)
        idx, val = _decimate_max(np.asarray(p, dtype=np.float32))
        for a, b in r["ref_events"]:
            ax.axvspan(a, b, color="C2", alpha=0.25, lw=0)
        for a, b in r.get("hyp_events", []):
            ax.plot([a, b], [1.04, 1.04], color="C3", lw=4, solid_capstyle="butt")
        ax.plot(idx / fs_out, val, lw=0.8, color="C0")
        if threshold is not None:
            ax.axhline(threshold, color="C3", lw=0.7, ls="--")
            ax.text(r["duration_s"], threshold, f" export threshold t={threshold_text(threshold)}",
                    fontsize=7, color="C3", va="bottom", ha="right")  # fmt: skip
        ax.set_ylim(-0.02, 1.1)
        ax.set_xlim(0, r["duration_s"])
        f1 = r.get("ovlp_f1_export")
        ax.set_title(
            f"{tag}: {r['id']} (OVLP F1 {f1:.2f}; green reference, red hypothesis)"
            if f1 is not None
            else f"{tag}: {r['id']}",
            fontsize=9,
        )
        ax.set_ylabel("p(seizure)")
    fig.axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return _png(fig)


def _num(v: float | None, fmt: str = ".2f") -> str:
    """A number formatted and escaped ('n/a' when missing)."""
    return "n/a" if v is None else _esc(format(float(v), fmt))


def _html_table(cls: str, heads: list[str] | tuple[str, ...], rows: list[tuple[str, ...]],
                ends: list[bool] | None = None) -> str:  # fmt: skip
    """An escaped HTML table; ``ends`` marks rows that close a group (a heavier rule)."""
    head = "".join("<th>" + "<br>".join(map(_esc, h.split("\n"))) + "</th>" for h in heads)
    body = "".join(
        ('<tr class="end">' if ends and ends[k] else "<tr>")
        + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
        for k, row in enumerate(rows)
    )  # fmt: skip
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def operating_point_table(scores: dict[str, Any]) -> str:
    """HTML table: one row per detector and scorer (the console's rows): threshold,
    sensitivity and false alarms per 24 h with 95 % intervals, precision, onset latency."""
    opsd = scores.get("operating_points") or {}
    rows = result_rows(scores)
    table = _html_table("ops", HEADERS, [r.cells() for r in rows], [r.last for r in rows])
    how = (
        f"chosen on {_esc(opsd.get('chosen_on'))}"
        if opsd.get("mode") == "chosen"
        else f"frozen (chosen on {_esc(opsd.get('chosen_on'))}, file "
        f"<code>{_esc(opsd.get('file'))}</code>) and applied unchanged"
    )
    return (
        f'{table}<p class="note">Operating points {how}; "none met it": no threshold met the '
        f"budget. {_esc(CAPTION)}</p>"
    )


def patient_table(scores: dict[str, Any]) -> str | None:
    """HTML table of one evaluation's patients (None when scores.json has none)."""
    rows = patient_rows(scores)
    if not rows:
        return None
    return _html_table("patients", patient_headers(scores), rows)


def patients_side_by_side(evals: list[tuple[EvalDir, dict[str, Any]]]) -> str | None:
    """Every evaluation's per-patient table side by side (dev beside eval); None without."""
    order = {"train": 0, "dev": 1, "eval": 2}
    tables = sorted(
        ((order.get(str(s.get("split")), 3), d.path.name, s, t)
         for d, s in evals if (t := patient_table(s))),
        key=lambda x: x[:2],
    )  # fmt: skip
    if not tables:
        return None
    cells = "".join(
        f"<div><h3>{_esc(s.get('split'))} <small>(<code>{_esc(name)}</code>)</small></h3>{t}</div>"
        for _, name, s, t in tables
    )
    return (
        f'<h2>Per patient</h2><div class="side">{cells}</div><p class="note">Each patient\'s '
        "recordings pooled; sensitivity and false alarms per 24 h at the loosest operating point "
        "of each scorer (its threshold in the header). A patient's rate rests on a few hours (one "
        "false alarm in 1 h is 24 FA/24h): read it as where the errors are.</p>"
    )


def corpus_table(scores: dict[str, Any]) -> str | None:
    """HTML table of a mixture's corpora side by side (the console's rows); None without
    ``per_corpus`` (a single-corpus cache)."""
    columns, rows = side_by_side(scores)
    if not rows:
        return None
    with_auroc = any(r.auroc is not None for r in rows)
    heads = ["corpus", "record-\nings", "hours", "seiz-\nures", *(["AUROC"] if with_auroc else []),
             *(column_label(s, t, threshold_of(scores, s, t)) for s, t in columns)]  # fmt: skip
    body = []
    for r in rows:
        cells = [_esc(v) for v in (r.name, r.n_recordings, f"{r.hours:.1f}", r.n_seizures)]
        if with_auroc:
            cells.append(_num(r.auroc, ".3f"))
        cells += ["<br>".join(_esc(line) for line in cell_lines(c)) for c in r.cells]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join("<th>" + "<br>".join(map(_esc, h.split("\n"))) + "</th>" for h in heads)
    return (
        f'<table class="corpora"><tr>{head}</tr>{"".join(body)}</table>'
        '<p class="note">Sensitivity and FA/24h [95% CI] at the operating points above (&lt;=N: '
        "the point chosen for N FA/24h, t its threshold); each corpus pooled over its own files "
        "and patients, every corpus at the same thresholds.</p>" + _corpus_details(scores)
    )


def _corpus_details(scores: dict[str, Any]) -> str:
    """Each corpus's full result table (the rows of the pooled one), folded."""
    parts = []
    for name in scores.get("corpora") or sorted(scores.get("per_corpus") or {}):
        rows = result_rows(scores["per_corpus"][name])
        table = _html_table("ops", HEADERS, [r.cells() for r in rows], [r.last for r in rows])
        parts.append(f"<details><summary>{_esc(name)}: every detector</summary>{table}</details>")
    return "".join(parts)


def _eval_section(eval_dir: EvalDir, scores: dict[str, Any]) -> str:
    hours = float(scores.get("total_duration_s") or 0.0) / 3600.0
    where = _esc(scores.get("split"))
    if scores.get("corpus_selection"):  # only some corpora of a mixture
        where += f" ({_esc(', '.join(map(str, scores['corpus_selection'])))})"
    parts = [
        f"<h2>Evaluation on {where} <small>(<code>{_esc(eval_dir.path.name)}</code>)</small></h2>",
        f"<p>{_esc(scores.get('n_recordings'))} recordings, "
        f"{len(scores.get('per_patient') or [])} patients, {_num(hours)} h, "
        f"{_esc(scores.get('n_reference_events'))} reference seizures; sample-level AUROC "
        f"{_num(scores.get('auroc'), '.3f')}."
        + (f" {_esc(scores['n_failed'])} recordings failed." if scores.get("n_failed") else "")
        + "</p>",
        f'<p class="note">{_esc(scores.get("pooling", ""))}</p>',
        operating_point_table(scores),
    ]
    by_corpus = corpus_table(scores)
    if by_corpus:
        parts.append(f"<h3>By corpus</h3>{by_corpus}")
    for title, img in (
        ("Sensitivity against false alarms", operating_curves(scores)),
        ("Probability traces: best, typical, worst", trace_figure(eval_dir, scores)),
    ):
        if img:
            parts.append(f"<h3>{title}</h3>{img}")
    return "\n".join(parts)


def _find(path: Path, runs_root: Path | None) -> tuple[RunDir | None, list[EvalDir]]:
    """(run or None, evaluations) for a run dir, an evaluation dir, or a run with evals.
    The run of an evaluation is its parent directory, or the run its scores name when that
    lies under ``runs_root``: a scores file never makes the report read anywhere else."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory (expected a run or evaluation directory)")
    here = EvalDir(path)
    if plain_file(here.scores):
        parent = RunDir(path.parent)
        if plain_file(parent.metrics):
            return parent, [here]
        try:
            doc = read_json(here.scores, "scores.json")
            named = run_of_checkpoint(Path(doc["checkpoint"]))
        except (OSError, KeyError, ValueError, TypeError):
            named = None
        if named is not None and runs_root is not None and is_inside(named.path, runs_root):
            return named, [here]
        return None, [here]
    run = RunDir(path)
    evals = [
        EvalDir(p) for p in run.evaluations() if plain_dir(p) and plain_file(EvalDir(p).scores)
    ]
    if plain_file(run.metrics) or plain_dir(run.checkpoints) or evals:
        return run, evals
    raise UsageError(
        f"{path} holds no metrics.jsonl, checkpoints/ or scores.json: not a run or an evaluation"
    )


def _header(run: RunDir | None, evals: list[tuple[EvalDir, dict[str, Any]]]) -> str:
    """Run id, cache key and checkpoint, from the evaluations or the run directory."""
    first = evals[0][1] if evals else {}
    meta = read_run_json(run.run_json) if run is not None and plain_file(run.run_json) else {}
    run_id = first.get("run_id") or meta.get("run_id") or (run.run_id if run else "n/a")
    cache_key = first.get("checkpoint_cache_key") or meta.get("cache_key") or first.get("cache_key")
    ckpts = sorted({str(s.get("checkpoint")) for _, s in evals if s.get("checkpoint")})
    if not ckpts and run is not None:
        ckpts = [str(p) for p in sorted(run.checkpoints.glob("*.pt"))]
    rows = [
        ("run", run_id),
        ("run directory", run.path if run else "n/a"),
        ("cache key", cache_key or "n/a"),
        ("checkpoint", ", ".join(ckpts) or "n/a"),
        ("generated", datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f"<h1>Ictal report: {_esc(run_id)}</h1><table>{body}</table>"


def _parts(run: RunDir | None, evals: list[tuple[EvalDir, dict[str, Any]]]) -> list[str]:
    """The report's HTML sections: header, training curves, each evaluation."""
    parts = [_header(run, evals), "<h2>Training</h2>"]
    rows = read_metrics(run.metrics) if run is not None and plain_file(run.metrics) else []
    curves = training_curves(rows)
    if curves:
        parts.append(curves)
    elif run is None:
        parts.append('<p class="note">No run directory found for this evaluation.</p>')
    elif run.metrics.is_symlink():
        parts.append(f'<p class="note">{_esc(run.metrics)} is a symbolic link: not read.</p>')
    else:
        parts.append(f'<p class="note">No training metrics in {_esc(run.metrics)}.</p>')
    if evals:
        parts.extend(_eval_section(d, s) for d, s in evals)
        parts.append(patients_side_by_side(evals) or "")
    else:
        target = run.best if run is not None else "CKPT"
        parts.append(
            '<h2>Evaluation</h2><p class="note">No evaluation yet: run '
            f"<code>ictal evaluate {_esc(target)} --split dev</code>, then this report again.</p>"
        )
    return parts


def write_report(path: Path, runs_root: Path | None = None) -> Path:
    """Write ``<path>/report.html`` for a run or evaluation directory; returns its path. A
    scores.json of another shape is a usage error naming it, never a traceback."""
    path = Path(path)
    run, eval_dirs = _find(path, runs_root)
    evals = []
    for d in eval_dirs:
        try:
            scores = read_json(d.scores, "scores.json")
        except (OSError, ValueError):
            continue
        if not isinstance(scores, dict):
            raise UsageError(f"{d.scores} is not an ictal scores file (not an object)")
        evals.append((d, scores))
    try:
        parts = _parts(run, evals)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise UsageError(
            f"a scores.json under {path} does not have the shape ictal evaluate writes "
            f"({type(exc).__name__}: {exc}); run `ictal evaluate` again to rewrite it"
        ) from exc
    doc = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Ictal report</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return atomic_write_text(path / "report.html", doc)
