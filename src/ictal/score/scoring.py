"""``ictal score``: every pair read, scored by each scorer and pooled (NEDC's by summed counts
and recording time; SzCORE's per recording or per subject, as configured), in memory that
grows with the number of subjects, not of files."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ictal.errors import UsageError
from ictal.events.counts import EventCounts, Tally
from ictal.events.scorers import NEDC_NAMES, ORDER, SZCORE_NAMES
from ictal.events.szcore import DEFAULT, POOLINGS, SzcoreParams, subject_of, szcore_doc
from ictal.io.atomic import atomic_write_json, atomic_write_with
from ictal.io.cells import text_cell
from ictal.machine import idle_cpus
from ictal.score.inputs import Pair, pair_inputs
from ictal.score.pairs import Outcome, outcome, score_chunk
from ictal.ui import progress

CHOICES: tuple[str, ...] = (*NEDC_NAMES, *SZCORE_NAMES)
LEFT_OUT = "references without a hypothesis, not scored (--subset)"
COUNT_FIELDS: tuple[str, ...] = ("hits", "misses", "false_alarms", "n_ref")
_SHOWN_PROBLEMS = 20


def parse_scorers(text: str | None) -> list[str]:
    """Scorer names from ``--scorers`` (all when None); ``szcore`` brings both SzCORE ones,
    ``szcore_samples`` only the sample one."""
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
    """Pooled counts per scorer over every scored pair (SzCORE's also per subject when pooled
    by subject), and what reading noticed."""

    scorers: list[str]
    totals: dict[str, EventCounts]
    params: SzcoreParams = DEFAULT
    pooling: str = "recording"
    files: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    subjects: dict[str, dict[str, EventCounts]] = field(default_factory=dict)

    def scorer_doc(self, name: str) -> dict[str, Any]:
        """One scorer's JSON object: counts and rates (SzCORE's pooled as configured)."""
        if name not in SZCORE_NAMES:
            return self.totals[name].as_dict()
        doc = szcore_doc(self.totals[name], self.subjects.get(name, {}), self.pooling)
        return doc | {"parameters": asdict(self.params)}

    def rates(self, name: str) -> dict[str, float]:
        """Sensitivity, precision, F1 and FA/24h as the table shows them (nan: undefined)."""
        doc = self.scorer_doc(name)
        keys = ("sensitivity", "precision", "f1", "fa_per_24h")
        return {k: math.nan if doc[k] is None else float(doc[k]) for k in keys}

    def pooled_how(self) -> str:
        """How the table's rates are pooled, for its title."""
        if self.pooling == "subject" and any(n in SZCORE_NAMES for n in self.scorers):
            return "SzCORE averaged over subjects, the others pooled over files"
        return "pooled over files"

    def legend(self) -> list[str]:
        """Lines under the table saying what the SzCORE and EPOCH numbers count and how."""
        lines = []
        fs = self.params.fs
        unit = "seconds" if fs == 1 else f"1/{fs} s"
        counted = [text for name, text in (("epoch", "EPOCH counts 0.25 s epochs"),
                   ("szcore_samples", f"SzCORE samples count {unit} ({fs} Hz)"))
                   if name in self.scorers]  # fmt: skip
        if counted:
            lines.append(", ".join(counted) + ".")
        if not any(n in SZCORE_NAMES for n in self.scorers):
            return lines
        lines.append("SzCORE F1 = 2*hits/(2*hits + false alarms + misses): 0, not n/a, "
                     "with only misses or only false alarms, as SzCORE's evaluator.")  # fmt: skip
        if self.pooling == "subject":
            n = len(next(iter(self.subjects.values()), {}))
            lines.append(f"SzCORE rates: mean over {n} subject(s) of each one's rates "
                         "(std in --json); its counts are summed.")  # fmt: skip
        if self.params != DEFAULT:
            lines.append(f"SzCORE parameters: {_shown_params(self.params)}.")
        return lines

    def document(self) -> dict[str, Any]:
        """The ``--json`` document: one object per scorer, plus the number of files."""
        doc: dict[str, Any] = {n: self.scorer_doc(n) for n in self.scorers}
        doc["files"] = self.files
        return doc


def _shown_params(p: SzcoreParams) -> str:
    return (f"{p.fs} Hz masks, tolerance -{p.tolerance_start_s:g} s/+{p.tolerance_end_s:g} s, "
            f"min overlap {p.min_overlap:g}, events split at {p.max_event_s:g} s, merged "
            f"across gaps under {p.merge_gap_s:g} s")  # fmt: skip


