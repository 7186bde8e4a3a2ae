"""`ictal synth --format bids`: the same plans and samples as the TUSZ layout, written as a
BIDS-EEG dataset in the SzCORE convention; `--line-freq` for both formats."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import tree_digest
from ictal.corpus.annotations import read_annotation, seizure_events
from ictal.corpus.bids import read_events
from ictal.corpus.census import run_census
from ictal.corpus.channels import CANONICAL_19, normalise_label, select_channels
from ictal.corpus.edf import read_eeg
from ictal.corpus.synth import FORMATS, LINE_FREQS, synthesize
from ictal.corpus.synth.bids import EVENT_COLUMNS, EVENT_TYPES

ARGS = {"patients": 4, "hours": 0.5, "seed": 7}
LAYOUT = re.compile(
    r"^(sub-[a-z]{8})/(ses-\d{2})/eeg/\1_\2_task-szMonitoring_(run-\d{2})_(eeg\.edf|eeg\.json"
    r"|events\.tsv)$"
)
SIDECAR_KEYS = {
    "TaskName", "SamplingFrequency", "PowerLineFrequency", "EEGReference", "EEGChannelCount",
    "RecordingDuration", "RecordingType", "EEGPlacementScheme",
}  # fmt: skip

Corpus = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Corpus]:
    """The same seed written in both formats."""
    tusz, bids = tmp_path_factory.mktemp("tusz"), tmp_path_factory.mktemp("bids")
    return (tusz, synthesize(tusz, **ARGS)), (bids, synthesize(bids, **ARGS, format="bids"))


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_same_samples_as_the_tusz_twin(pair: tuple[Corpus, Corpus]) -> None:
    (troot, _), (broot, truth) = pair
    n_ecg = 0
    for f in truth["files"]:
        bids_path, tusz_path = str(broot / f["edf"]), str(troot / f["tusz"]["edf"])
        b, t = read_eeg(bids_path), read_eeg(tusz_path)
        assert b.channels == t.channels == CANONICAL_19
        assert b.fs == t.fs == f["fs"] and b.duration_s == t.duration_s == f["duration_s"]
        assert np.array_equal(b.data, t.data), f["edf"]
        if "ECG" in f["signals"]:
            n_ecg += 1
            ecg, ekg = read_eeg(bids_path, ["ECG"]), read_eeg(tusz_path, ["EKG1"])
            assert np.array_equal(ecg.data, ekg.data)
    assert n_ecg > 0


def test_same_seizure_intervals_as_the_csv_bi(pair: tuple[Corpus, Corpus]) -> None:
    (troot, ttruth), (broot, truth) = pair
    twins = {f["edf"]: f for f in ttruth["files"]}
    n_seizures = n_background = 0
    for f in truth["files"]:
        tsv = broot / f["edf"].replace("_eeg.edf", "_events.tsv")
        assert tsv.read_text().split("\n", 1)[0] == "\t".join(EVENT_COLUMNS)
        rows = _table(tsv)
        for r in rows:
            assert all(re.fullmatch(r"\d+\.\d{2}", r[k]) for k in ("onset", "duration"))
            assert r["channels"] == "n/a" and r["recordingDuration"] == f"{f['duration_s']:.2f}"
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", r["dateTime"])
        twin = troot / f["tusz"]["edf"][: -len(".edf")]
        bi, _ = seizure_events(read_annotation(f"{twin}.csv_bi"), edf_duration=f["duration_s"])
        typed, _ = seizure_events(read_annotation(f"{twin}.csv"), edf_duration=f["duration_s"])
        if not bi:
            n_background += 1
            assert [(r["onset"], r["eventType"], r["confidence"]) for r in rows] == [
                ("0.00", "bckg", "n/a")
            ]
            assert float(rows[0]["duration"]) == f["duration_s"]
            assert f["events"] == []
            continue
        n_seizures += len(bi)
        assert len(rows) == len(bi) == len(f["events"])
        for r, e, c, g in zip(rows, bi, typed, f["events"], strict=True):
            onset, stop = float(r["onset"]), float(r["onset"]) + float(r["duration"])
            assert onset == pytest.approx(e.start, abs=0.005 + 1e-9)
            assert stop == pytest.approx(e.stop, abs=0.01 + 1e-9)
            assert r["eventType"] == EVENT_TYPES[c.label] == g["label"]
            assert (g["start"], g["stop"]) == (onset, pytest.approx(stop, abs=1e-9))
        read = read_events(str(tsv))  # the BIDS reader sees the same intervals
        assert [x for w in read.rows for x in (w.start, w.stop)] == pytest.approx(
            [x for e in f["events"] for x in (e["start"], e["stop"])], abs=1e-9
        )
        assert twins[f["tusz"]["edf"]]["events"] == [
            {"start": e.start, "stop": e.stop, "label": c.label}
            for e, c in zip(bi, typed, strict=True)
        ]
    assert n_seizures > 0 and n_background > 0


def test_layout_dataset_files_and_sidecars(pair: tuple[Corpus, Corpus]) -> None:
    (_, ttruth), (root, truth) = pair
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    top = {"dataset_description.json", "README", "participants.tsv", "participants.json",
           "events.json", "ground_truth.json", ".bidsignore"}  # fmt: skip
    assert top <= files
    recordings = files - top
    assert recordings and all(LAYOUT.match(p) for p in recordings), sorted(recordings)
    assert len(recordings) == 3 * len(truth["files"]) == 3 * len(ttruth["files"])
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.8.0" and desc["DatasetType"] == "raw" and desc["Name"]
    (gen,) = desc["GeneratedBy"]
    assert gen["Name"] == "ictal synth"
    assert "--format bids --patients 4 --hours 0.5 --seed 7" in gen["Description"]
    participants = _table(root / "participants.tsv")
    assert list(participants[0]) == ["participant_id", "age", "sex", "split"]
    assert {r["participant_id"]: r["split"] for r in participants} == {
        f"sub-{pid}": p["split"] for pid, p in ttruth["patients"].items()
    }
    assert set(json.loads((root / "participants.json").read_text())) == set(participants[0])
    assert set(json.loads((root / "events.json").read_text())) == set(EVENT_COLUMNS)
    sessions: dict[str, set[str]] = {}
    runs: dict[tuple[str, str], set[str]] = {}
    for f in truth["files"]:
        m = LAYOUT.match(f["edf"])
        assert m is not None and (m[1], m[2], m[3]) == (f["patient"], f["session"], f["token"])
        sessions.setdefault(m[1], set()).add(m[2])
        runs.setdefault((m[1], m[2]), set()).add(m[3])
        side = json.loads((root / f["edf"].replace(".edf", ".json")).read_text())
        assert set(side) >= SIDECAR_KEYS
        assert side["TaskName"] == "szMonitoring" and side["EEGPlacementScheme"] == "10-20"
        assert side["SamplingFrequency"] == f["fs"] and side["PowerLineFrequency"] == 60
        assert side["RecordingDuration"] == f["duration_s"] and side["EEGChannelCount"] == 19
        assert side["TUHSubject"] == f["tusz"]["patient"] and side["TUHSplit"] == f["split"]
    # numbered as epilepsy2bids numbers TUSZ: sessions from 00 per subject, runs from 01
    for got in sessions.values():
        assert got == {f"ses-{i:02d}" for i in range(len(got))}
    for got in runs.values():
        assert got == {f"run-{i:02d}" for i in range(1, len(got) + 1)}
    assert any(len(v) > 1 for v in sessions.values())


def test_channel_spellings_vary_by_subject(pair: tuple[Corpus, Corpus]) -> None:
    _, (_, truth) = pair
    by_subject: dict[str, set[tuple[str, ...]]] = {}
    for f in truth["files"]:
        labels = f["signals"]
        by_subject.setdefault(f["patient"], set()).add(tuple(labels))
        assert {normalise_label(lab) for lab in labels} <= {*CANONICAL_19, "ECG"}
        assert select_channels(labels).ok
        assert len(labels) == 19 + ("ECG" in labels)
        assert labels[-1] != "ECG" and labels[0] != "ECG"  # among the EEG channels
    assert all(len(v) == 1 for v in by_subject.values())  # one spelling per subject
    every = {lab for f in truth["files"] for lab in f["signals"]}
    assert {"Fp1-Avg", "FP1-Avg", "T7-Avg", "P8-Avg", "T3-Avg", "ECG"} <= every


def test_ground_truth_keeps_its_keys(pair: tuple[Corpus, Corpus]) -> None:
    (_, ttruth), (root, truth) = pair
    assert truth == json.loads((root / "ground_truth.json").read_text())
    assert truth["format"] == truth["args"]["format"] == "bids" and "format" not in ttruth
    assert set(truth) == set(ttruth) | {"format"}
    assert set(truth["files"][0]) == set(ttruth["files"][0]) | {"tusz"}
    assert set(truth["patients"]) == {f"sub-{pid}" for pid in ttruth["patients"]}
    for split in ("train", "dev", "eval", "all"):
        b, t = truth["totals"][split], ttruth["totals"][split]
        assert {k: v for k, v in b.items() if k != "seizure_seconds"} == {
            k: v for k, v in t.items() if k != "seizure_seconds"
        }
        assert b["seizure_seconds"] == pytest.approx(
            t["seizure_seconds"], abs=0.01 * t["seizure_events"] + 1e-6
        )
    census = run_census(str(root))  # the BIDS reader agrees with the ground truth
    assert census.ending.exit_code == 0 and census.unusable == []
    for split in ("train", "dev", "eval"):
        assert census.files[split] == truth["totals"][split]["files"]
        assert census.seizure_events[split] == truth["totals"][split]["seizure_events"]


@pytest.mark.parametrize("difficulty", ["easy", "realistic"])
def test_line_freq_moves_the_mains_and_the_sidecar_says_it(tmp_path: Path, difficulty: str) -> None:
    small = {"patients": 1, "hours": 0.05, "seed": 3, "difficulty": difficulty}
    power = {}
    for hz in LINE_FREQS:
        out = tmp_path / f"{hz}"
        truth = synthesize(out, **small, format="bids", line_freq=hz)
        assert truth.get("line_freq", 60) == hz
        f = truth["files"][0]
        side = json.loads((out / f["edf"].replace(".edf", ".json")).read_text())
        assert side["PowerLineFrequency"] == hz
        rec = read_eeg(str(out / f["edf"]))
        spectrum = (np.abs(np.fft.rfft(rec.data, axis=1)) ** 2).mean(axis=0)
        freqs = np.fft.rfftfreq(rec.data.shape[1], 1.0 / rec.fs)
        power[hz] = {k: spectrum[np.argmin(np.abs(freqs - k))] for k in LINE_FREQS}
    assert power[50][50] > 20 * power[50][60] and power[60][60] > 20 * power[60][50]
    again = synthesize(tmp_path / "again", **small, format="bids", line_freq=50)
    assert again == synthesize(tmp_path / "again2", **small, format="bids", line_freq=50)
    assert tree_digest(tmp_path / "again") == tree_digest(tmp_path / "50")


def test_synthesize_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--format tusz"):
        synthesize(tmp_path, patients=2, hours=0.1, seed=0, quirks=0.5, format="bids")
    with pytest.raises(ValueError, match="format must be one of tusz, bids"):
        synthesize(tmp_path, patients=2, hours=0.1, seed=0, format="edf")
    with pytest.raises(ValueError, match="50, 60"):
        synthesize(tmp_path, patients=2, hours=0.1, seed=0, line_freq=55)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_format_and_line_freq(ictal: Any, tmp_path: Path) -> None:
    from ictal.cli import CorpusFormat, LineFreq

    assert [f.value for f in CorpusFormat] == list(FORMATS)
    assert [int(v.value) for v in LineFreq] == list(LINE_FREQS)
    out = tmp_path / "corpus"
    res = ictal("synth", str(out), "--format", "bids", "--patients", "3", "--hours", "0.1",
                "--line-freq", "50")  # fmt: skip
    assert res.returncode == 0, res.stderr
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["format"] == "bids" and truth["line_freq"] == 50
    assert (out / "dataset_description.json").is_file()
    res = ictal("synth", str(tmp_path / "a"), "--format", "edf", "--line-freq", "55")
    assert res.returncode == 2 and "--format" in res.stderr and "tusz" in res.stderr
    res = ictal("synth", str(tmp_path / "b"), "--format", "bids", "--quirks", "0.3")
    assert res.returncode == 2 and "--quirks" in res.stderr and "--format tusz" in res.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
