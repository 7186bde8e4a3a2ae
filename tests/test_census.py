"""Census: totals equal what was written, every defect is reported or counted, overlap of
patients between splits is an error (exit code 4)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import fsspec
import numpy as np
import pytest
from edfio import Edf, EdfSignal
from rich.console import Console

from ictal.corpus.annotations import Row, format_csv, format_csv_bi
from ictal.corpus.census import census_to_dict, print_census, run_census
from ictal.corpus.channels import CANONICAL_19

RATE = 64  # small files: the census never decodes signals, so the rate hardly matters


def _write_recording(
    root: Path,
    rel: str,
    *,
    seconds: int,
    seizures: list[tuple[float, float]],
    rate: int = RATE,
    suffix: str = "-REF",
    drop: str | None = None,
) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"EEG {c.upper()}{suffix}" for c in CANONICAL_19 if c != drop]
    zeros = np.zeros(rate * seconds)
    sigs = [EdfSignal(zeros, rate, label=n, physical_range=(-500, 500)) for n in names]
    sigs.append(EdfSignal(np.zeros(10 * seconds), 10, label="PHOTIC-REF"))
    Edf(sigs).write(path)
    bname = path.stem
    path.with_suffix(".csv_bi").write_text(format_csv_bi(bname, seconds, seizures))
    rows = [Row("FP1-F7", s, e, "fnsz", 1.0) for s, e in seizures] + [
        Row("C3-CZ", s + 0.5, e, "fnsz", 1.0) for s, e in seizures
    ]
    path.with_suffix(".csv").write_text(format_csv(bname, seconds, rows))


def _rel(split: str, patient: str, session: int, token: int, montage: str = "01_tcp_ar") -> str:
    sess = f"s{session:03d}"
    return f"edf/{split}/{patient}/{sess}_2020_01_01/{montage}/{patient}_{sess}_t{token:03d}.edf"


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    _write_recording(root, _rel("train", "aaaaaaaa", 1, 0), seconds=120, seizures=[(10, 30)])
    _write_recording(
        root, _rel("train", "aaaaaaaa", 1, 1), seconds=90, seizures=[(5, 10), (50, 70)]
    )
    _write_recording(
        root,
        _rel("train", "aaaaaaab", 2, 0, "02_tcp_le"),
        seconds=100,
        seizures=[],
        suffix="-LE",
        rate=50,
    )
    _write_recording(root, _rel("dev", "bbbbbbbb", 1, 0), seconds=45, seizures=[])
    _write_recording(
        root, _rel("eval", "cccccccc", 3, 2, "03_tcp_ar_a"), seconds=80, seizures=[(0, 80)]
    )
    return root


def test_totals_of_a_known_corpus(small_corpus: Path) -> None:
    c = run_census(str(small_corpus))
    assert c.files == {"train": 3, "dev": 1, "eval": 1}
    assert c.usable_files == c.files and c.unusable == [] and c.ending.exit_code == 0
    assert c.patients == {"train": 2, "dev": 1, "eval": 1}
    assert c.hours == pytest.approx({"train": 310 / 3600, "dev": 45 / 3600, "eval": 80 / 3600})
    assert c.seizure_events == {"train": 3, "dev": 0, "eval": 1}
    assert c.seizure_seconds == pytest.approx({"train": 45, "dev": 0, "eval": 80})
    assert c.seizure_fraction["eval"] == pytest.approx(1.0)
    assert c.files_with_seizures == {"train": 2, "dev": 0, "eval": 1}
    assert c.files_by_montage == {"01_tcp_ar": 3, "02_tcp_le": 1, "03_tcp_ar_a": 1}
    assert c.files_by_rate == {50.0: 1, 64.0: 4}
    assert c.vocabulary["csv_bi"] == {"bckg": 7, "seiz": 4}
    assert c.vocabulary["csv"] == {"fnsz": 8}
    assert c.channel_coverage == dict.fromkeys(CANONICAL_19, 5)
    assert c.short_files == [_rel("dev", "bbbbbbbb", 1, 0)]
    assert c.patient_overlap == {}
    d = census_to_dict(c)
    assert json.loads(json.dumps(d)) == d
    assert d["files_by_rate"] == {"50": 1, "64": 4}


def test_csv_label_source_counts_merged_channel_events(small_corpus: Path) -> None:
    c = run_census(str(small_corpus), label_source="csv")
    assert c.seizure_events == {"train": 3, "dev": 0, "eval": 1}
    assert c.seizure_seconds == pytest.approx({"train": 45, "dev": 0, "eval": 80})


def test_same_answer_over_fsspec_urls_with_threads(small_corpus: Path) -> None:
    local = census_to_dict(run_census(str(small_corpus)))
    fs = fsspec.filesystem("memory")
    fs.put(f"{small_corpus}/edf", "/census-mem/edf", recursive=True)
    for url in (f"file://{small_corpus}", "memory://census-mem"):
        remote = census_to_dict(run_census(url, workers=4))
        for key in ("files", "hours", "seizure_events", "seizure_seconds", "vocabulary"):
            assert remote[key] == local[key], (url, key)
        assert remote["exit_code"] == 0


def test_problems_are_reported_and_nothing_crashes(tmp_path: Path) -> None:
    root = tmp_path / "c"
    _write_recording(root, _rel("train", "aaaaaaaa", 1, 0), seconds=60, seizures=[(1, 2)])
    missing_fz = _rel("train", "aaaaaaaa", 1, 1)
    _write_recording(root, missing_fz, seconds=60, seizures=[], drop="Fz")
    no_labels = _rel("train", "aaaaaaaa", 1, 2)
    _write_recording(root, no_labels, seconds=60, seizures=[])
    (root / no_labels).with_suffix(".csv_bi").unlink()
    bad_label = _rel("dev", "bbbbbbbb", 1, 0)
    _write_recording(root, bad_label, seconds=60, seizures=[(3, 4)])
    p = (root / bad_label).with_suffix(".csv_bi")
    p.write_text(p.read_text().replace(",seiz,", ",seizure,"))
    minus_one = _rel("dev", "bbbbbbbb", 1, 1)
    _write_recording(root, minus_one, seconds=60, seizures=[])
    raw = bytearray((root / minus_one).read_bytes())
    raw[236:244] = b"-1      "
    (root / minus_one).write_bytes(bytes(raw))
    junk = _rel("eval", "cccccccc", 1, 0)
    (root / junk).parent.mkdir(parents=True)
    (root / junk).write_bytes(b"")
    stray = root / "edf/eval/cccccccc/s001_2020_01_01/01_tcp_ar/notes.edf"
    stray.write_bytes(b"x")

    c = run_census(str(root))
    reasons = dict(c.unusable)
    assert set(reasons) == {missing_fz, no_labels, bad_label, junk, str(stray.relative_to(root))}
    assert "missing channels: Fz" in reasons[missing_fz]
    assert "csv_bi" in reasons[no_labels] and "missing" in reasons[no_labels]
    assert "seizure" in reasons[bad_label]
    assert "EDF" in reasons[junk]
    assert "layout" in reasons[str(stray.relative_to(root))]
    assert c.repairs == {"records_minus_one": 1}
    assert c.files == {"train": 3, "dev": 2, "eval": 1}
    assert c.usable_files == {"train": 1, "dev": 1, "eval": 0}
    assert c.seizure_events == {"train": 1, "dev": 0, "eval": 0}
    assert c.channel_coverage["Fz"] == 4 and c.channel_coverage["Cz"] == 5
    assert c.ending.exit_code == 4
    out = io.StringIO()
    print_census(c, Console(file=out, width=200))
    text = out.getvalue()
    assert "Unusable files (5)" in text and "missing channels: Fz" in text
    assert "records_minus_one 1" in text and "exit code 4" in text


def test_patient_in_two_splits_is_an_error(small_corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "moved"
    shutil.copytree(small_corpus, root)
    src = root / "edf/train/aaaaaaab"
    src.rename(root / "edf/dev/aaaaaaab")
    moved = run_census(str(root))
    assert moved.ending.exit_code == 0  # moving a whole patient keeps splits disjoint
    # A second session of a dev patient under train makes the splits overlap.
    dup = root / "edf/train/bbbbbbbb"
    shutil.copytree(root / "edf/dev/bbbbbbbb", dup)
    for old in list(dup.rglob("bbbbbbbb_s001_*")):
        old.rename(old.with_name(old.name.replace("s001", "s009")))
    (dup / "s001_2020_01_01").rename(dup / "s009_2020_01_01")
    c = run_census(str(root))
    assert c.patient_overlap == {"bbbbbbbb": ["train", "dev"]}
    assert c.ending.exit_code == 4
    out = io.StringIO()
    print_census(c, Console(file=out, width=200))
    assert "bbbbbbbb: train, dev" in out.getvalue()


def test_progress_callback(small_corpus: Path) -> None:
    seen: list[tuple[int, int]] = []
    run_census(str(small_corpus), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]


# --------------------------------------------------------------------------- synthetic corpora


@pytest.fixture(scope="module")
def synth_clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    synth = pytest.importorskip("ictal.corpus.synth")
    root = tmp_path_factory.mktemp("synth_clean")
    return root, synth.synthesize(root, patients=6, hours=0.6, seed=3)


@pytest.fixture(scope="module")
def synth_quirks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    synth = pytest.importorskip("ictal.corpus.synth")
    root = tmp_path_factory.mktemp("synth_quirks")
    truth = synth.synthesize(root, patients=8, hours=1.0, seed=5, quirks=1.0)
    assert {f["quirk"] for f in truth["files"]} >= set(synth.QUIRKS)  # every quirk present
    return root, truth


def _truth_totals(files: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for split in ("train", "dev", "eval"):
        sel = [f for f in files if f["split"] == split]
        events = [e for f in sel for e in f["events"]]
        out[split] = {
            "files": len(sel),
            "patients": len({f["patient"] for f in sel}),
            "hours": sum(f["duration_s"] for f in sel) / 3600,
            "seizure_events": len(events),
            "seizure_seconds": sum(e["stop"] - e["start"] for e in events),
        }
    return out


def test_census_equals_ground_truth(synth_clean: tuple[Path, dict]) -> None:
    root, truth = synth_clean
    c = run_census(str(root))
    assert c.ending.exit_code == 0 and c.unusable == [] and c.repairs == {}
    for split in ("train", "dev", "eval"):
        t = truth["totals"][split]
        assert c.files[split] == c.usable_files[split] == t["files"]
        assert c.patients[split] == t["patients"]
        assert c.hours[split] == pytest.approx(t["hours"], abs=1e-5)
        assert c.seizure_events[split] == t["seizure_events"]
        assert c.seizure_seconds[split] == pytest.approx(t["seizure_seconds"], abs=1e-3)
    assert sum(c.files_by_montage.values()) == len(truth["files"])
    rates: dict[float, int] = {}
    for f in truth["files"]:
        rates[float(f["fs"])] = rates.get(float(f["fs"]), 0) + 1
    assert c.files_by_rate == dict(sorted(rates.items()))
    short = sorted(f["edf"] for f in truth["files"] if f["duration_s"] < 60)
    assert c.short_files == short


def test_quirk_corpus_every_defect_reported_or_counted(synth_quirks: tuple[Path, dict]) -> None:
    root, truth = synth_quirks
    c = run_census(str(root))
    reasons = dict(c.unusable)
    unusable = {f["edf"]: f for f in truth["files"] if f["expected"] == "unusable"}
    assert set(reasons) == set(unusable)
    keyword = {
        "flat_physical_range": "physical min == max",
        "duplicate_labels": "duplicate channel labels",
        "missing_fz_pz": "missing channels: Fz, Pz",
        "unknown_label": "xxsz",
        "overlapping_rows": "overlapping rows",
        "event_past_end": "outside the recording",
        "missing_csv_bi": "missing annotation file",
    }
    for rel, f in unusable.items():
        assert keyword[f["quirk"]] in reasons[rel], (f["quirk"], reasons[rel])
    repaired = [f["quirk"] for f in truth["files"] if f["expected"] == "repaired"]
    assert {k: v for k, v in c.repairs.items()} == {q: repaired.count(q) for q in repaired}
    usable = [f for f in truth["files"] if f["expected"] != "unusable"]
    want = _truth_totals(usable)
    for split in ("train", "dev", "eval"):
        assert c.usable_files[split] == want[split]["files"]
        assert c.hours[split] == pytest.approx(want[split]["hours"], abs=1e-5)
        assert c.seizure_events[split] == want[split]["seizure_events"]
        assert c.seizure_seconds[split] == pytest.approx(want[split]["seizure_seconds"], abs=1e-3)
    short = sorted(f["edf"] for f in usable if f["duration_s"] < 60)
    assert short and c.short_files == short
    assert c.ending.exit_code == 4


def test_patient_moved_partly_to_another_split_breaks_disjointness(
    synth_clean: tuple[Path, dict], tmp_path: Path
) -> None:
    src, truth = synth_clean
    root = tmp_path / "moved"
    shutil.copytree(src / "edf", root / "edf")
    per_patient: dict[str, list[str]] = {}
    for f in truth["files"]:
        if f["split"] == "train":
            per_patient.setdefault(f["patient"], []).append(f["edf"])
    patient, rels = next((p, r) for p, r in sorted(per_patient.items()) if len(r) > 1)
    old = root / rels[0]
    new = root / rels[0].replace("edf/train/", "edf/dev/", 1)
    new.parent.mkdir(parents=True)
    for suffix in (".edf", ".csv", ".csv_bi"):
        old.with_suffix(suffix).rename(new.with_suffix(suffix))
    c = run_census(str(root))
    assert c.patient_overlap == {patient: ["train", "dev"]}
    assert c.unusable == [] and c.ending.exit_code == 4
