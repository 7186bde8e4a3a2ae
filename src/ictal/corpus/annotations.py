"""TUSZ annotation files (``.csv_bi`` / ``.csv``): strict parsing, seizure events, writing.

Parsing is strict on purpose: a label the parser does not know is an error for that file,
never background (a cache built with a lenient parser once held zero seizures).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SEIZURE_CODES: tuple[str, ...] = (
    "fnsz",
    "gnsz",
    "spsz",
    "cpsz",
    "absz",
    "tnsz",
    "cnsz",
    "tcsz",
    "atsz",
    "mysz",
)
BI_LABELS: tuple[str, ...] = ("bckg", "seiz")
TCP_CHANNELS: tuple[str, ...] = (
    "FP1-F7",
    "F7-T3",
    "T3-T5",
    "T5-O1",
    "FP2-F8",
    "F8-T4",
    "T4-T6",
    "T6-O2",
    "A1-T3",
    "T3-C3",
    "C3-CZ",
    "CZ-C4",
    "C4-T4",
    "T4-A2",
    "FP1-F3",
    "F3-C3",
    "C3-P3",
    "P3-O1",
    "FP2-F4",
    "F4-C4",
    "C4-P4",
    "P4-O2",
)
DEFAULT_MONTAGE_FILE = "$NEDC_NFC/lib/nedc_eas_default_montage.txt"
COLUMN_LINE = "channel,start_time,stop_time,label,confidence"
KINDS: tuple[str, ...] = ("csv_bi", "csv")

_VERSION_LINE = "# version = csv_v1.0.0"
_BNAME_RE = re.compile(r"^# bname = (\S+)$")
_DURATION_RE = re.compile(r"^# duration = (\S+) secs$")
_MONTAGE_RE = re.compile(r"^# montage_file = (.*)$")
_EPS = 1e-6


class AnnotationError(ValueError):
    """A bad or missing annotation file; ``str(e)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class Row:
    """One annotation row: a labelled interval (seconds) on one channel (``TERM`` in csv_bi)."""

    channel: str
    start: float
    stop: float
    label: str
    confidence: float


@dataclass(frozen=True)
class AnnotationFile:
    """A parsed annotation file: kind (``csv_bi`` or ``csv``), header values and rows."""

    path: str
    kind: str
    bname: str
    duration: float
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class SeizureEvent:
    """A seizure interval in seconds; label is ``seiz`` (csv_bi) or a type code (csv)."""

    start: float
    stop: float
    label: str


def is_seizure_label(kind: str, label: str) -> bool:
    """Whether a row's label is a seizure: in TUSZ files anything but ``bckg`` (the parser
    knows every label); in SzCORE events tables every type starting with ``sz``."""
    return label.startswith("sz") if kind == "tsv" else label != "bckg"


def infer_kind(path: str) -> str:
    """Annotation kind from the file suffix: ``.csv_bi`` or ``.csv``."""
    if path.endswith(".csv_bi"):
        return "csv_bi"
    if path.endswith(".csv"):
        return "csv"
    raise AnnotationError(path, "unknown annotation kind (expected a .csv_bi or .csv suffix)")


