"""Result tables that cannot be misread: one row per detector with its threshold, units on
every rate, 95 % intervals, per-patient rows that add up to the pooled ones, onset latencies,
the same in scores.json, the console and the report (dev beside eval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, run_ictal, set_args
from ictal.cache.manifest import CacheView
from ictal.config_file import load_config
from ictal.evaluate.evaluation import EvaluationResult, evaluate_view
from ictal.evaluate.latency import latency_summary, onset_latencies
from ictal.evaluate.report import write_report
from ictal.evaluate.summary import summary_table
from ictal.evaluate.uncertainty import clopper_pearson, garwood
from ictal.events.scorers import LABELS

FS = 16.0
SECONDS = 600
# (patient, onset s, detection delay s: the model's signal starts this long after the onset)
DEV = [("pa", 100, 0.0), ("pa", 200, 5.0), ("pb", 150, -4.0), ("pb", 300, 2.5), ("pc", 120, 8.0)]
EVAL = [("qa", 100, 1.0), ("qa", 250, -2.0), ("qb", 400, 6.0), ("qc", 50, 3.0)]


class BurstModel(nn.Module):
    """p(seizure) = sigmoid(12 x - 6) per output step: ~1 where the signal is 1, ~0 at 0."""

    output_stride = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, w = x.shape
        return 12.0 * x.mean(1)[:, : w // 4 * 4].reshape(b, -1, 4).mean(-1) - 6.0


def make_view(root: Path) -> CacheView:
    """Recordings of a seizure (30 s) whose signal starts ``delay`` s after its onset, some
    with a weaker artefact (a false alarm at low thresholds); ids TUSZ-style per patient."""
    rows = []
    for split, plan in (("dev", DEV), ("eval", EVAL)):
        for k, (patient, onset, delay) in enumerate(plan):
            x = np.zeros((int(FS * SECONDS), 1), np.float32)
            x[int(FS * (onset + delay)) : int(FS * (onset + 30))] = 1.0
            if k % 2:
                x[int(FS * 500) : int(FS * 510)] = 0.6  # p 0.77
            rid = f"{patient}_s001_t00{k}"
            np.save(root / f"{rid}.npy", x)
            seizure = [int(FS * onset), int(FS * (onset + 30))]
            rows.append({"id": rid, "split": split, "n_samples": len(x), "array": f"{rid}.npy",
                         "seizures": [seizure], **({"patient": patient} if k else {})})  # fmt: skip
    return CacheView(root, {"key": "f" * 64, "fs": FS, "channels": ["Cz"]}, rows)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EvaluationResult, ...]:
    """dev (points chosen there) and eval (dev's points applied) in one run directory."""
    tmp = tmp_path_factory.mktemp("tables")
    view, run = make_view(tmp), tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "best.pt"
    ckpt.write_bytes(b"weights")
    meta = {"output_stride": 4, "window": int(FS * 40), "run_id": "run-t", "n_channels": 1,
            "fs": FS}  # fmt: skip
    cfg = load_config(None, [])

    def run_on(split: str, out: str, **kw: Any) -> EvaluationResult:
        return evaluate_view(cfg, view, BurstModel(), meta, checkpoint=ckpt, split=split,
                             out=run / out, **kw)  # fmt: skip

    dev = run_on("dev", "eval-best-dev")
    frozen = dev.operating_points_path
    ev = run_on("eval", "eval-best-eval", operating_points=frozen)
    again = run_on("eval", "eval-again", operating_points=frozen)
    return run, dev, ev, again


def point_rows(scores: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, r) for n, rows in scores["operating_points"]["points"].items() for r in rows]


def test_per_patient_rows_add_up_to_the_pooled_counts(evaluated: tuple) -> None:
    _, dev, ev, _ = evaluated
    for res, plan in ((dev, DEV), (ev, EVAL)):
        s = res.scores
        patients = s["per_patient"]
        assert [p["patient"] for p in patients] == sorted({p for p, _, _ in plan})
        assert (
            sum(p["n_reference_events"] for p in patients) == s["n_reference_events"] == len(plan)
        )
        assert sum(p["total_duration_s"] for p in patients) == pytest.approx(s["total_duration_s"])
        for name, row in point_rows(s):
            if row["threshold"] is None:
                continue
            per = [next(r for r in p["points"][name] if r["target_fa_per_24h"] ==
                        row["target_fa_per_24h"])["counts"] for p in patients]  # fmt: skip
            for key in ("hits", "misses", "false_alarms", "duration_s"):
                assert sum(c[key] for c in per) == pytest.approx(row["counts"][key]), (name, key)
        for name, c in s["default"]["scores"].items():
            if name != "szcore_samples":
                assert sum(p["default"][name]["hits"] for p in patients) == c["hits"]


