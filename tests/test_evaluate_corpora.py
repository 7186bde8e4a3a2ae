"""Cross-dataset evaluation: a mixture cache scored per corpus beside the pooled result, from
the same per-recording counts (inference once), ``--corpus`` giving that corpus's entry, and
a single-corpus cache's outputs unchanged."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import ictal.models.inference as inference_mod
from conftest import run_ictal
from ictal.cache.manifest import CacheView
from ictal.config_file import load_config
from ictal.corpus.synth import synthesize
from ictal.errors import UsageError
from ictal.evaluate.corpora import (
    POOLED_ROW,
    cache_corpora,
    cell_lines,
    parse_corpus_names,
    select_corpora,
    side_by_side,
)
from ictal.evaluate.evaluation import EvaluationResult, default_out, evaluate_view
from ictal.evaluate.report import write_report
from ictal.evaluate.summary import corpus_table, summary_table
from ictal.events.counts import EventCounts

FS = 4.0
HOURS = 2.0
COUNT_KEYS = ("hits", "misses", "false_alarms", "n_ref", "duration_s")


class BurstModel(nn.Module):
    """Per-sample logit from the input level: bursts of graded height give graded
    probabilities, so the sweep has a real curve (true bursts and look-alikes)."""

    output_stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 12.0 * x.mean(1) - 6.0


META = {"output_stride": 1, "window": int(FS * 20), "n_channels": 1, "fs": FS}


def _recording(
    path: Path, rng: np.random.Generator, sz_level: float, fa_level: float
) -> dict[str, Any]:
    """A 2 h one-channel array with two seizures and three look-alikes near the levels."""
    n = int(FS * 3600 * HOURS)
    x = np.zeros((n, 1), np.float32)
    starts = rng.choice(np.arange(5, int(3600 * HOURS / 120) - 1), size=5, replace=False) * 120
    seizures = []
    for k, s in enumerate(starts):
        a, b = int(FS * s), int(FS * (s + 40))
        level = sz_level if k < 2 else fa_level
        x[a:b] = np.clip(level + rng.uniform(-0.15, 0.15), 0.0, 1.0)
        if k < 2:
            seizures.append([a, b])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return {"n_samples": n, "seizures": sorted(seizures), "source_duration_s": n / FS}


def mixture_view(root: Path, corpora: tuple[str, ...] = ("beta", "alpha")) -> CacheView:
    """A cache-like mixture: per corpus, three dev and two eval recordings; beta's seizures are
    fainter and its look-alikes stronger (the per-corpus numbers differ)."""
    rng = np.random.default_rng(3)
    levels = {"alpha": (0.9, 0.45), "beta": (0.7, 0.6)}
    rows = []
    for name in corpora:
        for split, n in (("dev", 3), ("eval", 2)):
            for i in range(n):
                rid = f"{name}.p{i}_s001_t00{i}{split[0]}"
                rec = _recording(root / "arrays" / f"{rid}.npy", rng, *levels[name])
                rows.append({"id": rid, "split": split, "corpus": name, "patient": f"{name}.p{i}",
                             "array": f"arrays/{rid}.npy", **rec})  # fmt: skip
    listed = [{"name": c, "format": "tusz", "recordings": 5} for c in corpora]
    manifest = {"key": "m" * 64, "fs": FS, "channels": ["Cz"], "corpora": listed}
    return CacheView(root, manifest, rows)


def single_view(mixture: CacheView) -> CacheView:
    """The same recordings as one corpus: no ``corpus`` key, no ``corpora`` in the manifest."""
    rows = [{k: v for k, v in r.items() if k != "corpus"} for r in mixture.recordings]
    manifest = {k: v for k, v in mixture.manifest.items() if k != "corpora"}
    return CacheView(mixture.path, manifest, rows)


def run_eval(view: CacheView, out: Path, split: str = "dev", **kw: Any) -> EvaluationResult:
    ckpt = out.parent / "fake.pt"
    if not ckpt.exists():
        ckpt.write_bytes(b"weights")
    cfg = load_config(None, ["train.heartbeat_s=0.01"])
    return evaluate_view(cfg, view, BurstModel(), META, checkpoint=ckpt, split=split, out=out,
                         **kw)  # fmt: skip


def counts(doc: dict[str, Any] | None) -> tuple[float, ...] | None:
    return None if doc is None else tuple(doc[k] for k in COUNT_KEYS)


def point_counts(doc: dict[str, Any]) -> dict[tuple[str, float], Any]:
    """(scorer, target) -> (threshold, event counts, sample counts) of a scores block."""
    return {
        (name, row["target_fa_per_24h"]): (
            row["threshold"],
            counts(row["counts"]),
            counts(row["szcore_samples"]),
        )
        for name, rows in doc["operating_points"]["points"].items()
        for row in rows
    }


def thresholds_of(doc: dict[str, Any]) -> dict[tuple[str, float], float | None]:
    return {k: v[0] for k, v in point_counts(doc).items()}


def block(doc: dict[str, Any]) -> dict[str, Any]:
    """What a per-corpus entry and a --corpus evaluation share."""
    return {
        "size": (doc["n_recordings"], doc["total_duration_s"], doc["n_reference_events"]),
        "auroc": doc["auroc"],
        "default": {n: counts(c) for n, c in doc["default"]["scores"].items()},
        "points": point_counts(doc),
    }


def comparable(scores: dict[str, Any]) -> dict[str, Any]:
    """A scores document without what a mixture adds and where it was written."""
    doc = json.loads(json.dumps(scores))
    doc.pop("per_corpus", None)
    doc.pop("corpora", None)
    doc["operating_points"].pop("file")
    for r in doc["recordings"] + doc["per_patient"]:
        r.pop("corpus", None)
    return doc


def assert_adds_up(parts: list[tuple[float, ...] | None], whole: tuple[float, ...] | None) -> None:
    present = [p for p in parts if p is not None]
    if whole is None:
        assert not present
        return
    assert len(present) == len(parts)
    total = tuple(sum(p[k] for p in present) for k in range(len(COUNT_KEYS)))
    assert total == pytest.approx(whole, abs=1e-9)


# --- the grouping logic ------------------------------------------------------------------


def test_corpus_names_are_parsed_and_checked(tmp_path: Path) -> None:
    assert parse_corpus_names(["tusz,siena", " siena ", "chb-mit,"]) == [
        "tusz", "siena", "chb-mit",
    ]  # fmt: skip
    assert parse_corpus_names(None) == []
    rows = [{"id": "a.1", "split": "dev", "corpus": "a"}, {"id": "c.1", "split": "eval",
            "corpus": "c"}, {"id": "b.1", "split": "dev", "corpus": "b"}]  # fmt: skip
    view = CacheView(tmp_path, {"corpora": [{"name": "b"}, {"name": "a"}]}, rows)
    assert cache_corpora(view) == ["b", "a", "c"]  # manifest order, then the table's others
    assert select_corpora(view, view.split("dev"), ["b"], "dev") == [rows[2]]
    with pytest.raises(UsageError, match=r"unknown corpus 'zz'; the cache holds b, a, c"):
        select_corpora(view, view.split("dev"), ["a", "zz"], "dev")
    with pytest.raises(UsageError, match=r"c has no recordings in the dev split .*holds a, b"):
        select_corpora(view, view.split("dev"), ["c"], "dev")
    single = CacheView(tmp_path, {}, [{k: v for k, v in r.items() if k != "corpus"}
                                      for r in rows])  # fmt: skip
    assert cache_corpora(single) == []
    with pytest.raises(UsageError, match="holds one corpus"):
        select_corpora(single, single.split("dev"), ["a"], "dev")


def test_side_by_side_rows() -> None:
    c = EventCounts(hits=3, misses=1, false_alarms=2, n_ref=4, duration_s=86_400.0).as_dict()

    def doc(n: int, auroc: float | None) -> dict[str, Any]:
        points = {name: [{"target_fa_per_24h": 10.0, "threshold": 0.5, "counts": c},
                         {"target_fa_per_24h": 1.0, "threshold": None, "counts": None}]
                  for name in ("ovlp", "taes", "szcore")}  # fmt: skip
        return {"n_recordings": n, "total_duration_s": 7200.0 * n, "n_reference_events": n,
                "auroc": auroc, "operating_points": {"points": points}}  # fmt: skip

    assert side_by_side(doc(2, 0.9)) == ([], [])  # no per_corpus: a single corpus
    scores = doc(5, 0.8) | {"per_corpus": {"zeta": doc(3, None), "alpha": doc(2, 0.9)}}
    columns, rows = side_by_side(scores)
    assert columns == [("ovlp", 10.0), ("ovlp", 1.0), ("szcore", 10.0), ("szcore", 1.0)]
    assert [r.name for r in rows] == ["alpha", "zeta", POOLED_ROW]
    assert [r.hours for r in rows] == [4.0, 6.0, 10.0]
    assert [cell_lines(x) for x in rows[0].cells] == [("75.0%", "2.0 FA"), ("-",)] * 2
    assert rows[1].auroc is None and rows[2].auroc == 0.8
    one = doc(2, 0.9) | {"per_corpus": {"alpha": doc(2, 0.9)}}
    assert [r.name for r in side_by_side(one)[1]] == ["alpha"]  # no pooled row for one


# --- evaluate on a mixture: per corpus from the same counts, --corpus, unchanged single ---


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[CacheView, Path]:
    root = tmp_path_factory.mktemp("mix")
    return mixture_view(root / "cache"), root


def test_per_corpus_results_add_up_to_the_pooled_ones(
    mixture: tuple[CacheView, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    view, root = mixture
    calls: list[int] = []
    real = inference_mod.infer_recording

    def counting(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inference_mod, "infer_recording", counting)
    res = run_eval(view, root / "full-dev")
    s = res.scores
    assert len(calls) == s["n_recordings"] == 6  # inference once per recording
    per = s["per_corpus"]
    assert list(per) == ["alpha", "beta"]
    assert {r["corpus"] for r in s["recordings"]} == {"alpha", "beta"}
    assert all(r["id"].startswith(f"{r['corpus']}.") for r in s["recordings"])
    for key in ("n_recordings", "n_reference_events", "total_duration_s"):
        assert sum(p[key] for p in per.values()) == pytest.approx(s[key])
    for name, c in s["default"]["scores"].items():
        assert_adds_up([counts(p["default"]["scores"][name]) for p in per.values()], counts(c))
    pooled = point_counts(s)
    parts = [point_counts(p) for p in per.values()]
    thresholds = set()
    for key, (threshold, events, samples) in pooled.items():
        assert all(p[key][0] == threshold for p in parts)  # one threshold for every corpus
        assert_adds_up([p[key][1] for p in parts], events)
        assert_adds_up([p[key][2] for p in parts], samples)
        thresholds.add(threshold)
    assert len(thresholds - {None}) >= 2  # the curve is real: targets pick different points
    at10 = {n: point_counts(p)[("ovlp", 10.0)][1] for n, p in per.items()}
    assert at10["alpha"][2] < at10["beta"][2]  # beta's look-alikes: the corpora differ
    table = corpus_table(res)
    assert table is not None and table.row_count == 3
    heads = [str(c.header).split("\nt=")[0] for c in table.columns]
    assert heads == ["corpus", "size", "AUROC"] + [
        f"{s}\n<={t:g}" for s in ("OVLP", "SzCORE") for t in (10, 5, 2.5, 1)
    ]
    for column in table.columns[3:]:  # each column one detector: its threshold in the header
        scorer, target = str(column.header).split("\n")[:2]
        name = {"OVLP": "ovlp", "SzCORE": "szcore"}[scorer]
        threshold = thresholds_of(s)[(name, float(target[2:]))]
        assert threshold is None or float(str(column.header).split("t=")[1]) == threshold
    cells = [list(c.cells) for c in table.columns]
    assert s["corpora"] == ["beta", "alpha"]  # the manifest's order, as the config lists them
    assert cells[0] == ["beta", "alpha", POOLED_ROW] and cells[1][0] == "3 rec, 6.0 h\n6 seizures"
    html = write_report(res.out).read_text()
    assert "By corpus" in html and "alpha" in html and POOLED_ROW in html
    assert "<summary>alpha: every detector</summary>" in html  # each corpus's full table
    # each corpus's intervals, latencies and patients come from its own recordings
    assert sorted(q["patient"] for p in per.values() for q in p["per_patient"]) == sorted(
        q["patient"] for q in s["per_patient"]
    )
    for name, p in per.items():
        assert {q["corpus"] for q in p["per_patient"]} == {name}
        for row in p["operating_points"]["points"]["ovlp"]:
            if row["threshold"] is not None:
                assert row["ci95"]["bootstrap"]["n_patients"] == len(p["per_patient"])
                assert row["latency_s"]["n"] == row["counts"]["hits"]  # OVLP's own rule
    with_ci = [c for c in cells[3] if c != "-"]
    assert with_ci and all(len(c.split("\n")) == 4 for c in with_ci)  # rate, [CI], rate, [CI]


@pytest.mark.slow
def test_corpus_option_gives_that_corpus_entry(mixture: tuple[CacheView, Path]) -> None:
    view, root = mixture
    dev = run_eval(view, root / "dev")
    ops = dev.operating_points_path
    full = run_eval(view, root / "ev", split="eval", operating_points=ops)
    only = run_eval(view, root / "ev-beta", split="eval", operating_points=ops, corpora=["beta"])
    assert only.inferred == 2  # frozen points: only beta's recordings are inferred
    assert only.scores["corpus_selection"] == ["beta"]
    assert {r["corpus"] for r in only.scores["recordings"]} == {"beta"}
    assert block(only.scores) == block(full.scores["per_corpus"]["beta"])
    assert list(only.scores["per_corpus"]) == ["beta"]
    # on dev, points are chosen over every corpus: the same thresholds as the full evaluation
    dev_beta = run_eval(view, root / "dev-beta", corpora=["beta"])
    assert dev_beta.inferred == 6
    chosen = json.loads(dev_beta.operating_points_path.read_text())
    assert chosen["points"] == json.loads(ops.read_text())["points"]
    assert dev_beta.scores["operating_points"]["chosen_on_corpora"] == ["alpha", "beta"]
    assert block(dev_beta.scores) == block(dev.scores["per_corpus"]["beta"])
    # the sweep shown is beta's own: its points lie on it
    sw = dev_beta.scores["sweep"]
    for row in dev_beta.scores["operating_points"]["points"]["ovlp"]:
        if row["threshold"] is not None:
            k = sw["thresholds"].index(row["threshold"])
            assert sw["scorers"]["ovlp"]["sensitivity"][k] == row["counts"]["sensitivity"]
    assert "(beta)" in str(summary_table(dev_beta).title)
    with pytest.raises(UsageError, match="unknown corpus 'gamma'; the cache holds beta, alpha"):
        run_eval(view, root / "dev-x", corpora=["gamma"])
    assert default_out(Path("/r/x/checkpoints/best.pt"), "eval", load_config(None, []),
                       ["beta", "alpha"]) == Path("/r/x/eval-best-eval-beta+alpha")  # fmt: skip


def test_single_corpus_outputs_are_unchanged(mixture: tuple[CacheView, Path]) -> None:
    view, root = mixture
    single = single_view(view)
    mixed = run_eval(view, root / "cmp-mixed")
    res = run_eval(single, root / "cmp-single")
    assert "per_corpus" not in res.scores and "corpus_selection" not in res.scores
    assert all("corpus" not in r for r in res.scores["recordings"])
    assert corpus_table(res) is None
    assert "By corpus" not in write_report(res.out).read_text()
    assert comparable(mixed.scores) == comparable(res.scores)
    with pytest.raises(UsageError, match="holds one corpus"):
        run_eval(single, root / "cmp-x", corpora=["alpha"])


# --- through the command line on a real mixture cache ---------------------------------------


def _ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, f"{res.args}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


@pytest.mark.slow
def test_mixture_evaluation_through_the_cli(tmp_path: Path) -> None:
    for name, seed in (("tusz", 5), ("other", 6)):
        synthesize(tmp_path / name, patients=4, hours=1, seed=seed)
    cfg = tmp_path / "mixture.yaml"
    cfg.write_text(
        f"""
