"""Annotation files any system writes, read the way their scorers read them: NEDC ``.csv_bi``
and ``.csv`` (as ``nedc_eeg_eval`` v6.0.0 accepts them) and SzCORE / BIDS ``_events.tsv``.

A file becomes labelled rows and a duration, then a NEDC ``Timeline``. Reading is as lenient
as NEDC where NEDC scores a file, and refuses with the line and the fix where NEDC would crash
or score nonsense (docs/evaluation.md, "Input files").
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ictal.corpus.annotations import SEIZURE_CODES
from ictal.events.intervals import merge_close
from ictal.events.nedc import DIGITS, Segment, Timeline, TimelineError, fill_timeline
from ictal.io.untrusted import UnreadableInput, read_bytes

SUFFIXES: tuple[str, ...] = (".csv_bi", ".csv", ".tsv")
NEDC_VERSION = "csv_v1.0.0"
COLUMN_LINE = "channel,start_time,stop_time,label,confidence"
TSV_COLUMNS: tuple[str, ...] = ("onset", "duration", "eventType", "recordingDuration")
_COMMENT = re.compile(r'^#([a-zA-Z:!?" _-]*)=(.+)$')
_SHOWN = 40  # characters of a bad field quoted in a message (never a whole line of a file)
MAX_BYTES = 64 * 2**20  # far above any annotation file; a bigger one is not read into memory
# One recording per file: 31 days is beyond any EEG file; EPOCH samples every 0.25 s of it and
# SzCORE every second (about 120 MB at the limit); a duration of 1e12 s would ask terabytes.
MAX_DURATION_S = 31 * 86400.0


class FormatError(ValueError):
    """A file no scorer can use: ``str(e)`` is ``"<path>: <line>: <reason>"``."""


class NoRows(FormatError):
    """A TSV with a header and no rows: no duration, but a hypothesis of no events."""


@dataclass(frozen=True)
class ScoredFile:
    """One annotation file as the scorers see it: its timeline, its seizures and duration
    exactly as written (SzCORE's masks are cut from those), and what reading noticed."""

    path: str
    kind: str
    timeline: Timeline
    notes: tuple[str, ...] = ()
    seizures: tuple[tuple[float, float], ...] = ()
    duration_s: float = 0.0


def kind_of(path: str | Path) -> str | None:
    """``csv_bi``, ``csv`` or ``tsv`` from the name; None for any other file."""
    name = str(path)
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix[1:]
    return None


def stem_of(path: str | Path) -> str:
    """The recording a file belongs to: its name without the suffix (and ``_events``)."""
    name = path.name if isinstance(path, Path) else os.path.basename(path)
    kind = kind_of(name)
    if kind is not None:
        name = name[: -len(kind) - 1]
    return name[: -len("_events")] if name.endswith("_events") else name


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _number(text: str, path: str, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FormatError(f"{path}: {where}: {what} {_shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise FormatError(f"{path}: {where}: {what} {_shown(text)} is not finite")
    return value


def _is_seizure(label: str, path: str, where: str, allowed: tuple[str, ...]) -> bool:
    if label == "bckg":
        return False
    if label in allowed:
        return True
    raise FormatError(
        f"{path}: {where}: label {_shown(label)} is neither bckg nor a seizure label "
        f"({', '.join(allowed[:3])}...); NEDC's two-class map knows only seiz and bckg"
    )


def _check_row(start: float, stop: float, path: str, where: str) -> None:
    if not stop > start:
        raise FormatError(
            f"{path}: {where}: event [{start}, {stop}] does not stop after it starts "
            "(NEDC scores such rows as nonsense; fix or drop the row)"
        )


def _row(row: str, path: str, lineno: int) -> tuple[str, float, float, str]:
    """A data row's channel, start, stop and label, its numbers checked (the first bad field
    is named, as ``_number`` and ``_check_row`` name it)."""
    fields = row.split(",")
    if len(fields) != 5:
        raise FormatError(
            f"{path}: line {lineno}: {len(fields)} fields, NEDC needs 5 ({COLUMN_LINE})"
        )
    channel, start_s, stop_s, label, conf_s = fields
    try:
        start, stop, conf = float(start_s), float(stop_s), float(conf_s)
        plain = math.isfinite(start) and math.isfinite(stop) and math.isfinite(conf)
    except ValueError:
        plain = False
    if not (plain and stop > start):
        where = f"line {lineno}"
        start = _number(start_s, path, where, "start time")
        stop = _number(stop_s, path, where, "stop time")
        _number(conf_s, path, where, "confidence")
        _check_row(start, stop, path, where)
    return channel, start, stop, label


def _term_rows(lines: list[str]) -> tuple[list[Segment], list[str]] | None:
    """The rows and the comment lines of a file whose every data line is a plain TERM row (no
    space, five fields, ``seiz`` or ``bckg``, finite times that stop after they start), read
    in one tight pass; None for any other file, which the line-by-line reader reads and, if
    need be, refuses naming the line."""
    rows: list[Segment] = []
    comments: list[str] = []
    put, low, high = rows.append, -math.inf, math.inf
    for line in lines:
        if not line:
            continue
        if line[0] == "#":
            comments.append(line)
            continue
        if " " in line:
            return None
        if COLUMN_LINE in line:
            continue
        fields = line.split(",")
        if len(fields) != 5 or fields[0] != "TERM" or fields[3] not in ("seiz", "bckg"):
            return None
        try:
            start, stop = float(fields[1]), float(fields[2])
            conf = 1.0 if fields[4] == "1.0000" else float(fields[4])  # what exports write
        except ValueError:
            return None
        if not (low < start < stop < high and low < conf < high):  # finite, stop after start
            return None
        put((start, stop, fields[3] == "seiz"))
    return rows, comments


def _nedc_rows(text: str, path: str, kind: str) -> tuple[float, list[Segment], tuple[str, ...]]:
    """Duration, timeline rows and notes of a NEDC csv file, by NEDC's own reading rules."""
    version: str | None = None
    duration_text: str | None = None
    term: list[Segment] = []
    channels: list[tuple[str, float, float, str, str]] = []
    if "\r" in text:  # removed from every line, as NEDC does
        text = text.replace("\r", "")
    lines = text.split("\n")
    plain = _term_rows(lines)
    term_only = None if plain is None else plain[0]
    if plain is not None:  # the rows are read: only the comments are left to read
        lines = plain[1]
    for lineno, line in enumerate(lines, start=1):
        if version is None:
            low = line.lower()
            if low.startswith("version") or low.startswith("# version"):
                token = low.split("version", 1)[-1].replace("=", "").strip().split()
                version = token[0].replace('"', "") if token else ""
        if line.startswith("#"):
            match = _COMMENT.match(line) if "duration" in line else None
            if match and match.group(1).strip() == "duration":
                duration_text = match.group(2).strip()
            continue
        row = line.replace(" ", "")
        if not row or COLUMN_LINE in row:
            continue
        channel, start, stop, label = _row(row, path, lineno)
        if channel != "TERM":
            channels.append((channel, start, stop, label, f"line {lineno}"))
        elif label in ("seiz", "bckg"):
            term.append((start, stop, label == "seiz"))
        else:
            _is_seizure(label, path, f"line {lineno}", ("seiz",))  # raises: names the label
    if term_only is not None:
        term = term_only
    if version != NEDC_VERSION:
        found = "no version line" if version is None else f"version {_shown(version)}"
        raise FormatError(
            f"{path}: {found}; NEDC reads files that start '# version = {NEDC_VERSION}'"
        )
    if duration_text is None or not duration_text.split():
        raise FormatError(f"{path}: no '# duration = <seconds> secs' line (NEDC needs it)")
    duration = _number(duration_text.split()[0], path, "duration line", "duration")
    if term or not channels:
        notes = ("rows on channels other than TERM are ignored, as NEDC does",) if channels else ()
        return duration, term, notes
    if kind == "csv_bi":
        return duration, [], ("no TERM rows: scored as all background, as NEDC does",)
    allowed = ("seiz", *SEIZURE_CODES)
    seizures = sorted(
        (start, stop) for _, start, stop, label, where in channels
        if _is_seizure(label, path, where, allowed)
    )  # fmt: skip
    united = merge_close(seizures, 0.0)  # touching ones join in the timeline
    note = "per-channel rows collapsed: a seizure wherever any channel has one"
    return duration, [(a, b, True) for a, b in united], (note,)


Rows = tuple[float, list[Segment], tuple[str, ...], list[tuple[float, float]]]
NA = "n/a"
ZERO_LENGTH = "rows of duration 0 skipped: no time to score (SzCORE marks no sample for them)"


def _tsv_rows(text: str, path: str) -> Rows:
    """Duration, rows, notes and seizures as written (onset, onset + duration) of a SzCORE /
    BIDS events file (``sz*`` seizure, ``bckg`` not; a ``bckg`` row's times may be n/a)."""
    try:
        return _tsv_table(text, path)
    except csv.Error as exc:
        raise FormatError(f"{path}: not a tab-separated table ({exc})") from None


def _tsv_table(text: str, path: str) -> Rows:
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    missing = [c for c in TSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise FormatError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
    rows: list[Segment] = []
    raw: list[tuple[float, float]] = []
    notes: tuple[str, ...] = ()
    durations: set[float] = set()
    for lineno, rec in enumerate(reader, start=2):
        where = f"line {lineno}"
        durations.add(_number(rec["recordingDuration"] or "", path, where, "recordingDuration"))
        kind = (rec["eventType"] or "").strip()
        if kind != "bckg" and not kind.startswith("sz"):
            raise FormatError(
                f"{path}: {where}: eventType {_shown(kind)} is neither bckg nor a seizure "
                "(SzCORE seizure types start with 'sz')"
            )
        if kind == "bckg" and NA in (rec["onset"], rec["duration"]):
            continue  # background without times: the timeline fills background anyway
        onset = _number(rec["onset"] or "", path, where, "onset")
        length = _number(rec["duration"] or "", path, where, "duration")
        if length == 0:  # a blip written at two decimals: SzCORE marks no sample for it
            notes = (ZERO_LENGTH,)
            continue
        stop = round(onset + length, DIGITS)
        _check_row(onset, stop, path, where)
        rows.append((onset, stop, kind != "bckg"))
        if kind != "bckg":
            raw.append((onset, onset + length))  # SzCORE's reader adds them unrounded
    if not durations:
        raise NoRows(
            f"{path}: no rows, so no recordingDuration (write one bckg row over the recording)"
        )
    if len(durations) > 1:
        raise FormatError(f"{path}: rows disagree on recordingDuration: {sorted(durations)}")
    return durations.pop(), rows, notes, raw


def _overlap_notes(overlapping: bool, outside: bool) -> tuple[str, ...]:
    """What NEDC scores without a word: overlapping rows, rows past the recording's end."""
    notes = []
    if overlapping:
        notes.append("overlapping events: NEDC scores them as separate events, SzCORE as one")
    if outside:
        notes.append(
            "events outside 0..duration: NEDC scores them as they are, SzCORE cuts them there"
        )
    return tuple(notes)


def parse_file(text: str, path: str, kind: str | None = None) -> ScoredFile:
    """Parse one annotation file's text; ``FormatError`` names the file, line and fix."""
    kind = kind or kind_of(path)
    if kind is None:
        raise FormatError(f"{path}: not an annotation file (need {', '.join(SUFFIXES)})")
    if kind == "tsv":
        duration, rows, notes, seizures = _tsv_rows(text, path)
    else:
        duration, rows, notes = _nedc_rows(text, path, kind)
        seizures = [(a, b) for a, b, seiz in rows if seiz]
    if duration > MAX_DURATION_S:
        raise FormatError(
            f"{path}: duration {duration:g} s is over {MAX_DURATION_S / 86400:g} days, longer than "
            "any recording (fix the duration; NEDC scores one recording per file)"
        )
    try:
        timeline, overlapping, outside = fill_timeline(rows, duration)
    except TimelineError as exc:
        raise FormatError(f"{path}: {exc}") from None
    notes += _overlap_notes(overlapping, outside)
    return ScoredFile(path, kind, timeline, notes, tuple(seizures), duration)


def read_file(path: str | Path) -> ScoredFile:
    """Read and parse one local annotation file (a regular UTF-8 file of at most 64 MB)."""
    name = str(path)
    try:
        data = read_bytes(path, "annotation file", MAX_BYTES)
    except FileNotFoundError:
        raise FormatError(f"{name}: no such file") from None
    except UnreadableInput as exc:  # a FIFO, a device, a directory, too large: named in it
        raise FormatError(str(exc)) from None
    except OSError as exc:  # permissions, I/O: this file cannot be scored, the others can
        raise FormatError(f"{name}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    return parse_file(text, name)
