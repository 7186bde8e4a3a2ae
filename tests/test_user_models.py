"""A model from outside Ictal: an out-of-tree package (its own pyproject, installed with pip
into a directory the test puts on PYTHONPATH) is trained by entry point and by import path
(a function marked ``@ictal.models.factory``), resumed, evaluated (by import path only when
the user names it) and exported through the CLI; a checkpoint whose package is missing or of
another version is refused (exit 3); a model that breaks the output contract is refused
before training, with the shapes named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ictal_env, run_ictal, settings, small_built_corpus, tiny_training

FAST = tiny_training(
    "loader.num_workers=1",
    "train.epochs=2",
    "train.steps_per_epoch=3",
    "train.heartbeat_s=1",
    model=False,
)

PACKAGE = '''
import time

import torch
from torch import nn

from ictal.models import factory


class Tiny(nn.Module):
    """One strided convolution per second of input, then a 1x1 head: logits per second."""

    def __init__(self, n_channels, stride, width, drop_last, delay=0.0):
        super().__init__()
        self.output_stride = stride
        self.drop_last, self.delay = drop_last, delay
        self.conv = nn.Conv1d(n_channels, width, kernel_size=stride, stride=stride)
        self.head = nn.Conv1d(width, 1, kernel_size=1)

    def forward(self, x):
        if self.training and self.delay:  # a slow training step, so a test can stop it
            time.sleep(self.delay)
        y = self.head(torch.relu(self.conv(x))).squeeze(1)
        return y[:, :-1] if self.drop_last else y


@factory
def tiny(n_channels, fs, width=4, delay=0.0):
    return Tiny(n_channels, int(fs), width, drop_last=False, delay=delay)


@factory
def short(n_channels, fs):
    return Tiny(n_channels, int(fs), 4, drop_last=True)


def unmarked(n_channels, fs):
    return Tiny(n_channels, int(fs), 4, drop_last=False)
'''


def _install(tmp: Path, version: str) -> Path:
    """pip-install the package at ``version`` into its own directory; return that directory."""
    src = tmp / f"src-{version}"
    (src / "tinymodels").mkdir(parents=True)
    (src / "tinymodels" / "__init__.py").write_text(PACKAGE)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "ictal-tiny-models"\nversion = "{version}"\n'
        '[project.entry-points."ictal.models"]\ntiny = "tinymodels:tiny"\n'
        "[tool.setuptools]\npackages = ['tinymodels']\n"
    )
    site = tmp / f"site-{version}"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return site


def _train_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [r["step"] for r in map(json.loads, lines) if r.get("phase") == "train"]


def _wait_for_step(runs: Path, step: int, proc: subprocess.Popen) -> Path:
    """The run directory once its metrics hold ``step`` (polled; the process must live)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for run in runs.glob("*/") if runs.is_dir() else []:
            if max(_train_steps(run), default=0) >= step:
                return run
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"no training step {step} within 180 s")


def _env(site: Path | None) -> dict[str, str]:
    env = ictal_env()
    if site is not None:
        env["PYTHONPATH"] = env["PYTHONPATH"] + os.pathsep + str(site)
    return env


@pytest.mark.slow
def test_an_out_of_tree_model_from_training_to_export(tmp_path: Path) -> None:
    small_built_corpus(tmp_path, seed=4, fast=FAST)
    v1, v2 = _install(tmp_path, "0.1.0"), _install(tmp_path, "0.2.0")

    def ictal(
        *args: str, site: Path | None = v1, runs: str = "runs"
    ) -> subprocess.CompletedProcess:
        return run_ictal(*args, env=_env(site))

    # trained by entry point, stopped by SIGTERM after its second step, then resumed
    common = settings(tmp_path, "runs", FAST, "model.name=tiny",
                      "model.params={width: 3, delay: 0.3}", "train.epochs=3")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "ictal.cli", "train", *common],
                            env=_env(v1), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    run = _wait_for_step(tmp_path / "runs", 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["model_source"] == {
        "kind": "entry_point",
        "target": "tinymodels:tiny",
        "package": "ictal-tiny-models",
        "version": "0.1.0",
    }
    assert ckpt["model"]["conv.weight"].shape[0] == 3  # model.params reached the factory
    assert ckpt["step"] < 9
    resumed = ictal("train", "--resume", *common)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [s for s in _train_steps(run)] == list(range(1, 10))  # every step once

    best = str(run / "checkpoints" / "best.pt")
    evaluated = ictal("evaluate", best, "--split", "dev")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]

    other = ictal("evaluate", best, "--split", "dev", site=v2)
    assert other.returncode == 3, other.stderr[-3000:]
    assert "ictal-tiny-models 0.1.0" in other.stderr and "0.2.0" in other.stderr
    assert "--allow-version-mismatch" in other.stderr and "Traceback" not in other.stderr
    allowed = ictal("evaluate", best, "--split", "dev", "--allow-version-mismatch", site=v2)
    assert allowed.returncode == 0, allowed.stderr[-3000:]

    # exported with its dev operating point, checked against torch on cache windows
    exported = ictal("export", best, "--format", "onnx", "--out", str(tmp_path / "onnx"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    sidecar = json.loads((tmp_path / "onnx" / "ictal-model.json").read_text())
    assert sidecar["model"]["name"] == "tiny" and sidecar["output"]["stride"] == 256
    assert sidecar["model"]["source"]["version"] == "0.1.0"
    assert sidecar["operating_point"]["tuned"] is True

    missing = ictal("evaluate", best, "--split", "dev", site=None)
    assert missing.returncode == 3, missing.stderr[-3000:]
    assert "pip install 'ictal-tiny-models==0.1.0'" in missing.stderr

    # the same code by import path; its distribution is found from the module
    by_path = ictal("train", *settings(tmp_path, "runs-path", FAST, "model.name=tinymodels:tiny"))
    assert by_path.returncode == 0, by_path.stderr[-3000:]
    (run2,) = sorted((tmp_path / "runs-path").iterdir())
    source = torch.load(run2 / "checkpoints" / "last.pt", weights_only=True)["model_source"]
    assert source["kind"] == "import" and source["version"] == "0.1.0"
    # evaluated only when the user's own config names that path (the run's frozen config
    # is not the user's), or with --trust-model-code
    best2 = str(run2 / "checkpoints" / "best.pt")
    refused = ictal("evaluate", best2, "--split", "dev")
    assert refused.returncode == 3 and "--trust-model-code" in refused.stderr, refused.stderr
    assert "'tinymodels:tiny'" in refused.stderr and "Traceback" not in refused.stderr
    named = ictal("evaluate", best2, "--split", "dev", "--set", "model.name=tinymodels:tiny")
    assert named.returncode == 0, named.stderr[-3000:]
    unmarked = ictal("train", *settings(tmp_path, "runs-x", FAST, "model.name=tinymodels:unmarked"))
    assert unmarked.returncode == 2 and "@ictal.models.factory" in unmarked.stderr

    # a model one output step short is refused before training, with the shapes named
    short = ictal("train", *settings(tmp_path, "runs-short", FAST, "model.name=tinymodels:short"))
    assert short.returncode == 3, short.stderr[-3000:]
    assert "(2, 19, 2048)" in short.stderr and "(2, 7)" in short.stderr
    assert "(2, 8)" in short.stderr and "Traceback" not in short.stderr
    assert not (tmp_path / "runs-short").exists() or not any((tmp_path / "runs-short").iterdir())
    unknown = ictal("train", *settings(tmp_path, "runs-short", FAST, "model.name=nope.mod:f"))
    assert unknown.returncode == 2 and "nope.mod" in unknown.stderr
