"""`ictal bench` library entry: preflight, timed batches, the table with the projection."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from ictal.cache.build import build_cache
from ictal.config_file import load_config
from ictal.corpus.synth import synthesize
from ictal.errors import PreflightError
from ictal.train.throughput import run_bench


def make_cfg(tmp, *extra):
    return load_config(
        None,
        [
            f"corpus.root={tmp / 'corpus'}",
            f"cache.root={tmp / 'cache'}",
            f"runs.root={tmp / 'runs'}",
            "windows.length_s=8",
            "windows.stride_s=4",
            "model.params={width: 8, gru_hidden: 8}",
            "loader.batch_size=8",
            "loader.num_workers=0",
            *extra,
        ],
    )


def test_bench_refuses_without_cache(tmp_path):
    synthesize(tmp_path / "corpus", patients=2, hours=0.1, seed=3)
    with pytest.raises(PreflightError):
        run_bench(make_cfg(tmp_path), 2, None, Console(record=True))


@pytest.mark.slow
def test_bench_prints_speed_and_projection(tmp_path):
    synthesize(tmp_path / "corpus", patients=4, hours=0.5, seed=1)
    cfg = make_cfg(tmp_path, "train.steps_per_epoch=3")
    build_cache(cfg, workers=1)
    console = Console(record=True, width=160)
    result = run_bench(cfg, 8, 2.5, console)  # more batches than one epoch's draw: cycles
    text = console.export_text()
    for label in ("s/batch", "samples/s", "data wait", "projected epoch time",
                  "projected epoch cost", "epoch capped at 3 steps"):  # fmt: skip
        assert label in text, label
    assert result.batches == 8 and result.s_per_batch > 0
    # the projection covers the sampler's whole draw (not the steps_per_epoch cap)
    from ictal.cache.preflight import preflight
    from ictal.data.sampler import BalancedSampler
    from ictal.data.windows import index_recordings

    view = preflight(cfg).view
    index = index_recordings(view.split("train"), view.fs, 8, 4)
    draw = len(BalancedSampler(index, seed=cfg.train.seed))
    assert result.epoch_batches == math.ceil(draw / 8) > 3
    assert result.epoch_s == pytest.approx(result.epoch_batches * result.s_per_batch)
    assert result.epoch_cost == pytest.approx(result.epoch_s / 3600 * 2.5)
    assert f"{result.epoch_cost:.4g} per epoch at 2.5 per machine-hour" in text  # its unit
    assert f"{result.s_per_batch:.4f}" in text
    assert not (tmp_path / "runs").exists(), "bench must not create a run"
