"""`ictal synth` and `ictal census` through the real command line."""

from __future__ import annotations

import json


def test_synth_then_census_agree_with_ground_truth(ictal, tmp_path):
    out = tmp_path / "corpus"
    res = ictal("synth", str(out), "--patients", "4", "--hours", "0.4", "--seed", "5")
    assert res.returncode == 0, res.stderr
    truth = json.loads((out / "ground_truth.json").read_text())
    res = ictal("census", str(out), "--json", str(tmp_path / "census.json"))
    assert res.returncode == 0, res.stderr
    census = json.loads((tmp_path / "census.json").read_text())
    text = json.dumps(census)
    assert str(len(truth["files"])) in text
    assert "train" in res.stdout and "patients" in res.stdout


def test_census_of_a_quirk_corpus_exits_4_and_names_files(ictal, tmp_path):
    out = tmp_path / "corpus"
    res = ictal("synth", str(out), "--patients", "9", "--hours", "0.5", "--seed", "3",
                "--quirks", "0.8")  # fmt: skip
    assert res.returncode == 0, res.stderr
    truth = json.loads((out / "ground_truth.json").read_text())
    res = ictal("census", str(out))
    assert res.returncode == 4
    for f in truth["files"]:
        if f["expected"] == "unusable":
            assert f["edf"].rsplit("/", 1)[-1].removesuffix(".edf") in res.stdout


def test_census_of_a_missing_corpus_is_clear(ictal, tmp_path):
    res = ictal("census", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert "nope" in res.stderr and "TUSZ-layout" in res.stderr
