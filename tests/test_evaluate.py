"""``evaluate`` end to end on a tiny synthetic cache: files, resume, frozen operating points,
exports NEDC accepts, and memory that does not grow with the number of recordings."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import ictal.evaluate.evaluation as run_mod
import ictal.models.inference as inference_mod
from ictal.cache.build import build_cache
from ictal.cache.manifest import CacheView
from ictal.cli import run
from ictal.config import Config
from ictal.config_file import load_config
from ictal.corpus.annotations import parse_annotation_text
from ictal.corpus.synth import synthesize
from ictal.errors import PreflightError, UsageError
from ictal.evaluate.evaluation import evaluate, evaluate_view
from ictal.evaluate.summary import summary_table
from ictal.events.counts import EventCounts, pool
from ictal.events.operating_points import (
    OperatingPoint,
    OperatingPoints,
    load_operating_points,
    save_operating_points,
)
from ictal.events.postprocess import PostProcess
from ictal.models import build_model
from ictal.runs.directory import eval_dir_for


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    """A built synthetic cache (dev and eval have recordings) and the config that finds it."""
    tmp = tmp_path_factory.mktemp("ev")
    synthesize(tmp / "corpus", patients=4, hours=0.5, seed=1)
    cfg = load_config(
        None,
        [
            f"corpus.root={tmp / 'corpus'}",
            f"cache.root={tmp / 'cache'}",
            f"runs.root={tmp / 'runs'}",
            "cache.executor=serial",
            "train.heartbeat_s=0.01",
        ],
    )
    build_cache(cfg, workers=1)
    return cfg, tmp


def write_checkpoint(path: Path, seed: int = 0, fs: float = 256.0) -> Path:
    """An untrained conv_bigru checkpoint in the ictal-checkpoint-1 format."""
    torch.manual_seed(seed)
    model = build_model("conv_bigru", n_channels=19, fs=fs)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": "ictal-checkpoint-1",
            "model_name": "conv_bigru",
            "model_params": {},
            "n_channels": 19,
            "fs": fs,
            "output_stride": model.output_stride,
            "window": int(fs * 30),
            "model": model.state_dict(),
            "config": {},
            "cache_key": "",
            "run_id": "run-test",
            "epoch": 1,
            "step": 5,
        },
        path,
    )
    return path


def thresholds(scores: dict[str, Any]) -> dict[tuple[str, float], float | None]:
    return {
        (name, row["target_fa_per_24h"]): row["threshold"]
        for name, rows in scores["operating_points"]["points"].items()
        for row in rows
    }


def test_dev_then_eval_with_frozen_points(setup: tuple[Config, Path]) -> None:
    cfg, tmp = setup
    ckpt = write_checkpoint(tmp / "runs" / "r1" / "checkpoints" / "best.pt")
    dev = evaluate(cfg, ckpt, split="dev")
    assert dev.out == tmp / "runs" / "r1" / "eval-best-dev"
    dev_ids = [r["id"] for r in json.loads(dev.scores_path.read_text())["recordings"]]
    assert len(dev_ids) == 2 and dev.inferred == 2
    scores = json.loads((dev.out / "scores.json").read_text())
    exported = [dev.out / p["dir"] for p in scores["exports"]["points"]]
    assert exported
    for rid in dev_ids:
        assert (dev.out / "probs" / f"{rid}.npy").is_file()
        for folder in exported:
            assert (folder / "csv_bi" / f"{rid}.csv_bi").is_file()
            assert (folder / "szcore" / f"{rid}_events.tsv").is_file()
    assert "pooled" in scores["pooling"] and "SzCORE" in scores["pooling"]
    assert set(scores["default"]["scores"]) == {"ovlp", "taes", "szcore", "szcore_samples"}
    assert scores["operating_points"]["mode"] == "chosen"
    assert [r["target_fa_per_24h"] for r in scores["operating_points"]["points"]["ovlp"]] == [
        10.0, 5.0, 2.5, 1.0,
    ]  # fmt: skip
    assert len(scores["sweep"]["thresholds"]) == len(
        scores["sweep"]["scorers"]["taes"]["fa_per_24h"]
    )
    assert 0.0 <= scores["auroc"] <= 1.0
    heartbeat = json.loads((dev.out / "heartbeat.json").read_text())
    assert heartbeat["phase"].startswith("evaluate") and heartbeat["state"] == "done"
    assert heartbeat["items_total"] == 2
    dev_ops = load_operating_points(dev.out / "operating_points.json")
    assert dev_ops.split == "dev"
    table = summary_table(dev)
    # a row per scorer (SzCORE samples too) and detector: the default threshold, 4 budgets
    assert table.row_count == 4 * 5 and len(table.columns) == 7

    ev = evaluate(cfg, ckpt, split="eval", operating_points=dev.operating_points_path)
    assert ev.out == tmp / "runs" / "r1" / "eval-best-eval"
    assert not (ev.out / "operating_points.json").exists()  # never re-chosen on eval
    ev_scores = json.loads((ev.out / "scores.json").read_text())
    assert ev_scores["operating_points"]["mode"] == "applied"
    assert ev_scores["operating_points"]["chosen_on"] == "dev"
    expected = {(n, t): p.threshold for n, per in dev_ops.points.items() for t, p in per.items()}
    assert thresholds(ev_scores) == expected


def test_hand_made_frozen_thresholds_are_applied_unchanged(setup: tuple[Config, Path]) -> None:
    cfg, tmp = setup
    ckpt = write_checkpoint(tmp / "loose" / "model.pt")
    pp = PostProcess(threshold=0.5, min_duration_s=1.0)
    odd = {10.0: 0.123, 5.0: 0.4567, 1.0: None}
    ops = OperatingPoints(
        postprocess=pp,
        points={
            name: {t: OperatingPoint(name, t, thr, None) for t, thr in odd.items()}
            for name in ("ovlp", "taes", "szcore")
        },
        split="dev",
    )
    frozen = save_operating_points(tmp / "frozen.json", ops)
    before = frozen.read_bytes()
    res = evaluate(cfg, ckpt, split="eval", out=tmp / "ev-odd", operating_points=frozen)
    got = thresholds(json.loads(res.scores_path.read_text()))
    assert got == {(n, t): thr for n in ("ovlp", "taes", "szcore") for t, thr in odd.items()}
    rows = res.scores["operating_points"]["points"]["ovlp"]
    assert rows[-1]["counts"] is None and rows[0]["counts"]["duration_s"] > 0
    assert res.scores["exports"]["threshold"] == 0.123  # ovlp@10, the default point
    assert [p["dir"] for p in res.scores["exports"]["points"]] == [
        "hyp/ovlp@10_t0.123", "hyp/ovlp@5_t0.4567",
    ]  # fmt: skip
    assert res.scores["exports"]["skipped"] == ["ovlp@1: no threshold met it on dev"]
    assert frozen.read_bytes() == before
    assert res.scores["operating_points"]["postprocess"]["min_duration_s"] == 1.0
    with pytest.raises(UsageError, match="does not exist"):
        evaluate(cfg, ckpt, split="eval", out=tmp / "ev-x", operating_points=tmp / "nope.json")


def test_exports_parse_with_reference_duration(setup: tuple[Config, Path]) -> None:
    cfg, tmp = setup
    ckpt = write_checkpoint(tmp / "exp" / "model.pt")
    res = evaluate(cfg, ckpt, split="eval", out=tmp / "ev-exp")
    exports = res.scores["exports"]
    (rows_dir,) = [p["dir"] for p in exports["points"]
                   if p["operating_point"] == exports["operating_point"]]  # fmt: skip
    folder = res.out / rows_dir  # the deployed point's folder: the rows' events
    files = sorted((folder / "csv_bi").glob("*.csv_bi"))
    assert len(files) == res.scores["n_recordings"] == 2
    for f in files:
        hyp = parse_annotation_text(f.read_text(), str(f))
        (ref_path,) = (tmp / "corpus").rglob(f.name)
        ref = parse_annotation_text(ref_path.read_text(), str(ref_path))
        assert hyp.duration == ref.duration and hyp.bname == ref.bname
        assert hyp.rows[0].start == 0.0 and hyp.rows[-1].stop == ref.duration
    # ictal score on the exports (either format) gives evaluate's own export counts
    per_recording = [EventCounts(**r["ovlp_export"]) for r in res.scores["recordings"]]
    expected = pool(per_recording)
    for fmt in ("csv_bi", "szcore"):
        out = tmp / f"score-{fmt}.json"
        assert run(["score", str(tmp / "corpus" / "edf" / "eval"), str(folder / fmt),
                    "--json", str(out), "--scorers", "ovlp"]) == 0  # fmt: skip
        got = json.loads(out.read_text())["ovlp"]
        assert (got["hits"], got["misses"], got["false_alarms"], got["n_ref"]) == (
            expected.hits, expected.misses, expected.false_alarms, expected.n_ref)  # fmt: skip
        assert got["duration_s"] == pytest.approx(expected.duration_s)


def test_resume_skips_done_recordings(
    setup: tuple[Config, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, tmp = setup
    ckpt = write_checkpoint(tmp / "res" / "model.pt")
    out = tmp / "ev-res"
    first = evaluate(cfg, ckpt, split="eval", out=out)
    assert (first.inferred, first.resumed) == (2, 0)
    ids = sorted(p.stem for p in (out / "probs").glob("*.npy"))
    (out / "probs" / f"{ids[0]}.npy").unlink()  # killed before this one was written
    calls: list[int] = []
    real = inference_mod.infer_recording

    def counting(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inference_mod, "infer_recording", counting)
    second = evaluate(cfg, ckpt, split="eval", out=out)
    assert len(calls) == 1 and (second.inferred, second.resumed) == (1, 1)
    assert second.scores["default"] == first.scores["default"]
    # a file of the wrong length (not ours, or a different stride) is not taken as done
    np.save(out / "probs" / f"{ids[1]}.npy", np.zeros(3, np.float32))
    third = evaluate(cfg, ckpt, split="eval", out=out)
    assert len(calls) == 2 and third.inferred == 1
    # probabilities of another checkpoint are never mixed into this directory
    other = write_checkpoint(tmp / "res" / "other.pt", seed=1)
    with pytest.raises(UsageError, match="another checkpoint"):
        evaluate(cfg, other, split="eval", out=out)


def test_checkpoint_for_another_rate_is_refused(setup: tuple[Config, Path]) -> None:
    cfg, tmp = setup
    ckpt = write_checkpoint(tmp / "rate" / "model.pt", fs=128.0)
    with pytest.raises(PreflightError, match=r"128\.0 Hz"):
        evaluate(cfg, ckpt, split="dev", out=tmp / "ev-rate")


def test_unreadable_checkpoint_is_a_usage_error(setup: tuple[Config, Path]) -> None:
    cfg, tmp = setup
    bad = tmp / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot be read"):
        evaluate(cfg, bad, split="dev", out=tmp / "ev-bad")
    with pytest.raises(UsageError, match="does not exist"):
        evaluate(cfg, tmp / "missing.pt", split="dev", out=tmp / "ev-bad")


def test_default_out() -> None:
    cfg = load_config(None, ["runs.root=/r"])
    assert eval_dir_for(Path("/r/abc/checkpoints/last.pt"), "dev", cfg.runs.root).path == Path(
        "/r/abc/eval-last-dev"
    )
    assert eval_dir_for(Path("/x/model.pt"), "eval", cfg.runs.root).path == Path(
        "/r/eval-model-eval"
    )


# --- memory: a fake cache of identical recordings, an oracle model -----------------------


class BurstModel(nn.Module):
    """Per-sample logit high where the input is high: finds the synthetic bursts exactly."""

    output_stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 12.0 * x.mean(1) - 6.0


FS = 32.0
N = int(FS * 900)  # 15 min per recording: each trace is 112 KB as float32


def fake_view(root: Path, n_recordings: int) -> CacheView:
    """A cache-like view of ``n_recordings`` one-channel recordings with one burst each."""
    rows = []
    for i in range(n_recordings):
        x = np.zeros((N, 1), np.float32)
        a, b = int(FS * (100 + 10 * i)), int(FS * (160 + 10 * i))
        x[a:b] = 1.0
        (root / "arrays").mkdir(parents=True, exist_ok=True)
        np.save(root / "arrays" / f"r{i:03d}.npy", x)
        rows.append(
            {"id": f"p_s001_t{i:03d}", "split": "dev", "n_samples": N,
             "array": f"arrays/r{i:03d}.npy", "seizures": [[a, b]], "seizure_labels": ["seiz"],
             "source_duration_s": N / FS}
        )  # fmt: skip
    return CacheView(root, {"key": "k" * 64, "fs": FS, "channels": ["Cz"]}, rows)


META = {"output_stride": 1, "window": int(FS * 20), "n_channels": 1, "fs": FS}


def run_fake(tmp: Path, name: str, n: int) -> run_mod.EvaluationResult:
    cfg = load_config(None, ["train.heartbeat_s=0.01"])
    view = fake_view(tmp / f"cache-{n}", n)
    ckpt = tmp / "fake.pt"
    ckpt.write_bytes(b"weights")
    return evaluate_view(cfg, view, BurstModel(), META, checkpoint=ckpt, split="dev",
                         out=tmp / name)  # fmt: skip


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_recordings(tmp_path: Path) -> None:
    warm = run_fake(tmp_path, "warm", 3)
    ovlp = warm.scores["default"]["scores"]["ovlp"]
    assert ovlp["sensitivity"] == 1.0 and ovlp["false_alarms"] == 0  # the oracle is exact
    peaks = {}
    for n in (3, 12):
        view = fake_view(tmp_path / f"cache-{n}", n)  # written before measuring
        del view
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        res = run_fake(tmp_path, f"out-{n}", n)
        peaks[n] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        assert res.scores["n_recordings"] == n
    trace_bytes = math.ceil(N) * 4
    # keeping every trace would add 9 traces (1 MB) for 12 recordings; allow 2 traces of noise
    assert peaks[12] < peaks[3] + 2 * trace_bytes, peaks
