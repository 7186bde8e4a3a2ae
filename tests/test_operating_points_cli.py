"""Operating points chosen explicitly and recorded, through the real command line: detect and
export at ``--operating-point SCORER@BUDGET``, ``--threshold`` or the documented default;
``summary.json`` and the sidecar say which; evaluate exports at each point asked for, and
``ictal score`` on each export folder gives evaluate's own numbers at that point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_ictal, settings, tiny_training
from ictal.corpus.synth import synthesize
from ictal.events.counts import EventCounts
from ictal.events.hypotheses import hypothesis_csv_bi

TARGETS = "evaluate.targets_fa_per_24h=[1000, 100, 10]"
FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=3", TARGETS)
NUMBERS = ("hits", "misses", "false_alarms", "n_ref")


def _sets(tmp: Path, *extra: str) -> list[str]:
    return settings(tmp, "runs", FAST, *extra)


def _ok(res: Any) -> Any:
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A realistic little corpus, a barely trained run (thresholds spread over the budgets),
    its dev operating points and an eval evaluation at them exporting every scorer's points."""
    tmp = tmp_path_factory.mktemp("points")
    synthesize(tmp / "corpus", patients=6, hours=1.0, seed=5, difficulty="realistic")
    _ok(run_ictal("build", "--workers", "2", *_sets(tmp)))
    _ok(run_ictal("train", *_sets(tmp)))
    (run,) = (tmp / "runs").iterdir()
    ckpt = run / "checkpoints" / "last.pt"
    _ok(run_ictal("evaluate", str(ckpt), "--split", "dev", "--export-point", "ovlp,taes,szcore",
                  *_sets(tmp)))  # fmt: skip
    ops = run / "eval-last-dev" / "operating_points.json"
    _ok(run_ictal("evaluate", str(ckpt), "--split", "eval", "--operating-points", str(ops),
                  "--export-point", "ovlp", "--export-point", "taes,szcore",
                  *_sets(tmp)))  # fmt: skip
    return {"tmp": tmp, "ckpt": ckpt, "ops": ops, "dev": run / "eval-last-dev",
            "eval": run / "eval-last-eval"}  # fmt: skip


def _scores(where: Path) -> dict[str, Any]:
    return json.loads((where / "scores.json").read_text())


def _points(ops: Path) -> dict[str, dict[float, float | None]]:
    doc = json.loads(ops.read_text())
    return {n: {r["target_fa_per_24h"]: r["threshold"] for r in rows}
            for n, rows in doc["points"].items()}  # fmt: skip


def _score(ref: Path, folder: Path, out: Path) -> dict[str, Any]:
    """``ictal score REF FOLDER --json`` with evaluate's three scorers."""
    _ok(run_ictal("score", str(ref), str(folder), "--json", str(out),
                  "--scorers", "ovlp,taes,szcore"))  # fmt: skip
    return json.loads(out.read_text())


def _cache_references(scores: dict[str, Any], where: Path) -> Path:
    """The references evaluate scored against (the cache's, seizure edges on whole samples)
    written as .csv_bi: the corpus's own files may put an edge up to one sample away."""
    for rec in scores["recordings"]:
        events = [tuple(e) for e in rec["ref_events"]]
        text = hypothesis_csv_bi(rec["id"], rec["duration_s"], events)
        (where / f"{rec['id']}.csv_bi").parent.mkdir(parents=True, exist_ok=True)
        (where / f"{rec['id']}.csv_bi").write_text(text)
    return where


def _same(got: dict[str, Any], mine: dict[str, Any], rel: float = 1e-9) -> None:
    assert [got[k] for k in NUMBERS] == pytest.approx([mine[k] for k in NUMBERS], rel=rel)
    assert got["duration_s"] == pytest.approx(mine["duration_s"])