corpus:
  roots:
    - {{name: tusz, root: {tmp_path / "tusz"}, format: tusz}}
    - {{name: other, root: {tmp_path / "other"}, format: tusz}}
cache: {{root: {tmp_path / "cache"}, executor: serial}}
runs: {{root: {tmp_path / "runs"}}}
windows: {{length_s: 8, stride_s: 4}}
model: {{params: {{width: 8, gru_hidden: 8}}}}
loader: {{batch_size: 4, num_workers: 0}}
train: {{warmup_steps: 1, epochs: 1, steps_per_epoch: 3, heartbeat_s: 5}}
sampler: {{corpus_weights: {{tusz: 1, other: 3}}}}
"""
    )
    _ok(run_ictal("build", "-c", str(cfg), "--workers", "1"))
    trained = run_ictal("train", "-c", str(cfg))
    _ok(trained)
    # the weights share each class's draw 1 : 3 between the corpora (when both have enough)
    line = next(x for x in trained.stderr.splitlines() if "per corpus:" in x)
    shares = dict(re.findall(r"(\w+) \(weight \d\) \d+ = (\d+)%", line))
    assert set(shares) == {"tusz", "other"} and int(shares["other"]) > int(shares["tusz"]), line
    (run,) = sorted((tmp_path / "runs").iterdir())
    best = str(run / "checkpoints" / "best.pt")
    dev = run_ictal("evaluate", best, "--split", "dev")
    _ok(dev)
    assert "dev by corpus" in dev.stdout
    frozen = str(run / "eval-best-dev" / "operating_points.json")
    _ok(run_ictal("evaluate", best, "--split", "eval", "--operating-points", frozen))
    _ok(run_ictal("evaluate", best, "--split", "eval", "--operating-points", frozen,
                  "--corpus", "other"))  # fmt: skip
    full = json.loads((run / "eval-best-eval" / "scores.json").read_text())
    only = json.loads((run / "eval-best-eval-other" / "scores.json").read_text())

    per = full["per_corpus"]
    assert sorted(per) == ["other", "tusz"]
    assert all(r["id"].startswith(f"{r['corpus']}.") for r in full["recordings"])
    for key in ("n_recordings", "n_reference_events", "total_duration_s"):
        assert sum(p[key] for p in per.values()) == pytest.approx(full[key])
    parts = [point_counts(p) for p in per.values()]
    for key, (threshold, events, samples) in point_counts(full).items():
        assert all(p[key][0] == threshold for p in parts)
        assert_adds_up([p[key][1] for p in parts], events)
        assert_adds_up([p[key][2] for p in parts], samples)
    assert only["corpus_selection"] == ["other"]
    assert block(only) == block(per["other"])

    bad = run_ictal("evaluate", best, "--split", "eval", "--corpus", "tusz,nope")
    assert bad.returncode == 2, bad.stderr
    assert "unknown corpus 'nope'; the cache holds tusz, other" in bad.stderr
    _ok(run_ictal("report", str(run)))
    html = (run / "report.html").read_text()
    assert html.count("By corpus") == 3  # dev, eval, and eval of one corpus
