"""`ictal sweep --evaluate` over the model zoo on one cache: every run scored on dev and on
eval at dev's points, one comparison table whose numbers are the runs' own scores, a resume
that scores nothing twice, and a sweep directory that cannot point the scoring elsewhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_ictal, settings, small_built_corpus

FAST = [
    "windows.length_s=8",
    "windows.stride_s=4",
    "loader.batch_size=4",
    "loader.num_workers=0",
    "train.patience=null",
    "train.epochs=2",
    "train.steps_per_epoch=4",
    "train.heartbeat_s=0.3",
    "sweep.ramp_steps=2",
    "sweep.poll_s=0.2",
]
MODELS = (
    "{name: conv_bigru, params: {width: 8, gru_hidden: 8}},"
    "{name: tcn_ssm, params: {width: 8, tcn_depth: 1, ssm_layers: 1, d_state: 4}}"
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, Path]:
    tmp = small_built_corpus(tmp_path_factory.mktemp("compare"), 8, FAST)
    res = run_ictal("sweep", "--name", "zoo", "--vary", f"model={MODELS}", "--evaluate",
                    "--parallel", "1", *settings(tmp, "runs", FAST))  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "sweep comparison" in res.stdout and "eval SzCORE" in res.stdout
    return tmp, tmp / "runs" / "zoo"


def _rows(sweep: Path) -> list[dict]:
    return json.loads((sweep / "comparison.json").read_text())["rows"]


def test_every_run_is_a_detector_per_budget_with_its_own_scores(swept):
    _, sweep = swept
    rows = _rows(sweep)
    assert {r["model"] for r in rows} == {"conv_bigru", "tcn_ssm"}
    for r in rows:
        (run,) = [p for p in (sweep / r["run"]).iterdir() if (p / "config.yaml").is_file()]
        dev = json.loads((run / "eval-best-dev" / "scores.json").read_text())
        ev = json.loads((run / "eval-best-eval" / "scores.json").read_text())
        assert ev["split"] == "eval" and ev["operating_points"]["chosen_on"] == "dev"
        (point,) = [p for p in ev["operating_points"]["points"]["ovlp"]
                    if p["target_fa_per_24h"] == r["budget_fa24h"]]  # fmt: skip
        (tuned,) = [p for p in dev["operating_points"]["points"]["ovlp"]
                    if p["target_fa_per_24h"] == r["budget_fa24h"]]  # fmt: skip
        assert point["threshold"] == tuned["threshold"] == r["threshold"]  # dev's, unchanged
        assert r["eval"]["ovlp"]["counts"] == point["counts"]
        assert r["eval"]["ovlp"]["ci95"]["sensitivity"] == point["ci95"]["sensitivity"]
        assert r["dev"]["ovlp"]["counts"] == tuned["counts"]
        assert r["auroc_eval"] == ev["auroc"] and r["auroc_dev"] == dev["auroc"]
        meta = json.loads((run / "run.json").read_text())
        assert r["parameters"] == meta["model_parameters"] > 0
        assert r["samples_per_s"] > 0 and r["peak_rss_gb"] > 0
    budgets = {r["budget_fa24h"] for r in rows}
    assert len(rows) == 2 * len(budgets), "one row per model and budget"


def test_a_resumed_sweep_scores_nothing_twice(swept):
    tmp, sweep = swept
    scores = sorted(sweep.rglob("scores.json"))
    stamps = [p.stat().st_mtime_ns for p in scores]
    res = run_ictal("sweep", "--resume", "zoo", "--evaluate", *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in scores] == stamps
    assert _rows(sweep) and "sweep comparison" in res.stdout


def test_a_scores_file_of_the_wrong_kind_is_left_out_not_crashed_on(swept):
    """The scores a table shows are files too: values of the wrong kind (the checkpoint's
    sha256 kept, so they are not scored again) are not shown, and nothing crashes."""
    tmp, sweep = swept
    slot = next(p for p in sweep.iterdir() if p.name.startswith("r001"))
    (run,) = [p for p in slot.iterdir() if (p / "config.yaml").is_file()]
    path = run / "eval-best-eval" / "scores.json"
    doc = json.loads(path.read_text())
    doc["auroc"] = "0.99"
    for point in doc["operating_points"]["points"]["ovlp"]:
        point["counts"]["sensitivity"] = "all of them"
        point["ci95"]["sensitivity"] = [0.1, "x"]
    path.write_text(json.dumps(doc))
    res = run_ictal("sweep", "--resume", "zoo", "--evaluate", *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "all of them" not in res.stdout
    rows = [r for r in _rows(sweep) if r["model"] == "tcn_ssm"]
    assert rows and all(r["auroc_eval"] is None for r in rows)
    assert all("sensitivity" not in r["eval"]["ovlp"]["counts"] for r in rows)
    assert all("sensitivity" not in r["eval"]["ovlp"]["ci95"] for r in rows)


def test_a_linked_run_directory_is_never_scored(swept, tmp_path):
    tmp, sweep = swept
    slot = next(p for p in sweep.iterdir() if p.name.startswith("r000"))
    (run,) = [p for p in slot.iterdir() if (p / "config.yaml").is_file()]
    outside = tmp_path / "outside-run"
    run.rename(outside)
    (slot / run.name).symlink_to(outside, target_is_directory=True)
    for scored in outside.glob("eval-best-*"):
        shutil.rmtree(scored)
    res = run_ictal("sweep", "--resume", "zoo", "--evaluate", *settings(tmp, "runs", FAST))
    assert res.returncode == 4, res.stdout[-2000:] + res.stderr[-2000:]
    assert "r000" in res.stderr and "no run directory" in res.stderr
    assert not list(outside.glob("eval-best-*")), "scored through a link, outside the sweep"
    assert {r["model"] for r in _rows(sweep)} == {"tcn_ssm"}, "the other run still compared"
