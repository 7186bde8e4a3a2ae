"""Lenient EDF reading: exact values, channel selection, and each header defect repaired
(and counted) or rejected with a reason naming the defect."""

from __future__ import annotations

import logging
from pathlib import Path

import fsspec
import numpy as np
import pytest
from edfio import Edf, EdfSignal

from ictal.corpus.channels import CANONICAL_19, NEIGHBOURS
from ictal.corpus.edf import RecordingError, read_eeg, read_header

FS = 256
SECONDS = 4
STEP = 1000 / 65535  # quantisation step for physical (-500, 500) on the full int16 range


def _signals(suffix: str = "-REF", rate: int = FS, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    names = [f"EEG {c.upper()}{suffix}" for c in CANONICAL_19]
    return {n: rng.uniform(-400, 400, rate * SECONDS) for n in names}


def write_edf(
    path: Path,
    signals: dict[str, np.ndarray],
    *,
    rate: int = FS,
    extra: dict[str, tuple[np.ndarray, int]] | None = None,
    annotations: bool = False,
) -> bytes:
    """Write an EDF with edfio (extra: label -> (data, rate)) and return its bytes."""
    sigs = [EdfSignal(d, rate, label=n, physical_range=(-500, 500)) for n, d in signals.items()]
    for label, (d, r) in (extra or {}).items():
        sigs.insert(0, EdfSignal(d, r, label=label, physical_range=(-1000, 1000)))
    Edf(sigs, annotations=[] if annotations else None).write(path)
    return path.read_bytes()


def patch(raw: bytes, offset: int, value: bytes | str, length: int) -> bytes:
    data = value.encode("latin-1") if isinstance(value, str) else value
    out = bytearray(raw)
    out[offset : offset + length] = data.ljust(length)[:length]
    return bytes(out)


def sig_field(raw: bytes, name: str, index: int) -> tuple[int, int]:
    """Byte offset and length of a per-signal header field."""
    ns = int(raw[252:256])
    widths = {"label": 16, "transducer": 80, "dim": 8, "pmin": 8, "pmax": 8, "dmin": 8, "dmax": 8}
    offset = 256
    for key, width in widths.items():
        if key == name:
            return offset + width * index, width
        offset += width * ns
    raise KeyError(name)


@pytest.fixture
def clean(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], bytes]:
    sigs = _signals()
    path = tmp_path / "clean.edf"
    raw = write_edf(path, sigs)
    return path, sigs, raw