# Fewer pairs score in less time than a worker process takes to start; more are scored in
# chunks of CHUNK pairs by worker processes, this one among them, and put back in order.
POOL_MIN_PAIRS = 1000
PAIRS_PER_WORKER = 500  # a worker's start-up (0.1 s of CPU) pays off over this many pairs
CHUNK = 100


def _outcomes(
    pairs: list[Pair], scorers: list[str], params: SzcoreParams, workers: int
) -> Iterator[Outcome]:
    """Every pair's outcome in the pairs' order, whichever process scored it."""
    workers = min(workers, len(pairs) // PAIRS_PER_WORKER)
    if workers <= 1 or len(pairs) < POOL_MIN_PAIRS:
        for pair in pairs:
            yield outcome(pair, scorers, params)
        return
    from ictal.parallel.executors import ProcessExecutor

    tasks = ((k, pairs[i : i + CHUNK], scorers, params)
             for k, i in enumerate(range(0, len(pairs), CHUNK)))  # fmt: skip
    done: dict[int, list[Outcome]] = {}
    first = 0
    pool = ProcessExecutor(workers, coordinator_works=True)
    for k, outcomes in pool.map_unordered(score_chunk, tasks):
        done[k] = outcomes
        while first in done:
            yield from done.pop(first)
            first += 1


def _score_all(
    pairs: list[Pair],
    scorers: list[str],
    row: Callable[[Pair, dict[str, EventCounts]], None],
    params: SzcoreParams = DEFAULT,
    pooling: str = "recording",
    workers: int = 1,
) -> ScoreResult:
    """Score each pair, handing its counts to ``row`` in the pairs' order; problems are
    collected."""
    result = ScoreResult(scorers, {}, params, pooling)  # totals: the tallies', at the end
    totals = {n: Tally() for n in scorers}
    by_subject: dict[str, dict[str, Tally]] = {}
    per_subject = [n for n in scorers if n in SZCORE_NAMES] if pooling == "subject" else []
    with progress("score", total=len(pairs)) as tick:
        for pair, outcome in zip(pairs, _outcomes(pairs, scorers, params, workers), strict=True):
            tick.advance()
            if isinstance(outcome, str):
                result.problems.append(outcome)
                continue
            if result.problems:
                continue
            counts, notes = outcome
            for note in notes:
                result.notes[note] = result.notes.get(note, 0) + 1
            for n in scorers:
                totals[n].add(counts[n])
            who = subject_of(pair.stem) if per_subject else ""
            for n in per_subject:  # only this pooling reads them
                per = by_subject.setdefault(n, {})
                if who not in per:
                    per[who] = Tally()
                per[who].add(counts[n])
            result.files += 1
            row(pair, counts)
    result.totals = {n: t.counts() for n, t in totals.items()}
    result.subjects = {n: {who: t.counts() for who, t in per.items()}
                       for n, per in by_subject.items()}  # fmt: skip
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
    subset: bool = False,
    json_out: Path | None = None,
    per_file: Path | None = None,
    params: SzcoreParams = DEFAULT,
    pooling: str = "recording",
    workers: int | None = None,
) -> ScoreResult:
    """Pair, read and score; write ``--json`` and ``--per-file`` only when every pair scored.

    ``workers`` processes score many pairs (None: one per CPU the machine's load leaves idle);
    the outputs do not depend on how many.

    Unusable inputs raise ``UsageError`` (exit 2) listing every problem, one line each.
    """
    names = parse_scorers(scorers)
    if pooling not in POOLINGS:
        raise UsageError(f"--pooling {pooling!r}: choose {' or '.join(POOLINGS)}")
    pairs, left_out = pair_inputs(ref, hyp, missing_hyp=missing_hyp, subset=subset)
    result: ScoreResult | None = None
    workers = idle_cpus() if workers is None else max(1, workers)

    if per_file is None:
        result = _score_all(pairs, names, lambda pair, counts: None, params, pooling, workers)
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

            result = _score_all(pairs, names, row, params, pooling, workers)
            if result.problems:
                raise _Unusable(result)
            text.flush()
            text.detach()

        with contextlib.suppress(_Unusable):
            atomic_write_with(per_file, write)
    assert result is not None
    if left_out:
        result.notes[LEFT_OUT] = len(left_out)
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
