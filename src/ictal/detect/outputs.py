"""What ``ictal detect`` delivers, built from its record log only (so a rerun, a resume and
``--collect`` give the same files): ``events.csv``, NEDC ``.csv_bi`` and SzCORE TSV per
recording under ``hyp/``, and ``summary.json``. Every file is written atomically; a cell of
text taken from a record (a recording's path or URL) is written as text a spreadsheet never
runs as a formula."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ictal.detect.inputs import assign_names
from ictal.detect.records import LOG_DIR
from ictal.events.hypotheses import export_files
from ictal.io.atomic import atomic_write_json, atomic_write_many
from ictal.io.cells import text_cell
from ictal.io.paths import contained, is_safe_name

EVENTS_CSV = "events.csv"
SUMMARY = "summary.json"
HYP = "hyp"
PROBS = "probs"
EVENT_COLUMNS = ("recording", "start_s", "stop_s", "peak_prob", "name")


@dataclass
class Summary:
    """The results of a detect output directory."""

    recordings: int = 0
    done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (recording, error)
    hours: float = 0.0
    events: int = 0


def check_inside(out: Path) -> None:
    """Refuse an output directory whose ``log/``, ``hyp/`` or ``probs/`` leads outside it (a
    symbolic link): detect writes only inside ``--out``."""
    for rel in (LOG_DIR, HYP, f"{HYP}/csv_bi", f"{HYP}/szcore", PROBS):
        contained(out, rel, f"--out {out}: {rel}")


def kept_names(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The names records carry that stay their recording's: plain, and no other recording's
    (records are untrusted: two may claim one name)."""
    taken: dict[str, str] = {}
    owner: dict[str, str] = {}
    clashes = set()
    for key, rec in results.items():
        name = rec.get("name")
        if isinstance(name, str) and is_safe_name(name):
            if name in owner and owner[name] != key:
                clashes.add(name)
            owner.setdefault(name, key)
    for key, rec in results.items():
        name = rec.get("name")
        if isinstance(name, str) and is_safe_name(name) and name not in clashes:
            taken[key] = name
    return taken


def names_of(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Output name of each recording: the name its record carries when it is plain and no
    other recording has it (the probabilities file has that name), else a fresh one."""
    return assign_names(sorted(results), kept_names(results))


def write_outputs(
    out: Path,
    results: dict[str, dict[str, Any]],
    warnings: list[str] | None = None,
    operating_point: dict[str, Any] | None = None,
) -> Summary:
    """Write every output of ``out`` from one record per recording (validated on read); the
    ``warnings`` of the command (log damage, records skipped) and its ``operating_point``
    (``Point.doc``; None for ``--collect``, which merges outputs) go into ``summary.json``."""
    names = names_of(results)
    summary = Summary(recordings=len(results))
    buf = io.StringIO()
    table = csv.writer(buf, lineterminator="\n")
    table.writerow(EVENT_COLUMNS)
    files: dict[Path, bytes] = {}
    for key in sorted(results):
        rec = results[key]
        if rec["status"] != "done":
            summary.failed.append((key, rec.get("error", "")))
            continue
        summary.done += 1
        summary.hours += rec["duration_s"] / 3600
        events = sorted((float(a), float(b), float(p)) for a, b, p in rec["events"])
        summary.events += len(events)
        for a, b, p in events:
            table.writerow([text_cell(key), f"{a:.6f}", f"{b:.6f}", f"{p:.4f}",
                            text_cell(names[key])])  # fmt: skip
        files.update(export_files(out / HYP, names[key], names[key], rec["duration_s"],
                                  [(a, b) for a, b, _ in events]))  # fmt: skip
    files[out / EVENTS_CSV] = buf.getvalue().encode()
    atomic_write_many(files, skip_same=True)  # one flush; a --watch pass writes what changed
    atomic_write_json(
        out / SUMMARY,
        {
            "recordings": summary.recordings,
            "done": summary.done,
            "failed": len(summary.failed),
            "failures": [{"recording": k, "error": e} for k, e in summary.failed],
            "hours": round(summary.hours, 6),
            "events": summary.events,
            "operating_point": operating_point,
            "warnings": list(warnings or []),
            "written": time.time(),
        },
    )
    return summary