def _expected(sigs: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack(list(sigs.values()))


@pytest.mark.parametrize("suffix", ["-REF", "-LE", "-AVG"])
def test_values_within_one_quantisation_step(tmp_path: Path, suffix: str) -> None:
    sigs = _signals(suffix)
    path = tmp_path / "a.edf"
    write_edf(path, sigs, extra={"EEG EKG1-REF": (np.zeros(100 * SECONDS), 100)})
    rec = read_eeg(str(path))
    assert rec.channels == CANONICAL_19
    assert rec.data.dtype == np.float32 and rec.data.shape == (19, FS * SECONDS)
    assert rec.fs == FS and rec.duration_s == SECONDS and rec.repairs == {}
    assert np.max(np.abs(rec.data - _expected(sigs))) <= STEP


def test_modern_labels_and_a_subset_in_requested_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sigs = {n: rng.uniform(-400, 400, FS * SECONDS) for n in ["Fp1", "T7", "P8", "Cz"]}
    path = tmp_path / "m.edf"
    write_edf(path, sigs)
    rec = read_eeg(str(path), channels=["T6", "T3", "Fp1"])
    assert rec.channels == ("T6", "T3", "Fp1")
    want = np.stack([sigs["P8"], sigs["T7"], sigs["Fp1"]])
    assert np.max(np.abs(rec.data - want)) <= STEP


def test_header_only_read(clean: tuple[Path, dict, bytes]) -> None:
    path, _, _ = clean
    h = read_header(str(path))
    assert h.labels == [f"EEG {c.upper()}-REF" for c in CANONICAL_19]
    assert h.fs == [FS] * 19 and h.n_records == SECONDS and h.record_s == 1
    assert h.duration_s == SECONDS and h.repairs == {}


def test_annotation_signal_does_not_shift_indices(tmp_path: Path) -> None:
    sigs = _signals()
    path = tmp_path / "plus.edf"
    write_edf(path, sigs, annotations=True)
    assert len(read_header(str(path)).labels) == 19
    rec = read_eeg(str(path))
    assert np.max(np.abs(rec.data - _expected(sigs))) <= STEP


def test_fsspec_memory_url(clean: tuple[Path, dict, bytes]) -> None:
    _, sigs, raw = clean
    with fsspec.open("memory://corpus/x.edf", "wb") as f:
        f.write(raw)
    rec = read_eeg("memory://corpus/x.edf")
    assert np.max(np.abs(rec.data - _expected(sigs))) <= STEP
    assert read_header("memory://corpus/x.edf").n_records == SECONDS


@pytest.mark.parametrize(
    ("defect", "repair", "records"),
    [
        ("records_minus_one", "records_minus_one", SECONDS),
        ("truncated", "truncated", SECONDS - 1),
        ("non_ascii_header", "non_ascii_header", SECONDS),
        ("zero_start_date", "zero_start_date", SECONDS),
        ("colon_start_time", "colon_start_time", SECONDS),
        ("records_field_invalid", "records_field_invalid", SECONDS),
        ("header_size_field", "header_size_field", SECONDS),
        ("nul_in_label", "nul_bytes_in_header", SECONDS),
        ("edf_plus_c_without_annotations", None, SECONDS),
    ],
)
@pytest.mark.parametrize("where", ["local", "memory"])
def test_repaired_defects_are_counted_and_read_exactly(
    clean: tuple[Path, dict, bytes],
    defect: str,
    repair: str | None,
    records: int,
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, sigs, raw = clean
    bad = {
        "records_minus_one": lambda r: patch(r, 236, "-1", 8),
        "truncated": lambda r: r[:-7],
        "non_ascii_header": lambda r: patch(r, 8, "Patient \xe9\xfc\xff", 80),
        "zero_start_date": lambda r: patch(r, 168, "00.00.00", 8),
        "colon_start_time": lambda r: patch(r, 176, "13:14:15", 8),
        "records_field_invalid": lambda r: patch(r, 236, "n/a", 8),
        "header_size_field": lambda r: patch(r, 184, "123", 8),
        "nul_in_label": lambda r: patch(r, 256 + 16 * 3, b"EEG P3-REF\0\0\0", 16),
        "edf_plus_c_without_annotations": lambda r: patch(r, 192, "EDF+C", 44),
    }[defect](raw)
    if where == "local":
        path.write_bytes(bad)
        url = str(path)
    else:
        url = f"memory://defects/{defect}.edf"
        with fsspec.open(url, "wb") as f:
            f.write(bad)
    with caplog.at_level(logging.WARNING):
        header = read_header(url)
        rec = read_eeg(url)
    assert header.repairs == ({repair: 1} if repair else {}) == rec.repairs
    assert header.n_records == records and rec.duration_s == records
    if repair:
        assert (path.name if where == "local" else defect) in caplog.text
    n = records * FS
    assert np.max(np.abs(rec.data - _expected(sigs)[:, :n])) <= STEP
    if defect == "colon_start_time":
        assert header.start_time == "13.14.15"
    if defect == "zero_start_date":
        assert header.start_date == ""
    if defect == "non_ascii_header":
        assert header.patient.startswith("Patient") and header.patient.isascii()


def test_inverted_physical_range_flips_sign(clean: tuple[Path, dict, bytes]) -> None:
    path, sigs, raw = clean
    lo, width = sig_field(raw, "pmin", 2)
    hi, _ = sig_field(raw, "pmax", 2)
    path.write_bytes(patch(patch(raw, lo, "500", width), hi, "-500", width))
    rec = read_eeg(str(path))
    want = _expected(sigs)
    want[2] = -want[2]
    assert np.max(np.abs(rec.data - want)) <= STEP


@pytest.mark.parametrize(("lo_field", "hi_field", "reason"), [
    ("pmin", "pmax", "physical min == max"),
    ("dmin", "dmax", "digital min == max"),
])  # fmt: skip
def test_flat_range_on_needed_signal_is_rejected(
    clean: tuple[Path, dict, bytes], lo_field: str, hi_field: str, reason: str
) -> None:
    path, _, raw = clean
    lo, width = sig_field(raw, lo_field, 4)
    hi, _ = sig_field(raw, hi_field, 4)
    value = raw[lo : lo + width]
    path.write_bytes(patch(raw, hi, value, width))
    with pytest.raises(RecordingError) as err:
        read_eeg(str(path))
    assert reason in err.value.reason and "EEG O1-REF" in err.value.reason
    assert str(err.value) == f"{path}: {err.value.reason}"
    # The same defect on a signal we do not read does not matter.
    assert read_eeg(str(path), channels=["Fp1", "C3"]).data.shape == (2, FS * SECONDS)


def test_defects_on_unneeded_signals_do_not_matter(tmp_path: Path) -> None:
    sigs = _signals()
    path = tmp_path / "x.edf"
    raw = write_edf(path, sigs, extra={"PHOTIC-REF": (np.zeros(10 * SECONDS), 10)})
    lo, width = sig_field(raw, "pmin", 0)
    hi, _ = sig_field(raw, "pmax", 0)
    path.write_bytes(patch(patch(raw, lo, "abc", width), hi, "abc", width))
    rec = read_eeg(str(path))
    assert np.max(np.abs(rec.data - _expected(sigs))) <= STEP


def test_duplicate_needed_label_is_rejected(clean: tuple[Path, dict, bytes]) -> None:
    path, _, raw = clean
    off, width = sig_field(raw, "label", 5)  # F7 becomes a second FP1 (modern-name spelling)
    path.write_bytes(patch(raw, off, "EEG FP1-LE", width))
    with pytest.raises(RecordingError, match=r"duplicate channel labels: Fp1"):
        read_eeg(str(path))


def test_missing_channel_error_or_interpolate(tmp_path: Path) -> None:
    sigs = _signals()
    del sigs["EEG FZ-REF"]
    path = tmp_path / "nofz.edf"
    write_edf(path, sigs)
    with pytest.raises(RecordingError, match="missing channels: Fz"):
        read_eeg(str(path))
    rec = read_eeg(str(path), missing="interpolate")
    assert rec.repairs == {"interpolated_channels": 1}
    near = [sigs[f"EEG {n.upper()}-REF"] for n in NEIGHBOURS["Fz"]]
    fz = rec.data[CANONICAL_19.index("Fz")]
    assert np.max(np.abs(fz - np.mean(near, axis=0))) <= STEP


def test_needed_signals_at_different_rates_are_rejected(tmp_path: Path) -> None:
    sigs = _signals()
    path = tmp_path / "rates.edf"
    sigs_fast = {"EEG CZ-REF": np.zeros(512 * SECONDS)}
    del sigs["EEG CZ-REF"]
    s = [EdfSignal(d, FS, label=n, physical_range=(-500, 500)) for n, d in sigs.items()]
    s += [EdfSignal(d, 512, label=n, physical_range=(-500, 500)) for n, d in sigs_fast.items()]
    Edf(s).write(path)
    with pytest.raises(RecordingError, match="different rates"):
        read_eeg(str(path))


@pytest.mark.parametrize("content", [b"", b"not an edf file at all", b"0" * 300])
def test_empty_or_not_edf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.edf"
    path.write_bytes(content)
    with pytest.raises(RecordingError) as err:
        read_header(str(path))
    assert "EDF" in err.value.reason or "data record" in err.value.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="cannot open"):
        read_header(str(tmp_path / "nope.edf"))


def test_synthetic_quirk_corpus_reads_or_rejects_each_file(tmp_path: Path) -> None:
    synth = pytest.importorskip("ictal.corpus.synth")
    truth = synth.synthesize(tmp_path, patients=8, hours=1.0, seed=5, quirks=1.0)
    header_defects = {
        "flat_physical_range": "physical min == max",
        "duplicate_labels": "duplicate channel labels",
        "missing_fz_pz": "missing channels: Fz, Pz",
    }
    for f in truth["files"]:
        path = str(tmp_path / f["edf"])
        if f["quirk"] in header_defects:
            with pytest.raises(RecordingError, match=header_defects[f["quirk"]]):
                read_eeg(path)
            continue
        rec = read_eeg(path)
        assert rec.channels == CANONICAL_19
        assert rec.fs == f["fs"] and rec.duration_s == f["duration_s"]
        assert rec.data.shape == (19, int(f["fs"] * f["duration_s"]))
        assert np.all(np.isfinite(rec.data)) and float(np.std(rec.data)) > 0
        expect = {f["quirk"]: 1} if f["expected"] == "repaired" else {}
        assert rec.repairs == expect, f["quirk"]
    fz = next(f for f in truth["files"] if f["quirk"] == "missing_fz_pz")
    rec = read_eeg(str(tmp_path / fz["edf"]), missing="interpolate")
    assert rec.repairs == {"interpolated_channels": 2}
