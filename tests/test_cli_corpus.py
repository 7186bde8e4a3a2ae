"""`ictal synth` and `ictal census` through the real command line."""

from __future__ import annotations

import json

import pytest


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


@pytest.mark.slow
def test_train_and_evaluate_refuse_without_cache_exit_3_naming_the_fix(ictal, tmp_path):
    corpus = tmp_path / "corpus"
    assert ictal("synth", str(corpus), "--patients", "3", "--hours", "0.2").returncode == 0
    cfg = tmp_path / "my.yaml"
    cfg.write_text(f"corpus: {{root: {corpus}}}\ncache: {{root: {tmp_path / 'cache'}}}\n"
                   f"runs: {{root: {tmp_path / 'runs'}}}\n")  # fmt: skip
    res = ictal("train", "-c", str(cfg))
    assert res.returncode == 3
    assert f"ictal build -c {cfg}" in res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"not used: preflight comes first")
    res = ictal("evaluate", str(ckpt), "-c", str(cfg), "--split", "dev")
    assert res.returncode == 3
    assert f"ictal build -c {cfg}" in res.stderr
