"""braindecode models by name: ``braindecode/<Class>`` slid over the input keeps the model
contract and learns; the CLI trains and exports one, its checkpoints recording
braindecode and its version; names that are not a braindecode model, parameters it does not
take and a missing braindecode are refused in one line (exit 2)."""

from __future__ import annotations

import importlib.metadata as metadata
import warnings
from pathlib import Path

import pytest
import torch

from conftest import run_ictal, settings, small_built_corpus, tiny_training
from ictal.models import braindecode as bd
from ictal.models.checkpoint import CheckpointError, ModelSourceError, rebuild
from ictal.models.contract import check_contract
from ictal.models.registry import ModelNotFound, construct, find, resolve

FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=3", model=False)


@pytest.fixture(scope="module")
def installed() -> str:
    """braindecode's version; the tests that need it are skipped without it."""
    pytest.importorskip("braindecode")
    return metadata.version("braindecode")


def _build(name: str, **params: object) -> torch.nn.Module:
    builder, _ = resolve(name)
    return construct(builder, name, 19, 256.0, params)


@pytest.mark.parametrize("cls", ["EEGNetv4", "ShallowFBCSPNet"])
def test_a_braindecode_model_keeps_the_contract_and_learns(installed: str, cls: str) -> None:
    name = f"braindecode/{cls}"
    torch.manual_seed(0)
    model = _build(name)
    assert model.output_stride == 256 and model.n_times == 256 + 2 * 512
    assert check_contract(model, name, 19, 2048) == 256
    assert model.source == f"braindecode {installed}" and model.DESCRIPTION
    model.train()
    x = torch.randn(2, 19, 2048)
    logits = model(x)
    assert logits.shape == (2, 8)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(2, 8)).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # step t sees only its own step and its context: changing the last second moves only
    # the steps whose windows reach it (the last three with 2 s of context)
    model.eval()
    with torch.no_grad():
        y = x.clone()
        y[..., -256:] += 5.0
        moved = (model(y) - model(x)).abs()[0] > 1e-6
    assert moved.tolist() == [False] * 5 + [True] * 3
    # traced (braindecode's signal properties all set: tracing reads every attribute), the
    # trace runs at another length and batch
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes, as ictal export ignores them
        traced = torch.jit.trace(model, (x[:1],), check_trace=False)
        longer = torch.randn(3, 19, 3072)
        assert torch.allclose(traced(longer), model(longer), atol=1e-5)
    # half-second steps with one second of context
    half = _build(name, step_s=0.5, context_s=1.0)
    assert half.output_stride == 128 and check_contract(half, name, 19, 2048) == 128


def test_names_and_source_without_importing(installed: str) -> None:
    found = find("braindecode/EEGNetv4")
    assert found.source.as_dict() == {"kind": "braindecode",
                                      "target": "braindecode.models:EEGNetv4",
                                      "package": "braindecode", "version": installed}  # fmt: skip
    names = bd.braindecode_names()
    assert {"braindecode/EEGNetv4", "braindecode/ShallowFBCSPNet"} <= set(names)
    assert "braindecode/TimeDistributed" not in names  # a module without n_chans/n_times


def test_without_braindecode_the_install_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bd, "installed_version", lambda: None)
    with pytest.raises(ModelNotFound, match=r"pip install 'ictal\[braindecode\]'"):
        find("braindecode/EEGNetv4")
    assert bd.braindecode_names() == []


@pytest.mark.slow
def test_train_evaluate_export_and_refusals(installed: str, tmp_path: Path) -> None:
    small_built_corpus(tmp_path, seed=7, fast=FAST)

    def train(runs: str, name: str, *extra: str):  # type: ignore[no-untyped-def]
        return run_ictal("train", *settings(tmp_path, runs, FAST, f"model.name={name}", *extra))

    done = train("runs", "braindecode/EEGNetv4")
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    best = run / "checkpoints" / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["model_name"] == "braindecode/EEGNetv4" and ckpt["output_stride"] == 256
    assert ckpt["model_source"] == {"kind": "braindecode",
                                    "target": "braindecode.models:EEGNetv4",
                                    "package": "braindecode", "version": installed}  # fmt: skip

    # exported (rebuilt from the checkpoint, checked against torch on cache windows)
    exported = run_ictal("export", str(best), "--format", "onnx", "--out", str(tmp_path / "x"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "x" / "ictal-model.json").is_file()
    traced = run_ictal("export", str(best), "--format", "torchscript", "--out", str(tmp_path / "t"))
    assert traced.returncode == 0, traced.stderr[-3000:]

    # rebuilt from the installed braindecode only at the recorded version
    assert rebuild(ckpt, best).output_stride == 256
    # an altered checkpoint: sizes past the bounds, a name that is no braindecode class
    for edit, said in [({"model_params": {"context_s": 1e9}}, "context_s"),
                       ({"model_params": {"F1": 10**9}}, "larger than"),
                       ({"model_name": "braindecode/os"}, "braindecode class name")]:  # fmt: skip
        with pytest.raises((CheckpointError, ModelSourceError), match=said):
            rebuild({**ckpt, **edit}, best)
    ckpt["model_source"]["version"] = "0.0.1"
    with pytest.raises(ModelSourceError) as refused:
        rebuild(ckpt, best)
    assert "pip install 'braindecode==0.0.1'" in str(refused.value.fix)

    for name, extra, said in [
        ("braindecode/NoSuchNet", (), "has no model 'NoSuchNet'"),
        ("braindecode/TimeDistributed", (), "not a braindecode model: an nn.Module class"),
        ("braindecode/../x", (), "a braindecode class name"),
        ("braindecode/EEGNetv4", ("model.params={nope: 1}",), "nope not accepted"),
        ("braindecode/EEGNetv4", ("model.params={step_s: 0.3}",), "whole number"),
        ("braindecode/EEGNetv4", ("model.params={F1: 100000000}",), "larger than"),
        # braindecode 0.8.1's own failure (AttributeError) for a parameter it takes
        (
            "braindecode/ShallowFBCSPNet",
            ("model.params={split_first_layer: false}",),
            "braindecode's ShallowFBCSPNet: AttributeError",
        ),
    ]:
        res = train("runs-bad", name, *extra)
        assert res.returncode == 2, (name, res.stderr[-2000:])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert said in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert len(lines) <= 2, res.stderr  # the error line (and at most a fix line)
