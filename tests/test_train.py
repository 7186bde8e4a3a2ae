"""Training: preflight refusals before any work, the run directory, checkpoints, windows
changed without a rebuild, the non-finite loss policy."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from conftest import ictal_env
from ictal.cache.build import build_cache
from ictal.config_file import load_config
from ictal.corpus.synth import synthesize
from ictal.errors import PreflightError
from ictal.models.checkpoint import FORMAT, load_checkpoint, load_model
from ictal.models.registry import register
from ictal.runs.heartbeat import read_heartbeat
from ictal.runs.metrics import read_metrics
from ictal.train import loop

FAST = [
    "windows.length_s=8",
    "windows.stride_s=4",
    "model.params={width: 8, gru_hidden: 8}",
    "loader.batch_size=4",
    "loader.num_workers=0",
    "train.warmup_steps=2",
    "train.epochs=2",
]


def make_cfg(tmp: Path, corpus: Path, *extra: str):
    return load_config(
        None,
        [
            f"corpus.root={corpus}",
            f"cache.root={tmp / 'cache'}",
            f"runs.root={tmp / 'runs'}",
            *FAST,
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One small corpus and its cache for the module."""
    tmp = tmp_path_factory.mktemp("train")
    synthesize(tmp / "corpus", patients=4, hours=0.5, seed=1)
    build_cache(make_cfg(tmp, tmp / "corpus"), workers=1)
    return tmp


