"""``ictal score``: every pair read, scored by each scorer and pooled NEDC-style (counts and
recording time summed), in memory that does not grow with the number of files."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ictal.errors import UsageError
from ictal.events.counts import ZERO, EventCounts
from ictal.events.formats import FormatError, ScoredFile, read_file
from ictal.events.nedc import Timeline, TimelineError, build_timeline
from ictal.events.scorers import NEDC_NAMES, ORDER, TIMELINE_SCORERS
from ictal.io.atomic import atomic_write_json, atomic_write_with
from ictal.io.cells import text_cell
from ictal.score.inputs import Pair, pair_inputs
from ictal.ui import progress

CHOICES: tuple[str, ...] = (*NEDC_NAMES, "szcore")
COUNT_FIELDS: tuple[str, ...] = ("hits", "misses", "false_alarms", "n_ref")
_SHOWN_PROBLEMS = 20


def parse_scorers(text: str | None) -> list[str]:
    """Scorer names from ``--scorers`` (all when None); ``szcore`` brings both SzCORE ones."""
    if text is None:
        return list(ORDER)
    asked = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in asked if t not in CHOICES]
    if unknown or not asked:
        raise UsageError(
            f"--scorers {text!r}: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(CHOICES)}"
        )
    wanted = {n for t in asked for n in ((t, "szcore_samples") if t == "szcore" else (t,))}
    return [n for n in ORDER if n in wanted]


@dataclass
class ScoreResult:
    """Pooled counts per scorer over every scored pair, and what reading noticed."""

    scorers: list[str]
    totals: dict[str, EventCounts]
    files: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The ``--json`` document: one object per scorer, plus the number of files."""
        doc: dict[str, Any] = {n: self.totals[n].as_dict() for n in self.scorers}
        doc["files"] = self.files
        return doc


def _empty_like(ref: Timeline) -> Timeline:
    """The hypothesis of a recording where nothing was detected (``--missing-hyp empty``)."""
    return build_timeline([], ref.duration_s)


def _read(pair: Pair) -> tuple[ScoredFile, Timeline, tuple[str, ...]]:
    ref = read_file(pair.ref)
    if pair.hyp is None:
        return ref, _empty_like(ref.timeline), ref.notes
    hyp = read_file(pair.hyp)
    return ref, hyp.timeline, ref.notes + hyp.notes


def _score_all(
    pairs: list[Pair], scorers: list[str], row: Callable[[Pair, dict[str, EventCounts]], None]
) -> ScoreResult:
    """Score each pair in turn, handing its counts to ``row``; problems are collected."""
    result = ScoreResult(scorers, dict.fromkeys(scorers, ZERO))
    fns = [(n, TIMELINE_SCORERS[n]) for n in scorers]
    with progress("score", total=len(pairs)) as tick:
        for pair in pairs:
            tick.advance()
            try:
                ref, hyp, notes = _read(pair)
                counts = {n: fn(ref.timeline, hyp) for n, fn in fns}
            except (FormatError, TimelineError) as exc:
                where = "" if isinstance(exc, FormatError) else f"{pair.ref} vs {pair.hyp}: "
                result.problems.append(f"{where}{exc}")
                continue
            if result.problems:
                continue
            for note in notes:
                result.notes[note] = result.notes.get(note, 0) + 1
            for n in scorers:
                result.totals[n] = result.totals[n] + counts[n]
            result.files += 1
            row(pair, counts)
    return result


def _csv_writer(fh: IO[bytes], scorers: Iterable[str]) -> tuple[Any, io.TextIOWrapper]:
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    writer = csv.writer(text)
    header = ["recording", "ref", "hyp", "duration_s"]
    header += [f"{n}_{f}" for n in scorers for f in COUNT_FIELDS]
    writer.writerow(header)
    return writer, text


def _count(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.6f}"


def score(
    ref: str | Path,
    hyp: str | Path,
    *,
    scorers: str | None = None,
    missing_hyp: str = "error",
    json_out: Path | None = None,
    per_file: Path | None = None,
) -> ScoreResult:
    """Pair, read and score; write ``--json`` and ``--per-file`` only when every pair scored.

    Unusable inputs raise ``UsageError`` (exit 2) listing every problem, one line each.
    """
    names = parse_scorers(scorers)
    pairs = pair_inputs(ref, hyp, missing_hyp=missing_hyp)
    result: ScoreResult | None = None

    if per_file is None:
        result = _score_all(pairs, names, lambda pair, counts: None)
    else:

        def write(fh: IO[bytes]) -> None:
            nonlocal result
            writer, text = _csv_writer(fh, names)

            def row(pair: Pair, counts: dict[str, EventCounts]) -> None:
                first = counts[names[0]]
                texts = [pair.stem, str(pair.ref), "" if pair.hyp is None else str(pair.hyp)]
                writer.writerow(
                    [text_cell(t) for t in texts] + [f"{first.duration_s:.4f}"]
                    + [_count(getattr(counts[n], f)) for n in names for f in COUNT_FIELDS]
                )  # fmt: skip

            result = _score_all(pairs, names, row)
            if result.problems:
                raise _Unusable(result)
            text.flush()
            text.detach()

        with contextlib.suppress(_Unusable):
            atomic_write_with(per_file, write)
    assert result is not None
    if result.problems:
        shown = result.problems[:_SHOWN_PROBLEMS]
        more = len(result.problems) - len(shown)
        lines = "\n".join(shown) + (f"\n... and {more} more" if more else "")
        raise UsageError(
            f"{len(result.problems)} of {len(pairs)} pairs cannot be scored (nothing was "
            f"written):\n{lines}"
        )
    if json_out is not None:
        atomic_write_json(json_out, result.document())
    return result


class _Unusable(Exception):
    """Stops the per-file writer so no partial table replaces an older one."""

    def __init__(self, result: ScoreResult) -> None:
        super().__init__("unusable inputs")
        self.result = result