def test_intervals_are_exact_and_bootstrapped_and_reproducible(evaluated: tuple) -> None:
    _, dev, ev, again = evaluated
    for _, row in point_rows(ev.scores):
        if row["threshold"] is None:
            assert row["ci95"] is None
            continue
        c, ci = row["counts"], row["ci95"]
        # exact intervals from scipy (conservative for TAES's fractional counts), as documented
        assert ci["exact"]["sensitivity"] == list(
            clopper_pearson(c["hits"], c["hits"] + c["misses"])
        )
        assert ci["exact"]["fa_per_24h"] == list(garwood(c["false_alarms"], c["duration_s"]))
        assert ci["bootstrap"]["n_patients"] == 3 and ci["bootstrap"]["resamples"] == 2000
        for key in ("sensitivity", "fa_per_24h"):
            assert ci[key][0] <= c[key] <= ci[key][1]
        assert row["szcore_samples_ci95"]["exact"]["sensitivity"] is None  # samples: no exact
    strip = {"scores", "checkpoint", "cache_path", "operating_points", "exports"}
    assert {k: v for k, v in again.scores.items() if k not in strip} == {
        k: v for k, v in ev.scores.items() if k not in strip
    }  # the same inputs give the same intervals, bootstrap included
    assert dev.scores["default"]["ci95"]["ovlp"]["method"] == "exact and patient bootstrap"


def test_latency_is_first_detection_minus_onset_negative_kept(evaluated: tuple) -> None:
    _, dev, ev, _ = evaluated
    for res, plan in ((dev, DEV), (ev, EVAL)):
        s = res.scores
        lat = s["default"]["latency_s"]
        assert lat == latency_summary(
            d for _, _, d in plan
        )  # every seizure found, at its signal's start
        assert lat["min"] < 0  # a detection before the annotated onset stays negative
        # the export threshold is a point's: its latencies are those of the exported events
        export = s["exports"]["threshold"]
        found = [x for r in s["recordings"] for x in onset_latencies(r["ref_events"],
                                                                      r["hyp_events"])]  # fmt: skip
        rows = [r for _, r in point_rows(s) if r["threshold"] == export]
        assert rows and all(r["latency_s"] == latency_summary(found) for r in rows)


def test_console_rows_are_one_detector_each_with_units(evaluated: tuple) -> None:
    _, dev, _, _ = evaluated
    table = summary_table(dev)
    heads = [str(c.header).replace("\n", " ") for c in table.columns]
    assert heads[:3] == ["scorer", "budget FA/24h", "threshold"]
    cols = {h: list(c._cells) for h, c in zip(heads, table.columns, strict=True)}
    points = dev.scores["operating_points"]["points"]
    scorer = ""
    for k, point in enumerate(cols["budget FA/24h"]):
        scorer = cols["scorer"][k] or scorer
        fa = cols["false alarms/24h [95% CI]"][k]
        samples = scorer == LABELS["szcore_samples"]
        assert fa == "-" or fa.split(" ")[1] == ("FP-s" if samples else "FA")
        if point == "default":
            assert float(cols["threshold"][k]) == dev.scores["default"]["postprocess"]["threshold"]
            continue
        name = next(n for n, lab in LABELS.items() if lab == scorer)
        row = next(r for r in points["szcore" if samples else name]
                   if f"<= {r['target_fa_per_24h']:g}" == point)  # fmt: skip
        assert float(cols["threshold"][k]) == row["threshold"]  # its own detector's, exactly
        if not samples and row["counts"]:
            lo, hi = row["ci95"]["sensitivity"]
            assert cols["sensitivity [95% CI]"][k] == (
                f"{100 * row['counts']['sensitivity']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
            )
    assert "FP-s" in str(table.caption) and "not events" in str(table.caption)


def test_report_shows_intervals_latency_and_dev_beside_eval(evaluated: tuple) -> None:
    run, _, _, _ = evaluated
    html = write_report(run).read_text()
    assert "sensitivity<br>[95% CI]" in html and "onset latency<br>median [IQR]" in html
    assert "4 recordings, 3 patients" in html
    assert "<h2>Per patient</h2>" in html
    side = html[html.index('<div class="side">') :]
    assert side.index("<h3>dev <small>") < side.index("<h3>eval <small>")
    for patient in ("pa", "pb", "pc", "qa", "qb", "qc"):
        assert f"<td>{patient}</td>" in side
    assert "FP-s" in html and "negative kept" in html


@pytest.mark.slow
def test_evaluate_and_report_through_the_cli_on_real_edf(tmp_path: Path) -> None:
    """Synthetic EDF through the real reader, cache and CLI: the console table and
    scores.json carry thresholds, intervals, per-patient rows and latencies."""
    from ictal.corpus.synth import synthesize
    from test_evaluate import write_checkpoint

    synthesize(tmp_path / "corpus", patients=4, hours=0.5, seed=3)
    args = set_args(f"corpus.root={tmp_path / 'corpus'}", f"cache.root={tmp_path / 'cache'}",
                    f"runs.root={tmp_path / 'runs'}", "cache.executor=serial")  # fmt: skip
    assert run_ictal("build", "--workers", "1", *args, cwd=ROOT).returncode == 0
    ckpt = write_checkpoint(tmp_path / "runs" / "r1" / "checkpoints" / "best.pt")
    res = run_ictal("evaluate", str(ckpt), "--split", "dev", *args, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[95% CI]" in res.stdout and "FP-s" in res.stdout
    scores = json.loads((ckpt.parents[1] / "eval-best-dev" / "scores.json").read_text())
    assert scores["per_patient"] and scores["default"]["latency_s"]["n"] >= 0
    assert (
        sum(p["n_reference_events"] for p in scores["per_patient"])
        == (scores["n_reference_events"])
    )
    assert run_ictal("report", str(ckpt.parents[1]), *args, cwd=ROOT).returncode == 0
    assert "Per patient" in (ckpt.parents[1] / "report.html").read_text()