@pytest.fixture
def no_edf_reads(monkeypatch):
    """Fail the test if anything opens an EDF file: every way Python opens a file (builtins,
    io, os.open; fsspec's local file system opens through them) refuses a path ending in
    .edf."""
    import builtins
    import io

    def guard(real):  # type: ignore[no-untyped-def]
        def opener(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if str(path).lower().endswith(".edf"):
                raise AssertionError(f"training opened EDF file {path}")
            return real(path, *args, **kwargs)

        return opener

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    monkeypatch.setattr(os, "open", guard(os.open))


def test_the_edf_guard_catches_a_read(built, no_edf_reads):
    """The guard above is not vacuous: the reader the build uses trips it."""
    from ictal.corpus.edf import read_eeg

    edf = next((built / "corpus").rglob("*.edf"))
    with pytest.raises(AssertionError, match="opened EDF file"):
        read_eeg(str(edf))


def _assert_refused_before_training(tmp: Path, cfg, match: str) -> None:
    with pytest.raises(PreflightError, match=match) as info:
        loop.train(cfg)
    assert info.value.exit_code == 3
    assert "ictal build" in str(info.value)
    runs = tmp / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a run started despite the refusal"


def test_refuses_without_cache(tmp_path, no_edf_reads):
    synthesize(tmp_path / "corpus", patients=2, hours=0.1, seed=3)
    cfg = make_cfg(tmp_path, tmp_path / "corpus")
    _assert_refused_before_training(tmp_path, cfg, "no cache")


def test_refuses_stale_cache(tmp_path, monkeypatch):
    synthesize(tmp_path / "corpus", patients=2, hours=0.1, seed=3)
    cfg = make_cfg(tmp_path, tmp_path / "corpus")
    build_cache(cfg, workers=1)
    edf = sorted((tmp_path / "corpus").rglob("*.edf"))[0]
    os.utime(edf, (edf.stat().st_atime, edf.stat().st_mtime + 100))  # corpus changed
    monkeypatch.setattr("ictal.corpus.edf.read_eeg", _refuse)
    _assert_refused_before_training(tmp_path, cfg, "corpus changed")


def test_refuses_cache_without_seizures(tmp_path, monkeypatch):
    synthesize(tmp_path / "corpus", patients=2, hours=0.1, seed=3)
    for f in (tmp_path / "corpus").rglob("*.csv_bi"):
        f.write_text(f.read_text().replace(",seiz,", ",bckg,"))
    cfg = make_cfg(tmp_path, tmp_path / "corpus")
    build_cache(cfg, workers=1)
    monkeypatch.setattr("ictal.corpus.edf.read_eeg", _refuse)
    _assert_refused_before_training(tmp_path, cfg, "no seizures")


def _refuse(*args, **kwargs):
    raise AssertionError("training read EDF signal data")


@pytest.fixture(scope="module")
def trained(built):
    """One finished run (2 epochs, 3 steps each) on the module cache."""
    runs = built / "runs_done"
    cfg = make_cfg(built, built / "corpus", f"runs.root={runs}", "train.steps_per_epoch=3")
    return cfg, loop.train(cfg)


@pytest.mark.slow
def test_run_directory_is_complete(trained):
    cfg, result = trained
    assert result.state == "done" and result.epochs_done == 2 and result.step == 6
    run = result.run_dir
    assert run.parent == Path(cfg.runs.root)
    for name in ("config.yaml", "run.json", "metrics.jsonl", "heartbeat.json", "train.log"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir()), "no TensorBoard events"
    frozen = load_config(run / "config.yaml")
    assert frozen == cfg
    meta = json.loads((run / "run.json").read_text())
    for key in ("ictal_version", "torch", "numpy", "python", "git_commit", "cache_key",
                "cache_path", "host", "device", "pid", "start_time", "command"):  # fmt: skip
        assert key in meta, key
    assert meta["device"] == "cpu"
    log_text = (run / "train.log").read_text()
    assert "epoch 2 validation" in log_text and "training done" in log_text


@pytest.mark.slow
def test_metrics_lines_are_complete_and_once_per_step(trained):
    _, result = trained
    raw = (result.run_dir / "metrics.jsonl").read_text()
    assert raw.endswith("\n")
    lines = [json.loads(line) for line in raw.splitlines()]
    assert all({"phase", "epoch", "step", "time"} <= set(r) for r in lines)
    train = [r for r in lines if r["phase"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    for r in train:
        assert {"loss", "lr", "samples_per_s", "data_wait", "pos_weight"} <= set(r)
        assert r["loss"] > 0 and r["pos_weight"] > 1
    assert [r["epoch"] for r in lines if r["phase"] == "validate"] == [0, 1]
    val = [r for r in lines if r["phase"] == "validate"]
    assert all(0 <= r["val_auroc"] <= 1 and r["val_loss"] > 0 for r in val)
    # the dev loss under the training pos_weight (> 1) is comparable to the train loss and,
    # weighting up the positive terms, larger than the unweighted dev loss
    assert all(r["val_loss_weighted"] > r["val_loss"] for r in val)
    epochs = [r for r in lines if r["phase"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert all(0 < r["pos_fraction_realised"] < 1 for r in epochs)


@pytest.mark.slow
def test_heartbeat_after_run(trained):
    _, result = trained
    beat = read_heartbeat(result.run_dir / "heartbeat.json")
    assert beat is not None
    assert beat["state"] == "done" and beat["step"] == 6 and beat["pid"] == os.getpid()
    assert beat["run_id"] == result.run_id
    assert beat["checkpoint_age_s"] is not None and beat["checkpoint_age_s"] >= 0
    for key in ("cpu_percent", "rss_gb", "host", "time", "epoch", "lr", "loss"):
        assert key in beat


@pytest.mark.slow
def test_checkpoints_load_without_pickle(trained):
    _, result = trained
    for path in (result.last_checkpoint, result.best_checkpoint):
        ckpt = torch.load(path, weights_only=True)
        assert ckpt["format"] == FORMAT
        assert ckpt["model_name"] == "conv_bigru"
        assert ckpt["n_channels"] == 19 and ckpt["fs"] == 256.0
        assert ckpt["window"] == 8 * 256 and ckpt["output_stride"] == 256
        assert ckpt["run_id"] == result.run_id
        assert ckpt["config"]["windows"]["length_s"] == 8
        assert isinstance(ckpt["cache_key"], str) and len(ckpt["cache_key"]) == 64
    last = load_checkpoint(result.last_checkpoint)
    assert last["epoch"] == 2 and last["step"] == 6 and last["step_in_epoch"] == 0
    assert last["sampler"] == {"epoch": 2, "position": 0}
    model, meta = load_model(result.best_checkpoint)
    assert not model.training and "optimizer" not in meta and meta["epoch"] >= 1
    with torch.no_grad():
        out = model(torch.zeros(2, 19, 8 * 256))
    assert out.shape == (2, 8)


@pytest.mark.slow
def test_changed_windows_need_no_rebuild(built, no_edf_reads):
    caches_before = sorted(p.name for p in (built / "cache").iterdir())
    cfg = make_cfg(
        built,
        built / "corpus",
        f"runs.root={built / 'runs_windows'}",
        "windows.length_s=4",
        "windows.stride_s=2",
        "train.epochs=1",
        "train.steps_per_epoch=2",
        "train.validate_each_epoch=false",
    )
    result = loop.train(cfg)
    assert result.state == "done"
    assert sorted(p.name for p in (built / "cache").iterdir()) == caches_before
    assert load_checkpoint(result.last_checkpoint)["window"] == 4 * 256


class NanModel(nn.Module):
    """A detector whose output is never finite (exercises the non-finite policy)."""

    def __init__(self, *, n_channels: int, fs: float) -> None:
        super().__init__()
        self.output_stride = 256
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[-1] // self.output_stride
        return self.scale * torch.full((x.shape[0], steps), float("nan"))


@pytest.fixture
def nan_model(monkeypatch):
    """NanModel registered for this test only (the registry is restored afterwards)."""
    from ictal.models import registry

    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    register("test_nan_model")(NanModel)
    return "test_nan_model"


@pytest.mark.slow
def test_nonfinite_loss_stops_with_clear_error(built, nan_model):
    cfg = make_cfg(
        built,
        built / "corpus",
        f"runs.root={built / 'runs_nan'}",
        "model.name=test_nan_model",
        "model.params={}",
        "train.max_nonfinite_in_a_row=3",
    )
    with pytest.raises(loop.TrainingError, match="not finite for 3 steps in a row"):
        loop.train(cfg)
    (run,) = (built / "runs_nan").iterdir()
    beat = read_heartbeat(run / "heartbeat.json")
    assert beat["state"] == "failed" and "TrainingError" in beat["error"]
    train_lines = [r for r in read_metrics(run / "metrics.jsonl") if r["phase"] == "train"]
    assert len(train_lines) == 3 and all(r["loss"] is None for r in train_lines)


@pytest.mark.slow
def test_resume_uses_frozen_config_with_new_paths(trained, tmp_path):
    from ictal.runs.directory import RunDir
    from ictal.runs.resume import resume_config

    cfg, result = trained
    now = load_config(None, [f"cache.root={tmp_path}", "train.lr=0.5"])
    resumed = resume_config(now, RunDir(result.run_dir))
    assert resumed.cache.root == str(tmp_path)  # machine path given now wins
    assert resumed.train.lr == cfg.train.lr  # experiment fields stay frozen
    assert resumed.corpus.root == cfg.corpus.root  # default given now: frozen value kept
    assert yaml.safe_load(resumed.to_yaml())["windows"]["length_s"] == 8


class ConstantModel(nn.Module):
    """A detector whose output ignores its one parameter: the dev loss never improves after
    the first validation, so early stopping must end the run."""

    def __init__(self, *, n_channels: int, fs: float) -> None:
        super().__init__()
        self.output_stride = 256
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[-1] // self.output_stride
        return 0.0 * self.w + torch.zeros((x.shape[0], steps))


@pytest.mark.slow
def test_early_stopping_is_on_by_default(built, monkeypatch, caplog):
    """The default patience (3 validations) ends a run whose dev loss stopped improving."""
    from ictal.models import registry

    monkeypatch.setattr(logging.getLogger("ictal"), "propagate", True)  # to caplog

    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    register("test_constant_model")(ConstantModel)
    cfg = make_cfg(
        built, built / "corpus", f"runs.root={built / 'runs_patience'}",
        "model.name=test_constant_model", "model.params={}", "train.epochs=8",
        "train.steps_per_epoch=2",
    )  # fmt: skip
    assert cfg.train.patience == 3
    with caplog.at_level("INFO"):
        result = loop.train(cfg)
    assert result.stopped_early and result.epochs_done == 4 and result.best_epoch == 0
    assert "no validation gain for 3 epochs (train.patience=3)" in caplog.text


def _lrs(run: Path) -> list[float]:
    return [r["lr"] for r in read_metrics(run / "metrics.jsonl") if r["phase"] == "train"]


@pytest.mark.slow
def test_warmup_is_a_fraction_of_the_run(built, monkeypatch, caplog):
    """Warm-up by default spans 5 % of the run's steps whatever its length, so a short run
    reaches its learning rate; an explicit warm-up longer than the run is warned about."""
    monkeypatch.setattr(logging.getLogger("ictal"), "propagate", True)  # to caplog
    base = ["train.warmup_steps=null", "train.steps_per_epoch=10", "train.lr=0.001"]
    cfg = make_cfg(built, built / "corpus", f"runs.root={built / 'runs_warm'}", *base)
    lrs = _lrs(loop.train(cfg).run_dir)
    assert len(lrs) == 20 and max(lrs) == pytest.approx(0.001)  # 1 warm-up step of 20
    long = make_cfg(
        built, built / "corpus", f"runs.root={built / 'runs_long'}", *base,
        "train.warmup_steps=1000",
    )  # fmt: skip
    with caplog.at_level("WARNING"):
        lrs = _lrs(loop.train(long).run_dir)
    assert max(lrs) <= 0.001 * 20 / 1000 + 1e-12
    assert "train.warmup_steps=1000 exceeds the run's 20 steps" in caplog.text


def test_deterministic_kernels_without_loading_the_compiler():
    # A fresh interpreter: deterministic kernels on, then restored, and torch's compiler
    # (seconds of start-up for every training) never imported for it.
    code = (
        "import sys, torch\n"
        "from ictal.train.setup import deterministic\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "with deterministic(torch.device('cpu')):\n"
        "    assert torch.are_deterministic_algorithms_enabled()\n"
        "    assert torch.is_deterministic_algorithms_warn_only_enabled()\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.startswith(('torch._inductor', 'torch._dynamo'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ictal_env(), capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_an_interrupt_before_the_first_step_names_the_run_to_resume(built, monkeypatch, capsys):
    """SIGTERM between the run's creation and its first step: exit 130 and a hint naming the
    run (``ictal train`` again would start a new one beside it), which then resumes."""
    from ictal.cli.exits import Interrupted, conclude

    runs = built / "runs_early_stop"
    cfg = make_cfg(built, built / "corpus", f"runs.root={runs}", "train.steps_per_epoch=2")

    def stop(*args, **kwargs):
        raise Interrupted("received SIGTERM")

    with monkeypatch.context() as patch:
        patch.setattr(loop, "describe", stop)  # the log line just before training starts
        with pytest.raises(Interrupted) as info:
            loop.train(cfg)
    (run,) = runs.iterdir()
    assert read_heartbeat(run / "heartbeat.json")["state"] == "stopped"  # resumable
    capsys.readouterr()
    assert conclude(info.value) == 130
    assert f"continue with `ictal train --run {run}`" in capsys.readouterr().err
    result = loop.train(cfg, resume=run)
    assert result.run_dir == run and read_heartbeat(run / "heartbeat.json")["state"] == "done"
