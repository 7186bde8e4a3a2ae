"""Lenient EDF reading on top of edfio: header-only reads for the census, and the needed EEG
signals (in µV) for the build, with every repaired header defect counted.

edfio itself reads non-ASCII header bytes, `00.00.00` dates, colon times, NULs in labels,
EDF+C without annotations and inverted physical ranges (sign flip). It also derives the
record count from the file size (count -1, truncated last record) but warns on every read,
and it cannot parse a non-numeric count or use a wrong header-size field; for those we hand
it an in-memory copy with the header patched and a partial record cut. Flat ranges on a
needed signal, duplicate or missing channels and mixed rates are errors.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np
from edfio import Edf, EdfSignal, read_edf
from fsspec.implementations.local import LocalFileSystem

from ictal.corpus.channels import (
    BIPOLAR_PAIRS,
    CANONICAL_19,
    MONTAGE_PAIRS,
    NEIGHBOURS,
    ChannelSelection,
    normalise_label,
    pair_of,
    select_channels,
    select_pairs,
)

log = logging.getLogger(__name__)

# The EDF header layout (EDF specification): fixed fields as (byte offset, width), then one
# block per signal field, each holding that field for every signal in turn.
_MAIN = 256  # bytes in the fixed part of the header
_SIG = 256  # header bytes per signal
VERSION = (0, 8)
PATIENT = (8, 80)
START_DATE = (168, 8)
START_TIME = (176, 8)
HEADER_BYTES = (184, 8)
N_RECORDS = (236, 8)
RECORD_SECONDS = (244, 8)
N_SIGNALS = (252, 4)
SIGNAL_FIELDS = (
    ("label", 16), ("transducer", 80), ("unit", 8), ("physical_min", 8), ("physical_max", 8),
    ("digital_min", 8), ("digital_max", 8), ("prefilter", 80), ("samples_per_record", 8),
    ("reserved", 32),
)  # fmt: skip


def signal_field(ns: int, name: str, signal: int) -> tuple[int, int]:
    """(byte offset, width) of one signal's header field in a file of ``ns`` signals."""
    names = [n for n, _ in SIGNAL_FIELDS]
    k = names.index(name)
    width = SIGNAL_FIELDS[k][1]
    return _MAIN + ns * sum(w for _, w in SIGNAL_FIELDS[:k]) + signal * width, width


_FIRST_READ = _MAIN + _SIG * 40  # one request covers headers of up to 40 signals
_ODD_BYTE = re.compile(rb"[^\x00\x20-\x7e]")  # non-ASCII or control, NUL apart
_UNIT_SCALE = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