def parse_number(text: str, path: str, where: str, what: str) -> float:
    """A finite number from an annotation field, or an AnnotationError naming the file, the
    place and at most 40 characters of the field."""
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(path, f"{where}: {what} {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise AnnotationError(path, f"{where}: {what} {text[:40]!r} is not finite")
    return value


def _parse_header(lines: list[str], path: str) -> tuple[str, float]:
    """Check the five ``#`` lines and the column line; return (bname, duration)."""
    if len(lines) < 6:
        raise AnnotationError(path, f"line {len(lines) + 1}: file ends inside the header")
    if lines[0] != _VERSION_LINE:
        raise AnnotationError(path, f"line 1: expected {_VERSION_LINE!r}, got {lines[0]!r}")
    bname_match = _BNAME_RE.match(lines[1])
    if bname_match is None:
        raise AnnotationError(path, f"line 2: expected '# bname = <name>', got {lines[1]!r}")
    duration_match = _DURATION_RE.match(lines[2])
    if duration_match is None:
        raise AnnotationError(path, f"line 3: expected '# duration = <N> secs', got {lines[2]!r}")
    duration = parse_number(duration_match.group(1), path, "line 3", "duration")
    if duration <= 0:
        raise AnnotationError(path, f"line 3: duration {duration} is not positive")
    if _MONTAGE_RE.match(lines[3]) is None:
        raise AnnotationError(path, f"line 4: expected '# montage_file = ...', got {lines[3]!r}")
    if lines[4].rstrip() != "#":
        raise AnnotationError(path, f"line 5: expected '#', got {lines[4]!r}")
    if lines[5] != COLUMN_LINE:
        raise AnnotationError(
            path, f"line 6: expected column line {COLUMN_LINE!r}, got {lines[5]!r}"
        )
    return bname_match.group(1), duration


def _parse_row(line: str, lineno: int, path: str, kind: str) -> Row:
    where = f"line {lineno}"
    fields = line.split(",")
    if len(fields) != 5:
        raise AnnotationError(path, f"{where}: expected 5 fields, got {len(fields)}: {line!r}")
    channel, start_s, stop_s, label, conf_s = (f.strip() for f in fields)
    start = parse_number(start_s, path, where, "start time")
    stop = parse_number(stop_s, path, where, "stop time")
    confidence = parse_number(conf_s, path, where, "confidence")
    if not start < stop:
        raise AnnotationError(path, f"{where}: start {start} is not before stop {stop}")
    if not 0.0 <= confidence <= 1.0:
        raise AnnotationError(path, f"{where}: confidence {confidence} outside [0, 1]")
    if kind == "csv_bi":
        if channel != "TERM":
            raise AnnotationError(path, f"{where}: channel {channel!r} (csv_bi rows use 'TERM')")
        if label not in BI_LABELS:
            raise AnnotationError(path, f"{where}: unknown label {label!r} (expected bckg/seiz)")
    else:
        if channel not in TCP_CHANNELS:
            raise AnnotationError(path, f"{where}: unknown channel {channel!r}")
        if label != "bckg" and label not in SEIZURE_CODES:
            raise AnnotationError(
                path, f"{where}: unknown label {label!r} (expected bckg or a seizure code)"
            )
    return Row(channel, start, stop, label, confidence)


def parse_annotation_text(text: str, path: str, kind: str | None = None) -> AnnotationFile:
    """Parse a TUSZ annotation file strictly; any violation raises AnnotationError."""
    kind = infer_kind(path) if kind is None else kind
    if kind not in KINDS:
        raise AnnotationError(path, f"unknown annotation kind {kind!r}")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and lines[-1].strip() == "":
        lines.pop()
    bname, duration = _parse_header(lines, path)
    rows = []
    for lineno, line in enumerate(lines[6:], start=7):
        if not line.strip():
            raise AnnotationError(path, f"line {lineno}: empty line among the rows")
        rows.append(_parse_row(line, lineno, path, kind))
    return AnnotationFile(path=path, kind=kind, bname=bname, duration=duration, rows=tuple(rows))


def read_annotation(path: str, fs: Any = None) -> AnnotationFile:
    """Read and parse one annotation file: a local path, any fsspec URL, or a path inside `fs`.

    The error names the path as given (the URL for remote files)."""
    path = str(path)
    where = path
    if fs is None:
        import fsspec  # when a file is read: the scorers import this module for its labels

        fs, where = fsspec.core.url_to_fs(path)
    try:
        with fs.open(where, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise AnnotationError(path, "missing annotation file") from None
    except IsADirectoryError:
        raise AnnotationError(path, "is a directory, not an annotation file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, f"not UTF-8 text (byte {exc.start})") from None
    return parse_annotation_text(text, path)


def _check_overlaps(
    rows: list[Row], ann: AnnotationFile, policy: str, repairs: dict[str, int]
) -> list[Row]:
    """Rows of one channel sorted by time; overlapping rows raise or are counted for merging."""
    ordered = sorted(rows, key=lambda r: (r.start, r.stop))
    for prev, row in itertools.pairwise(ordered):
        if row.start < prev.stop - _EPS:
            if policy == "error":
                raise AnnotationError(
                    ann.path,
                    f"overlapping rows on channel {row.channel}: "
                    f"[{prev.start:.4f}, {prev.stop:.4f}] {prev.label} and "
                    f"[{row.start:.4f}, {row.stop:.4f}] {row.label}",
                )
            repairs["overlap_merged"] = repairs.get("overlap_merged", 0) + 1
    return ordered


def _check_range(
    row: Row, limit: float, ann: AnnotationFile, policy: str, tol: float, repairs: dict[str, int]
) -> Row | None:
    """Clip a row to [0, limit]; beyond the tolerance this raises or is counted."""
    out = row.start < 0 or row.stop > limit + tol
    if out:
        if policy == "error":
            raise AnnotationError(
                ann.path,
                f"row [{row.start:.4f}, {row.stop:.4f}] {row.label} on {row.channel} "
                f"outside the recording [0, {limit:.4f}]",
            )
        repairs["clipped_to_duration"] = repairs.get("clipped_to_duration", 0) + 1
    start, stop = max(row.start, 0.0), min(row.stop, limit)
    if stop <= start:
        return None
    return Row(row.channel, start, stop, row.label, row.confidence)


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of intervals; touching intervals join."""
    merged: list[tuple[float, float]] = []
    for start, stop in sorted(intervals):
        if merged and start <= merged[-1][1] + _EPS:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def seizure_events(
    ann: AnnotationFile,
    *,
    edf_duration: float | None = None,
    overlap_policy: str = "error",
    out_of_range_policy: str = "error",
    duration_tolerance_s: float = 1.0,
) -> tuple[list[SeizureEvent], dict[str, int]]:
    """Seizure events sorted by start, plus counts of the repairs the policies allowed."""
    if overlap_policy not in ("error", "merge"):
        raise ValueError(f"overlap_policy must be 'error' or 'merge', got {overlap_policy!r}")
    if out_of_range_policy not in ("error", "clip"):
        raise ValueError(
            f"out_of_range_policy must be 'error' or 'clip', got {out_of_range_policy!r}"
        )
    known = not math.isnan(ann.duration)  # an events table may not say the duration
    if (
        edf_duration is not None
        and known
        and abs(ann.duration - edf_duration) > duration_tolerance_s
    ):
        raise AnnotationError(
            ann.path,
            f"header duration {ann.duration:.4f} s differs from the EDF duration "
            f"{edf_duration:.4f} s by more than {duration_tolerance_s} s",
        )
    limit = ann.duration if edf_duration is None else edf_duration
    repairs: dict[str, int] = {}
    by_channel: dict[str, list[Row]] = {}
    for row in ann.rows:
        # An events table's other types (artifacts, a bckg row over the whole recording) may
        # overlap its seizures: only seizures are checked and kept.
        if ann.kind != "tsv" or is_seizure_label(ann.kind, row.label):
            by_channel.setdefault(row.channel, []).append(row)
    seizure_rows: list[Row] = []
    for rows in by_channel.values():
        for row in _check_overlaps(rows, ann, overlap_policy, repairs):
            kept = _check_range(row, limit, ann, out_of_range_policy, duration_tolerance_s, repairs)
            if kept is not None and is_seizure_label(ann.kind, kept.label):
                seizure_rows.append(kept)
    events = []
    for start, stop in _union([(r.start, r.stop) for r in seizure_rows]):
        if ann.kind == "csv_bi":
            events.append(SeizureEvent(start, stop, "seiz"))
            continue
        inside = [r for r in seizure_rows if r.start >= start - _EPS and r.stop <= stop + _EPS]
        if ann.kind == "tsv":  # the type with the most seconds; ties to the first by name
            spans: dict[str, float] = {}
            for r in inside:
                spans[r.label] = spans.get(r.label, 0.0) + r.stop - r.start
            events.append(SeizureEvent(start, stop, min(spans, key=lambda k: (-spans[k], k))))
            continue
        seconds = dict.fromkeys(SEIZURE_CODES, 0.0)
        for r in seizure_rows:
            if r.start >= start - _EPS and r.stop <= stop + _EPS:
                seconds[r.label] += r.stop - r.start
        label = max(SEIZURE_CODES, key=lambda code: seconds[code])
        events.append(SeizureEvent(start, stop, label))
    return events, repairs


def _header(bname: str, duration: float, montage_file: str) -> str:
    return (
        f"{_VERSION_LINE}\n# bname = {bname}\n# duration = {duration:.2f} secs\n"
        f"# montage_file = {montage_file}\n#\n{COLUMN_LINE}\n"
    )


def tiling_rows(
    channel: str, duration: float, intervals: Sequence[tuple[float, float, str]]
) -> list[Row]:
    """Rows tiling 0..duration on one channel: the labelled intervals, ``bckg`` between them."""
    rows: list[Row] = []
    cursor = 0.0
    for start, stop, label in sorted(intervals):
        if start < cursor - _EPS or stop > duration + _EPS or start >= stop:
            raise ValueError(f"interval [{start}, {stop}] overlaps or leaves 0..{duration}")
        if start - cursor >= 5e-5:
            rows.append(Row(channel, cursor, start, "bckg", 1.0))
        rows.append(Row(channel, start, stop, label, 1.0))
        cursor = stop
    if duration - cursor >= 5e-5:
        rows.append(Row(channel, cursor, duration, "bckg", 1.0))
    return rows


def format_csv(
    bname: str, duration: float, rows: Sequence[Row], montage_file: str = DEFAULT_MONTAGE_FILE
) -> str:
    """TUSZ annotation text with the given rows, in order, times with four decimals."""
    body = "".join(
        f"{r.channel},{r.start:.4f},{r.stop:.4f},{r.label},{r.confidence:.4f}\n" for r in rows
    )
    return _header(bname, duration, montage_file) + body


def format_csv_bi(
    bname: str,
    duration: float,
    seizures: Sequence[tuple[float, float]],
    montage_file: str = DEFAULT_MONTAGE_FILE,
) -> str:
    """TUSZ ``.csv_bi`` text: TERM rows tiling 0..duration with ``bckg`` / ``seiz``."""
    rows = tiling_rows("TERM", duration, [(s, e, "seiz") for s, e in seizures])
    return format_csv(bname, duration, rows, montage_file)
