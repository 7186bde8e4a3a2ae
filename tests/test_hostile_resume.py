"""A run's own ``last.pt`` is a file like any other: one whose values are not what training
writes (a key gone, a tensor of another shape, an RNG state of another kind) stops
``ictal train --run`` with one line naming the file and the fix (exit 3), never a traceback,
and the run's files stay as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import run_ictal, settings, small_built_corpus, tiny_training

FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=2", "train.heartbeat_s=0.5")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("hostile-resume")
    small_built_corpus(tmp, seed=5, fast=FAST)
    res = run_ictal("train", *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = [p for p in (tmp / "runs").iterdir() if p.is_dir()]
    return tmp, run


def _drop_optimizer(ck: dict) -> None:
    del ck["optimizer"]


def _reshape_a_weight(ck: dict) -> None:
    name = next(iter(ck["model"]))
    ck["model"][name] = torch.zeros(3, 1, 7)


def _foreign_rng(ck: dict) -> None:
    ck["rng"]["python"] = {"version": "x", "state": [1, 2], "gauss": None}


def _epoch_text(ck: dict) -> None:
    ck["sampler"] = "not a state"


@pytest.mark.parametrize(
    "tamper",
    [_drop_optimizer, _reshape_a_weight, _foreign_rng, _epoch_text],
    ids=lambda f: f.__name__,
)
@pytest.mark.slow
def test_a_tampered_last_checkpoint_is_refused_in_one_line(trained, tamper, tmp_path):
    tmp, run = trained
    copy = tmp_path / "runs" / run.name
    shutil.copytree(run, copy, symlinks=True)
    last = copy / "checkpoints" / "last.pt"
    ck = torch.load(last, weights_only=True)
    tamper(ck)
    torch.save(ck, last)
    before = last.read_bytes()
    res = run_ictal("train", "--run", str(copy), *settings(tmp, tmp_path / "runs", FAST))
    assert res.returncode == 3, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    assert f"checkpoint {last} does not hold what training writes" in res.stderr
    assert "move it aside" in res.stderr
    assert last.read_bytes() == before  # nothing rewritten over the evidence


@pytest.mark.slow
def test_a_bare_checkpoint_names_no_directory_to_read(trained, tmp_path):
    """A checkpoint outside any run keeps its own experiment for ``ictal export`` but never
    its roots: an embedded ``cache.root`` pointing elsewhere is not read; today's is."""
    tmp, run = trained
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp / "cache", elsewhere)
    ck = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    ck["config"]["cache"]["root"] = str(elsewhere)
    bare = tmp_path / "bare.pt"
    torch.save(ck, bare)
    work = tmp_path / "work"
    work.mkdir()
    res = run_ictal("export", str(bare), "--format", "torchscript", "--out", str(work / "x"),
                    cwd=work)  # fmt: skip
    assert res.returncode == 3, (res.returncode, res.stderr[-2000:])
    assert "no cache for the checkpoint's config under data/cache:" in res.stderr
    assert str(elsewhere) not in res.stderr
    res = run_ictal("export", str(bare), "--format", "torchscript", "--out", str(work / "y"),
                    "--set", f"cache.root={tmp / 'cache'}", cwd=work)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