class RecordingError(Exception):
    """A recording that cannot be read; the reason names the defect (and signal)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class EdfHeader:
    """What the header says (after repairs); per-signal lists exclude EDF+ annotation signals."""

    path: str
    labels: list[str]
    fs: list[float]
    n_records: int
    record_s: float
    duration_s: float
    start_date: str
    start_time: str
    patient: str
    repairs: dict[str, int] = field(default_factory=dict)
    samples_per_record: list[int] = field(default_factory=list)
    physical_min: list[float] = field(default_factory=list)  # NaN where unparseable
    physical_max: list[float] = field(default_factory=list)
    digital_min: list[float] = field(default_factory=list)
    digital_max: list[float] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    record_bytes: int = 0
    needs_patch: bool = False  # edfio must be handed a patched copy of the header
    patched_header: bytes = b""


@dataclass
class EegRecording:
    """The wanted channels of one recording, float32 in µV, shape (n_channels, n_samples)."""

    path: str
    data: np.ndarray
    fs: float
    channels: tuple[str, ...]
    duration_s: float
    repairs: dict[str, int] = field(default_factory=dict)
    sha256: str | None = None  # of the file's bytes, when they were read whole (remote, repaired)
    pairs: bool = False  # the rows are a bipolar montage's pairs as stored, not electrodes


def _resolve(
    path: str, fs: fsspec.AbstractFileSystem | None
) -> tuple[fsspec.AbstractFileSystem, str]:
    if fs is not None:
        return fs, path
    return fsspec.core.url_to_fs(path)


def _field(raw: bytes | bytearray, start: int, length: int) -> str:
    return bytes(raw[start : start + length]).decode("ascii", errors="replace").strip()


def _put(raw: bytearray, start: int, length: int, value: str) -> None:
    raw[start : start + length] = value.encode("ascii").ljust(length)[:length]


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _read_header_bytes(fs: fsspec.AbstractFileSystem, path: str, size: int) -> bytes:
    """Fetch the whole header with one ranged read (two if it has more than 40 signals)."""
    raw = fs.cat_file(path, start=0, end=min(size, _FIRST_READ))
    if len(raw) < _MAIN:
        raise RecordingError(path, f"empty file or not EDF ({size} bytes, header needs 256)")
    try:
        ns = int(_field(raw, *N_SIGNALS))
    except ValueError:
        raise RecordingError(
            path, f"not EDF: number-of-signals field {_field(raw, *N_SIGNALS)!r}"
        ) from None
    need = _MAIN + _SIG * ns
    if ns <= 0 or need > size:
        raise RecordingError(path, f"not EDF: {ns} signals do not fit in {size} bytes")
    if need > len(raw):
        raw = fs.cat_file(path, start=0, end=need)
    return bytes(raw[:need])


@dataclass
class _Patch:
    """Header bytes under repair: the repairs counted so far, and whether edfio must be handed
    the patched copy (a field was rewritten)."""

    fixed: bytearray
    repairs: dict[str, int] = field(default_factory=dict)
    needs_patch: bool = False

    def put(self, where: tuple[int, int], value: str) -> None:
        """Rewrite one field of the header; edfio then reads the patched copy."""
        _put(self.fixed, *where, value)
        self.needs_patch = True


def _parse_header(path: str, raw: bytes, size: int) -> EdfHeader:
    """Check and repair the raw header bytes, then let edfio parse the (patched) copy."""
    if _field(raw, *VERSION) != "0":
        raise RecordingError(path, f"not EDF: version field {raw[:8]!r}")
    ns = int(_field(raw, *N_SIGNALS))
    patch = _printable(raw)
    if _field(patch.fixed, *HEADER_BYTES) != str(len(raw)):
        patch.repairs["header_size_field"] = 1
        patch.put(HEADER_BYTES, str(len(raw)))
    record_bytes, record_s = _record_layout(path, patch.fixed, ns)
    data_bytes = size - len(raw)
    actual, remainder = divmod(max(data_bytes, 0), record_bytes)
    if actual == 0:
        raise RecordingError(path, f"no complete data record ({data_bytes} data bytes)")
    _repair_record_count(patch, actual, remainder)
    start_date, start_time = _start_fields(patch)
    edf = _signal_headers(path, patch.fixed)
    sigs = edf.signals
    return EdfHeader(
        path=path,
        labels=[s.label for s in sigs],
        fs=[s.samples_per_data_record / record_s for s in sigs],
        n_records=actual,
        record_s=record_s,
        duration_s=actual * record_s,
        start_date=start_date,
        start_time=start_time,
        patient=edf.local_patient_identification,
        repairs=patch.repairs,
        samples_per_record=[s.samples_per_data_record for s in sigs],
        physical_min=_ranged(sigs, "physical_min"),
        physical_max=_ranged(sigs, "physical_max"),
        digital_min=_ranged(sigs, "digital_min"),
        digital_max=_ranged(sigs, "digital_max"),
        units=[s.physical_dimension for s in sigs],
        record_bytes=record_bytes,
        needs_patch=patch.needs_patch,
        patched_header=bytes(patch.fixed),
    )


def _printable(raw: bytes) -> _Patch:
    """The header with non-ASCII or control bytes as '?' and NUL bytes as spaces (counted)."""
    patch = _Patch(bytearray(raw))
    if _ODD_BYTE.search(raw):
        patch.repairs["non_ascii_header"] = 1
        patch.fixed = bytearray(_ODD_BYTE.sub(b"?", raw))
    if b"\x00" in raw:
        patch.repairs["nul_bytes_in_header"] = 1
        patch.fixed = bytearray(patch.fixed.replace(b"\x00", b" "))
    return patch


def _record_layout(path: str, fixed: bytearray, ns: int) -> tuple[int, float]:
    """Bytes and seconds of one data record, as the signal headers declare them."""
    try:
        spr_all = [
            int(_field(fixed, *signal_field(ns, "samples_per_record", i))) for i in range(ns)
        ]
    except ValueError:
        raise RecordingError(path, "samples-per-record field is not an integer") from None
    record_bytes = 2 * sum(spr_all)
    record_s = _num(_field(fixed, *RECORD_SECONDS))
    if record_bytes <= 0 or not record_s > 0:
        raise RecordingError(path, f"invalid record layout ({record_bytes} B, {record_s} s)")
    return record_bytes, record_s


def _repair_record_count(patch: _Patch, actual: int, remainder: int) -> None:
    """Make the number-of-records field say the ``actual`` complete records, counting why it
    did not (unreadable, -1, a truncated file, or another number)."""
    try:
        declared = int(_field(patch.fixed, *N_RECORDS))
    except ValueError:
        patch.repairs["records_field_invalid"] = 1
        declared = actual
        patch.put(N_RECORDS, str(actual))
    if declared == -1:
        patch.repairs["records_minus_one"] = 1
    elif remainder:
        patch.repairs["truncated"] = 1
    elif declared != actual:
        patch.repairs["records_mismatch"] = 1
    if declared != actual or remainder:
        # edfio would derive the same count but warn (UserWarning) on every read; we count
        # the repair instead and hand it a consistent header and whole records.
        patch.put(N_RECORDS, str(actual))


def _start_fields(patch: _Patch) -> tuple[str, str]:
    """Start date ('' when all zeros) and time (dots, not colons), repairs counted."""
    start_date = _field(patch.fixed, *START_DATE)
    if re.fullmatch(r"0+[.:/-]0+[.:/-]0+", start_date):
        patch.repairs["zero_start_date"] = 1
        start_date = ""
    start_time = _field(patch.fixed, *START_TIME)
    if ":" in start_time:
        patch.repairs["colon_start_time"] = 1
        start_time = start_time.replace(":", ".")
    return start_date, start_time


def _signal_headers(path: str, fixed: bytearray) -> Edf:
    """edfio's reading of the header alone: handed zero records and no data, it parses the
    signal headers without touching (or warning about) the data section."""
    probe = bytearray(fixed)
    _put(probe, *N_RECORDS, "0")
    try:
        return read_edf(bytes(probe))
    except Exception as exc:  # edfio raises ValueError/ZeroDivisionError on garbage fields
        raise RecordingError(path, f"header unreadable: {exc}") from None


def _ranged(sigs: Sequence[EdfSignal], attr: str) -> list[float]:
    """A numeric field of every signal, NaN where it does not parse."""
    out = []
    for s in sigs:
        try:
            out.append(float(getattr(s, attr)))
        except ValueError:
            out.append(float("nan"))
    return out


def read_header(
    path: str, fs: fsspec.AbstractFileSystem | None = None, *, size: int | None = None
) -> EdfHeader:
    """Read and repair one EDF header (header bytes only, no signal data); `size` saves a stat."""
    fs, path = _resolve(path, fs)
    try:
        if size is None:
            size = int(fs.size(path))
        raw = _read_header_bytes(fs, path, size)
    except OSError as exc:  # missing, a directory, permission, network
        raise RecordingError(path, f"cannot open: {exc}") from None
    header = _parse_header(path, raw, size)
    if header.repairs:
        log.warning("%s: repaired EDF header defects %s", path, header.repairs)
    return header


def bipolar_labels(labels: Sequence[str]) -> list[str]:
    """Labels that are pairs of two electrodes (`FP1-F7`, `EEG T7-P7`), as CHB-MIT writes."""
    return [label.strip() for label in labels if pair_of(label) is not None]


def select_for(
    labels: Sequence[str], channels: Sequence[str] = CANONICAL_19, montage: str | None = None
) -> ChannelSelection:
    """The electrodes a recording needs; for a bipolar montage (``bipolar``, ``tcp``), when
    the file lacks electrodes but holds every pair of the montage, those pairs instead."""
    sel = select_channels(labels, channels)
    pairs = MONTAGE_PAIRS.get(montage or "")
    if sel.missing and pairs is not None:
        stored = select_pairs(labels, pairs)
        if not stored.missing:
            return stored
    return sel


def _bipolar_hint(labels: Sequence[str], montage: str | None) -> str:
    """Why a bipolar file lacks its electrodes, and whether a bipolar montage would use it."""
    pairs = bipolar_labels(labels)
    if not pairs:
        return ""
    if montage != "bipolar" and not select_pairs(labels, BIPOLAR_PAIRS).missing:
        return (
            f" (the file is bipolar: {', '.join(pairs[:3])}...; it holds the double banana, "
            "so signal.montage: bipolar reads its pairs)"
        )
    return (
        f" (the file is bipolar: {', '.join(pairs[:3])}...; a bipolar pair cannot give back "
        "its electrodes, and the file lacks pairs of signal.montage)"
    )


def check_channels(
    header: EdfHeader,
    channels: Sequence[str] = CANONICAL_19,
    *,
    missing: str = "error",
    montage: str | None = None,
) -> ChannelSelection:
    """Select the needed channels (the electrodes, or a bipolar montage's stored pairs) and
    reject what cannot be read correctly: duplicates, missing channels (unless
    interpolating), flat or unreadable ranges, mixed rates."""
    if missing not in ("error", "interpolate"):
        raise ValueError(f"missing must be 'error' or 'interpolate', not {missing!r}")
    sel = select_for(header.labels, channels, montage)
    if sel.duplicates:
        raise RecordingError(header.path, sel.problem() or "duplicate channel labels")
    if sel.missing and missing == "error":
        hint = _bipolar_hint(header.labels, montage) if len(sel.missing) > len(sel.index) else ""
        raise RecordingError(header.path, f"missing channels: {', '.join(sel.missing)}{hint}")
    for i in sel.index.values():
        label = header.labels[i]
        pmin, pmax = header.physical_min[i], header.physical_max[i]
        dmin, dmax = header.digital_min[i], header.digital_max[i]
        if any(np.isnan(v) for v in (pmin, pmax, dmin, dmax)):
            raise RecordingError(header.path, f"unreadable physical/digital range on {label!r}")
        if pmin == pmax:
            raise RecordingError(header.path, f"physical min == max ({pmin}) on {label!r}")
        if dmin == dmax:
            raise RecordingError(header.path, f"digital min == max ({dmin}) on {label!r}")
        if header.units[i].strip().lower() not in _UNIT_SCALE:
            raise RecordingError(header.path, f"unknown unit {header.units[i]!r} on {label!r}")
    rates = {header.fs[i] for i in sel.index.values()}
    if len(rates) > 1:
        detail = ", ".join(f"{n}={header.fs[i]:g}" for n, i in sel.index.items())
        raise RecordingError(header.path, f"needed signals have different rates: {detail}")
    return sel


def _open_edf(fs: fsspec.AbstractFileSystem, header: EdfHeader) -> tuple[Edf, str | None]:
    """Open lazily: a sound local file is memory-mapped by edfio; a remote or defective one
    is read into memory once (and its sha256 taken then, so nobody downloads it twice), with
    the repaired header spliced in and a partial record cut."""
    if isinstance(fs, LocalFileSystem) and not header.needs_patch:
        return read_edf(Path(header.path), lazy_load_data=True), None
    with fs.open(header.path, "rb") as f:
        blob = bytearray(f.read())
    digest = hashlib.sha256(blob).hexdigest()
    if header.needs_patch:
        head = len(header.patched_header)
        blob[:head] = header.patched_header
        del blob[head + header.n_records * header.record_bytes :]
    return read_edf(memoryview(blob), lazy_load_data=True), digest


def _calibrate(digital: np.ndarray, sig: EdfSignal, unit: float, out: np.ndarray) -> None:
    """Physical µV into ``out`` in float32: ``(digital + offset) * gain``, EDF's linear map
    (as edfio computes it, without its float64 copy of every sample)."""
    gain = (sig.physical_max - sig.physical_min) / (sig.digital_max - sig.digital_min)
    offset = sig.physical_max / gain - sig.digital_max
    np.add(digital, np.float32(offset), out=out)
    out *= np.float32(gain * unit)


def read_eeg(
    path: str,
    channels: Sequence[str] = CANONICAL_19,
    *,
    missing: str = "error",
    fs: fsspec.AbstractFileSystem | None = None,
    montage: str | None = None,
) -> EegRecording:
    """Read only the wanted channels, in the wanted order, as float32 µV; with
    `missing="interpolate"` a missing electrode is the mean of its present 10-20 neighbours.
    For a bipolar `montage`, a file stored as that montage's pairs gives the pairs
    (`EegRecording.pairs`)."""
    fs, path = _resolve(path, fs)
    header = read_header(path, fs)
    sel = check_channels(header, channels, missing=missing, montage=montage)
    repairs = dict(header.repairs)
    if not sel.index:
        raise RecordingError(path, "none of the needed channels is present")
    try:
        edf, digest = _open_edf(fs, header)
    except Exception as exc:
        raise RecordingError(path, f"cannot read data: {exc}") from None
    first = next(iter(sel.index.values()))
    rate = header.fs[first]
    n_samples = header.n_records * header.samples_per_record[first]
    data = np.empty((len(sel.wanted), n_samples), dtype=np.float32)
    signals = edf.signals
    for row, name in enumerate(sel.wanted):
        i = sel.index.get(name)
        if i is None:
            continue
        sig = signals[i]
        digital = sig.digital
        if digital.shape[0] != n_samples:
            raise RecordingError(
                path, f"{header.labels[i]!r}: {digital.shape[0]} samples, expected {n_samples}"
            )
        _calibrate(digital, sig, _UNIT_SCALE[header.units[i].strip().lower()], data[row])
    if sel.missing:
        for name in sel.missing:
            present = [sel.wanted.index(n) for n in NEIGHBOURS.get(name, ()) if n in sel.index]
            if not present:
                raise RecordingError(path, f"cannot interpolate {name}: no neighbour present")
            data[sel.wanted.index(name)] = data[present].mean(axis=0)
        repairs["interpolated_channels"] = len(sel.missing)
        log.warning("%s: interpolated missing channels %s", path, ", ".join(sel.missing))
    return EegRecording(
        path=path,
        data=data,
        fs=rate,
        channels=sel.wanted,
        duration_s=header.duration_s,
        repairs=repairs,
        sha256=digest,
        pairs=sel.wanted != tuple(normalise_label(c) for c in channels),
    )