@pytest.mark.slow
@pytest.mark.parametrize("split", ["dev", "eval"])
def test_score_on_each_export_folder_gives_evaluates_numbers_at_that_point(trained, split):
    tmp, scores = trained["tmp"], _scores(trained[split])
    table = {(n, r["target_fa_per_24h"]): r for n, rows in
             scores["operating_points"]["points"].items() for r in rows}  # fmt: skip
    exports = scores["exports"]["points"]
    tuned = {(n, b) for n, per in _points(trained["ops"]).items()
             for b, t in per.items() if t is not None}  # fmt: skip
    named = {(p["operating_point"]["scorer"], p["operating_point"]["budget_fa24h"])
             for p in exports}  # fmt: skip
    assert tuned <= named  # every tuned point of the three scorers has its folder
    assert len({p["operating_point"]["threshold"] for p in exports}) > 1  # not one threshold
    refs = _cache_references(scores, tmp / f"refs-{split}")
    corpus = tmp / "corpus" / "edf" / split
    sweep = scores["sweep"]
    for k, point in enumerate(exports):
        op = point["operating_point"]
        folder = trained[split] / point["dir"]
        assert folder.name == f"{op['scorer']}@{op['budget_fa24h']:g}_t{op['threshold']:g}"
        got = _score(refs, folder / "csv_bi", tmp / f"{split}-{k}-csv_bi.json")
        tsv = _score(corpus, folder / "szcore", tmp / f"{split}-{k}-szcore.json")
        files = _score(corpus, folder / "csv_bi", tmp / f"{split}-{k}-corpus.json")
        for name in ("ovlp", "taes", "szcore"):
            _same(got[name], point["scores"][name])  # exactly evaluate's numbers
            # against the corpus's own annotations: counts of events the same, TAES's
            # fractions within the sample rounding of the cache's seizure edges
            _same(files[name], point["scores"][name], 1e-9 if name != "taes" else 1e-3)
            _same(tsv[name], files[name], 1e-9 if name != "taes" else 1e-3)
        # the table's row for that point is the same count of the same events
        row = table[(op["scorer"], op["budget_fa24h"])]
        assert row["threshold"] == op["threshold"]
        _same(got[op["scorer"]], row["counts"])
        if split == "dev":  # chosen here: every scorer at that threshold is on the sweep
            at = sweep["thresholds"].index(op["threshold"])
            assert op["dev_fa24h"] == pytest.approx(got[op["scorer"]]["fa_per_24h"])
            for name in ("ovlp", "taes", "szcore"):
                curve = sweep["scorers"][name]
                assert got[name]["fa_per_24h"] == pytest.approx(curve["fa_per_24h"][at])
                assert got[name]["sensitivity"] == pytest.approx(curve["sensitivity"][at])


@pytest.mark.slow
def test_detect_records_the_point_it_used_default_named_or_threshold(trained):
    tmp, ckpt, points = trained["tmp"], trained["ckpt"], _points(trained["ops"])
    edf = str(tmp / "corpus" / "edf" / "eval")
    runs = {
        "default": [],
        "named": ["--operating-point", "taes@100"],
        "threshold": ["--threshold", "0.37"],
        "configured": ["--set", "detect.operating_point=ovlp@50"],  # never tuned: fallback
    }
    summaries, stderr = {}, {}
    for key, extra in runs.items():
        res = _ok(run_ictal("detect", str(ckpt), edf, "--out", str(tmp / f"det-{key}"),
                            "--workers", "1", *extra, *_sets(tmp)))  # fmt: skip
        summaries[key] = json.loads((tmp / f"det-{key}" / "summary.json").read_text())
        stderr[key] = res.stderr
        assert "operating point" in res.stdout
    # the fallback rule: the largest tuned budget below 50 with a threshold, said once
    below = max(b for b, t in points["ovlp"].items() if b < 50 and t is not None)
    fallback = summaries["configured"]["operating_point"]
    assert (fallback["scorer"], fallback["budget_fa24h"]) == ("ovlp", below)
    assert (
        stderr["configured"].count(
            f"detect.operating_point ovlp@50 has no threshold here; using ovlp@{below:g} instead"
        )
        == 1
    )
    default = summaries["default"]["operating_point"]
    assert (default["scorer"], default["budget_fa24h"]) == ("ovlp", 10.0) or points["ovlp"][
        10.0
    ] is None  # the documented default, unless the run has no threshold for it
    assert default["threshold"] == points[default["scorer"]][default["budget_fa24h"]]
    assert default == _scores(trained["eval"])["exports"]["operating_point"]
    named = summaries["named"]["operating_point"]
    assert (named["scorer"], named["budget_fa24h"]) == ("taes", 100.0)
    assert named["threshold"] == points["taes"][100.0]
    dev_rows = {r["target_fa_per_24h"]: r for r in
                json.loads(trained["ops"].read_text())["points"]["taes"]}  # fmt: skip
    dev = EventCounts(**dev_rows[100.0]["counts"])
    assert named["dev_fa24h"] == pytest.approx(dev.fa_per_24h)
    assert named["dev_sensitivity"] == pytest.approx(dev.sensitivity)
    assert summaries["threshold"]["operating_point"] == {
        "scorer": None, "budget_fa24h": None, "threshold": 0.37,
        "dev_sensitivity": None, "dev_fa24h": None,
    }  # fmt: skip


