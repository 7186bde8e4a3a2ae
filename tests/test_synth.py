"""Synthetic TUSZ-layout corpus (ictal.corpus.synth): layout, determinism, signals, quirks."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any

import edfio
import numpy as np
import pytest

from ictal.corpus.annotations import (
    SEIZURE_CODES,
    AnnotationError,
    read_annotation,
    seizure_events,
)
from ictal.corpus.synth import FOCAL_CODES, QUIRKS, synthesize

LAYOUT = re.compile(
    r"^edf/(train|dev|eval)/([a-z]{8})/(s\d{3})_(\d{4})_(\d{2})_(\d{2})/"
    r"(01_tcp_ar|02_tcp_le|03_tcp_ar_a)/\2_\3_t\d{3}\.(edf|csv|csv_bi)$"
)
ELECTRODES_19 = {"FP1", "F3", "C3", "P3", "O1", "F7", "T3", "T5", "FZ", "CZ", "PZ", "FP2", "F4",
                 "C4", "P4", "O2", "F8", "T4", "T6"}  # fmt: skip


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("clean")
    return out, synthesize(out, patients=6, hours=1.0, seed=7)


@pytest.fixture(scope="module")
def quirky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("quirky")
    return out, synthesize(out, patients=9, hours=0.5, seed=3, quirks=0.8)


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _header(raw: bytes) -> dict[str, Any]:
    """Decode the fixed EDF header and the per-signal label / physical range fields."""
    ns = int(raw[252:256])

    def block(offset: int, width: int) -> list[str]:
        base = 256 + ns * offset
        return [raw[base + i * width : base + (i + 1) * width].decode().strip() for i in range(ns)]

    return {
        "header_bytes": int(raw[184:192]),
        "n_records": raw[236:244].decode().strip(),
        "labels": block(0, 16),
        "phys_min": block(16 + 80 + 8, 8),
        "phys_max": block(16 + 80 + 8 + 8, 8),
        "spr": [int(v) for v in block(16 + 80 + 8 * 5 + 80, 8)],
    }


def _electrode(label: str) -> str:
    return label.removeprefix("EEG ").rsplit("-", 1)[0]


def test_layout_names_and_ground_truth_file(clean: tuple[Path, dict[str, Any]]) -> None:
    root, truth = clean
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert "ground_truth.json" in on_disk
    names = [n for n in on_disk if n != "ground_truth.json"]
    assert all(LAYOUT.match(n) for n in names), [n for n in names if not LAYOUT.match(n)]
    expected = {
        f["edf"][: -len("edf")] + ext for f in truth["files"] for ext in ("edf", "csv", "csv_bi")
    }
    assert set(names) == expected
    assert json.loads((root / "ground_truth.json").read_text()) == truth
    assert truth["generator"] == "ictal-synth" and truth["version"] == 1 and truth["seed"] == 7
    assert {f["montage"] for f in truth["files"]} == {"01_tcp_ar", "02_tcp_le", "03_tcp_ar_a"}
    assert all(f["fs"] in (250, 256, 400, 512) for f in truth["files"])
    assert all(f["quirk"] is None and f["expected"] == "clean" for f in truth["files"])
    per_patient: dict[str, set[str]] = {}
    for f in truth["files"]:
        per_patient.setdefault(f["patient"], set()).add(f["edf"])
    assert all(len(v) >= 2 for v in per_patient.values())
    hours = sum(f["duration_s"] for f in truth["files"]) / 3600
    assert abs(hours - 1.0) < 0.05 and truth["totals"]["all"]["hours"] == pytest.approx(hours)


def test_splits_are_patient_disjoint_and_each_has_seizures(
    clean: tuple[Path, dict[str, Any]],
) -> None:
    _, truth = clean
    split_of: dict[str, str] = {}
    for f in truth["files"]:
        assert split_of.setdefault(f["patient"], f["split"]) == f["split"]
        assert f["edf"].startswith(f"edf/{f['split']}/{f['patient']}/{f['session']}/")
        assert truth["patients"][f["patient"]]["split"] == f["split"]
    for split in ("train", "dev", "eval"):
        assert truth["totals"][split]["patients"] >= 1
        assert truth["totals"][split]["seizure_events"] >= 1
    assert all(p["sex"] in ("F", "M") and p["age"] > 0 for p in truth["patients"].values())


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    args = {"patients": 3, "hours": 0.25, "quirks": 1.0}
    first = synthesize(tmp_path / "a", seed=5, **args)
    assert synthesize(tmp_path / "b", seed=5, **args) == first
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    synthesize(tmp_path / "c", seed=6, **args)
    assert _tree(tmp_path / "c") != _tree(tmp_path / "a")


def test_edfio_reads_clean_files_as_ground_truth_says(clean: tuple[Path, dict[str, Any]]) -> None:
    root, truth = clean
    for f in truth["files"]:
        edf = edfio.read_edf(root / f["edf"])
        assert list(edf.labels) == f["signals"]
        assert edf.duration == f["duration_s"] and edf.data_record_duration == 1.0
        eeg = [s for s in edf.signals if s.label.startswith("EEG ")]
        assert {s.sampling_frequency for s in eeg} == {f["fs"]}
        slow = {
            s.label: s.sampling_frequency
            for s in edf.signals
            if s.label in ("IBI", "BURSTS", "SUPPR")
        }
        assert slow == {"IBI": 1, "BURSTS": 1, "SUPPR": 1}
        suffix = "-LE" if f["montage"] == "02_tcp_le" else "-REF"
        names = {_electrode(lab) for lab in f["signals"] if lab.startswith("EEG ")}
        assert names >= ELECTRODES_19 and "T7" not in names
        assert ("A1" in names) == (f["montage"] != "03_tcp_ar_a")
        assert all(lab.endswith(suffix) for lab in f["signals"] if lab.startswith("EEG "))
        assert {"EEG EKG1" + suffix, "PHOTIC-REF"} <= set(f["signals"])
        patient = edf.local_patient_identification.split()
        sex, age = truth["patients"][f["patient"]]["sex"], patient[-1]
        assert patient[0] == f["patient"] and patient[1] == sex and re.fullmatch(r"Age:\d+", age)
        assert edf.startdate.strftime("%Y_%m_%d") == f["session"][5:]


def test_annotations_agree_with_ground_truth(clean: tuple[Path, dict[str, Any]]) -> None:
    root, truth = clean
    for f in truth["files"]:
        stem = root / f["edf"][: -len(".edf")]
        bi_events, repairs = seizure_events(
            read_annotation(f"{stem}.csv_bi"), edf_duration=f["duration_s"]
        )
        assert repairs == {}
        want = [(e["start"], e["stop"]) for e in f["events"]]
        assert [(e.start, e.stop) for e in bi_events] == want
        csv = read_annotation(f"{stem}.csv")
        n_channels = len({r.channel for r in csv.rows})
        assert n_channels == (20 if f["montage"] == "03_tcp_ar_a" else 22)
        events, _ = seizure_events(csv, edf_duration=f["duration_s"])
        assert [(e.start, e.stop, e.label) for e in events] == [
            (e["start"], e["stop"], e["label"]) for e in f["events"]
        ]


def test_seizures_cover_about_five_percent_use_all_codes_and_spread(
    clean: tuple[Path, dict[str, Any]],
) -> None:
    root, truth = clean
    total = truth["totals"]["all"]
    assert 0.02 < total["seizure_seconds"] / (total["hours"] * 3600) < 0.10
    labels = [e["label"] for f in truth["files"] for e in f["events"]]
    assert len(labels) >= 5 and set(labels) == set(SEIZURE_CODES[: len(labels)])  # codes rotate
    assert any(not f["events"] for f in truth["files"])
    seen_focal = seen_general = False
    for f in truth["files"]:
        if len(f["events"]) != 1:
            continue
        rows = read_annotation(str(root / f["edf"][:-4]) + ".csv").rows
        onsets = {r.channel: r.start for r in rows if r.label != "bckg"}
        if f["events"][0]["label"] in FOCAL_CODES:
            seen_focal = True
            assert max(onsets.values()) - min(onsets.values()) >= 1.0  # spreads over seconds
            assert len(onsets) < len({r.channel for r in rows})  # not every channel involved
        else:
            seen_general = True
            assert len(set(onsets.values())) == 1 and len(onsets) == len({r.channel for r in rows})
    assert seen_focal and seen_general


def _centroid(x: np.ndarray, fs: int) -> float:
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / fs)
    band = (freqs > 1.5) & (freqs < 20)
    return float((freqs[band] * power[band]).sum() / power[band].sum())


def test_seizures_are_large_and_slow_down(clean: tuple[Path, dict[str, Any]]) -> None:
    root, truth = clean
    checked = 0
    for f in truth["files"]:
        if not f["events"]:
            continue
        edf = edfio.read_edf(root / f["edf"])
        fs = f["fs"]
        for ev in f["events"]:
            a, b = int(ev["start"] * fs), int(ev["stop"] * fs)
            best = None
            for s in edf.signals:
                if s.label.startswith("EEG ") and _electrode(s.label) in ELECTRODES_19:
                    x = s.data
                    ratio = (
                        x[a:b].std()
                        / np.concatenate([x[: max(0, a - 5 * fs)], x[b + 5 * fs :]]).std()
                    )
                    best = max(best or (0.0, None), (ratio, x[a:b]), key=lambda t: t[0])
            assert best is not None and best[0] > 2.0, (f["edf"], ev, best and best[0])
            seg = best[1]
            if ev["label"] != "absz" and ev["stop"] - ev["start"] >= 30:
                third = len(seg) // 3
                assert _centroid(seg[:third], fs) > _centroid(seg[-third:], fs) + 0.5
                checked += 1
    assert checked >= 1


def test_quirk_corpus_has_every_quirk_and_expectations(quirky: tuple[Path, dict[str, Any]]) -> None:
    _, truth = quirky
    quirks = [f["quirk"] for f in truth["files"] if f["quirk"] is not None]
    assert set(quirks) == set(QUIRKS)
    assert len(quirks) == round(0.8 * len(truth["files"]))
    expected = {f["quirk"]: f["expected"] for f in truth["files"]}
    assert expected[None] == "clean" and expected["short_recording"] == "clean"
    for q in (
        "records_minus_one",
        "truncated",
        "non_ascii_header",
        "zero_start_date",
        "colon_start_time",
    ):
        assert expected[q] == "repaired"
    for q in ("flat_physical_range", "duplicate_labels", "missing_fz_pz", "unknown_label",
              "overlapping_rows", "event_past_end", "missing_csv_bi"):  # fmt: skip
        assert expected[q] == "unusable"
    for split in ("train", "dev", "eval"):  # a clean seizure file survives in every split
        assert any(
            f["split"] == split and f["quirk"] is None and f["events"] for f in truth["files"]
        )


def test_quirk_defects_are_in_the_bytes(quirky: tuple[Path, dict[str, Any]]) -> None:
    root, truth = quirky
    seen = set()
    for f in truth["files"]:
        q = f["quirk"]
        path = root / f["edf"]
        raw = path.read_bytes()
        head = _header(raw)
        stem = str(path)[:-4]
        assert head["labels"] == f["signals"]
        if q is None:
            assert head["n_records"] == str(f["duration_s"])
            continue
        seen.add(q)
        record = sum(head["spr"]) * 2
        if q == "records_minus_one":
            assert raw[236:244] == b"-1      "
        elif q == "truncated":
            assert (len(raw) - head["header_bytes"]) % record != 0
            assert (len(raw) - head["header_bytes"]) // record == f["duration_s"]
            assert int(head["n_records"]) == f["original_duration_s"] == f["duration_s"] + 1
        elif q == "non_ascii_header":
            assert b"\xe9" in raw[8:88]
        elif q == "zero_start_date":
            assert raw[168:176] == b"00.00.00"
        elif q == "colon_start_time":
            assert re.fullmatch(rb"\d\d:\d\d:\d\d", raw[176:184])
        elif q == "flat_physical_range":
            flat = [
                lab
                for lab, lo, hi in zip(
                    head["labels"], head["phys_min"], head["phys_max"], strict=True
                )
                if lo == hi
            ]
            assert len(flat) == 1 and _electrode(flat[0]) in ELECTRODES_19
        elif q == "duplicate_labels":
            dup = [lab for lab in head["labels"] if head["labels"].count(lab) > 1]
            assert len(dup) == 2 and _electrode(dup[0]) in ELECTRODES_19
        elif q == "missing_fz_pz":
            assert not {"FZ", "PZ"} & {_electrode(lab) for lab in head["labels"]}
        elif q == "unknown_label":
            for ext in (".csv_bi", ".csv"):
                with pytest.raises(AnnotationError, match="xxsz"):
                    read_annotation(stem + ext)
        elif q == "overlapping_rows":
            ann = read_annotation(stem + ".csv_bi")
            with pytest.raises(AnnotationError, match="overlapping"):
                seizure_events(ann)
            assert seizure_events(ann, overlap_policy="merge")[1]["overlap_merged"] >= 1
        elif q == "event_past_end":
            ann = read_annotation(stem + ".csv_bi")
            assert max(r.stop for r in ann.rows) > ann.duration + 5
            with pytest.raises(AnnotationError, match="outside the recording"):
                seizure_events(ann)
            events, repairs = seizure_events(ann, out_of_range_policy="clip")
            assert repairs["clipped_to_duration"] >= 1 and events[-1].stop == ann.duration
        elif q == "short_recording":
            assert 30 <= f["duration_s"] <= 50
            assert edfio.read_edf(path).duration == f["duration_s"]
        elif q == "missing_csv_bi":
            assert not Path(stem + ".csv_bi").exists() and Path(stem + ".csv").exists()
    assert seen == set(QUIRKS)


def test_edfio_leniency_on_repairable_quirks(quirky: tuple[Path, dict[str, Any]]) -> None:
    root, truth = quirky
    by_quirk = {f["quirk"]: f for f in truth["files"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trunc = by_quirk["truncated"]
        assert edfio.read_edf(root / trunc["edf"]).num_data_records == trunc["duration_s"]
        minus = by_quirk["records_minus_one"]
        assert edfio.read_edf(root / minus["edf"]).num_data_records == minus["duration_s"]
        with pytest.raises(ValueError):
            _ = edfio.read_edf(root / by_quirk["zero_start_date"]["edf"]).startdate


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        synthesize(tmp_path, patients=0, hours=1.0, seed=0)
    with pytest.raises(ValueError):
        synthesize(tmp_path, patients=3, hours=1.0, seed=0, quirks=1.5)
