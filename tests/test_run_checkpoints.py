"""What a run knows about its checkpoints: the frozen config, the dev-tuned operating points,
and the post-processing a deployed checkpoint uses (one warning when it has none)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ictal.config_file import load_config
from ictal.events.operating_points import (
    OperatingPoint,
    OperatingPoints,
    at_threshold,
    save_operating_points,
)
from ictal.events.postprocess import PostProcess, postprocess_of
from ictal.runs.checkpoints import deployed_postprocess, frozen_config, tuned_operating_points

WARNING = (
    "no dev-tuned operating points for this checkpoint (run `ictal evaluate CKPT --split dev`)"
)


def _run(tmp: Path) -> Path:
    """A run directory (frozen config) with one checkpoint; the checkpoint's path."""
    ckpt = tmp / "runs" / "r1" / "checkpoints" / "best.pt"
    ckpt.parent.mkdir(parents=True)
    (tmp / "runs" / "r1" / "config.yaml").write_text("{}\n")
    ckpt.write_bytes(b"weights")
    return ckpt


def test_frozen_config_is_the_given_one_else_the_runs(tmp_path: Path) -> None:
    ckpt = _run(tmp_path)
    assert frozen_config(ckpt) == tmp_path / "runs" / "r1" / "config.yaml"
    assert frozen_config(ckpt, tmp_path / "mine.yaml") == tmp_path / "mine.yaml"
    loose = tmp_path / "model.pt"
    assert frozen_config(loose) is None
    assert frozen_config(loose, tmp_path / "mine.yaml") == tmp_path / "mine.yaml"


def test_deployed_postprocess_tuned_or_the_config_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = load_config(None, [f"runs.root={tmp_path / 'runs'}"])
    ckpt = _run(tmp_path)
    assert tuned_operating_points(ckpt, cfg.runs.root) is None
    with caplog.at_level(logging.WARNING, logger="ictal"):
        untuned = deployed_postprocess(cfg, ckpt, "doing without")
    assert f"{WARNING}: doing without" in caplog.text
    assert untuned.postprocess == postprocess_of(cfg.evaluate) and not untuned.tuned
    assert untuned.source == f"evaluate.threshold={cfg.evaluate.threshold}"

    pp = PostProcess(threshold=0.5, min_duration_s=2.0)
    points = {"ovlp": {10.0: OperatingPoint("ovlp", 10.0, 0.8, None)}}
    path = ckpt.parent.parent / "eval-best-dev" / "operating_points.json"
    save_operating_points(path, OperatingPoints(pp, points, "dev"))
    assert tuned_operating_points(ckpt, cfg.runs.root) == path
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ictal"):
        tuned = deployed_postprocess(cfg, ckpt, "doing without")
    assert WARNING not in caplog.text
    assert tuned.tuned and tuned.postprocess == at_threshold(pp, 0.8)
    assert tuned.source == f"ovlp@10: threshold 0.8 (dev: n/a) ({path})"
    assert tuned.point.doc() == {"scorer": "ovlp", "budget_fa24h": 10.0, "threshold": 0.8,
                                 "dev_sensitivity": None, "dev_fa24h": None}  # fmt: skip