@pytest.mark.slow
def test_export_records_the_point_in_its_sidecar_and_detect_model_keeps_it(trained):
    tmp, ckpt, points = trained["tmp"], trained["ckpt"], _points(trained["ops"])
    out = tmp / "exported"
    _ok(run_ictal("export", str(ckpt), "--out", str(out), "--operating-point", "szcore@1000",
                  *_sets(tmp)))  # fmt: skip
    op = json.loads((out / "ictal-model.json").read_text())["operating_point"]
    assert (op["scorer"], op["budget_fa24h"], op["tuned"]) == ("szcore", 1000.0, True)
    assert op["threshold"] == points["szcore"][1000.0] and op["dev_sensitivity"] is not None
    det = tmp / "det-model"
    _ok(run_ictal("detect", "--model", str(out), str(tmp / "corpus" / "edf" / "eval"),
                  "--out", str(det), "--workers", "1", *_sets(tmp)))  # fmt: skip
    recorded = json.loads((det / "summary.json").read_text())["operating_point"]
    assert recorded == {k: op[k] for k in recorded}
    # another point needs the file the points are in
    res = run_ictal("detect", "--model", str(out), str(tmp / "corpus" / "edf" / "eval"),
                    "--out", str(tmp / "det-x"), "--operating-point", "ovlp@100",
                    *_sets(tmp))  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: --operating-point ovlp@100: the export {out} holds szcore@1000 only; pass "
        "--operating-points FILE (the run's dev operating_points.json) too, or --threshold T"
    )
    _ok(run_ictal("detect", "--model", str(out), str(tmp / "corpus" / "edf" / "eval"),
                  "--out", str(tmp / "det-y"), "--operating-point", "ovlp@100",
                  "--operating-points", str(trained["ops"]), "--workers", "1",
                  *_sets(tmp)))  # fmt: skip
    again = json.loads((tmp / "det-y" / "summary.json").read_text())["operating_point"]
    assert (again["scorer"], again["threshold"]) == ("ovlp", points["ovlp"][100.0])


BAD = [
    (["detect", "{ckpt}", "{edf}", "--out", "{tmp}/bad", "--operating-point", "epoch@10"],
     "error: --operating-point epoch@10: no scorer 'epoch' was tuned; the points that exist: "
     "ovlp@1000 (t="),
    (["detect", "{ckpt}", "{edf}", "--out", "{tmp}/bad", "--operating-point", "ovlp@3"],
     "error: --operating-point ovlp@3: ovlp was never tuned for 3 FA/24h; the points that "
     "exist: ovlp@1000 (t="),
    (["export", "{ckpt}", "--out", "{tmp}/bad", "--operating-point", "ovlp10"],
     "error: --operating-point 'ovlp10' is not SCORER@BUDGET; give e.g. ovlp@10"),
    (["detect", "{ckpt}", "{edf}", "--out", "{tmp}/bad", "--threshold", "0.5",
      "--operating-point", "ovlp@10"],
     "error: give --threshold or an operating point (--operating-point, --operating-points), "
     "not both"),
    (["detect", "{ckpt}", "{edf}", "--out", "{tmp}/bad", "--set", "detect.operating_point=ovlp"],
     "detect.operating_point = 'ovlp': Value error, give SCORER@BUDGET, e.g. ovlp@10"),
    (["evaluate", "{ckpt}", "--split", "eval", "--out", "{tmp}/bad", "--operating-points",
      "{ops}", "--export-point", "taes@3"],
     "error: --export-point (evaluate.export_points) taes@3: that point is never tuned; tuned: "
     "scorers ovlp, taes, szcore; budgets 1000, 100, 10 FA/24h"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("args", "line"), BAD)
def test_a_bad_point_is_one_line_and_exit_2(trained, args, line):
    tmp = trained["tmp"]
    fill = {"ckpt": trained["ckpt"], "edf": tmp / "corpus" / "edf" / "eval", "tmp": tmp,
            "ops": trained["ops"]}  # fmt: skip
    res = run_ictal(*[a.format(**fill) for a in args], *_sets(tmp))
    assert res.returncode == 2, res.stderr[-2000:]
    assert line in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp / "bad").exists()  # refused before anything was written
