"""`ictal export`: ONNX and TorchScript exports of the default detector match torch on real
cache windows, with a sidecar that says how to use them (dev-tuned operating point or not);
`ictal detect --model` runs an ONNX export without torch and finds the checkpoint's events;
bad arguments and a failed check are clear errors that leave nothing half-valid behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_ictal, settings, small_built_corpus, tiny_training, torchless_env
from ictal.cache.locate import locate
from ictal.cache.manifest import open_cache
from ictal.config_file import load_config
from ictal.detect.records import LOG_DIR, decode
from ictal.io.framelog import read_records, segments
from ictal.models.checkpoint import load_model

FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=3", "train.heartbeat_s=1")

SIDECAR_KEYS = {"format", "model", "preprocessing", "windowing", "output", "operating_point",
                "checkpoint", "check"}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A built 3-patient corpus and a tiny trained run (no dev operating points yet)."""
    tmp = small_built_corpus(tmp_path_factory.mktemp("export"), 31, FAST)
    res = run_ictal("train", *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (tmp / "runs").iterdir()
    return tmp, run / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def tuned(trained) -> Path:
    """A copy of the run with its dev operating points (`ictal evaluate --split dev`)."""
    tmp, ckpt = trained
    run = tmp / "runs-tuned" / ckpt.parent.parent.name
    shutil.copytree(ckpt.parent.parent, run)
    copy = run / "checkpoints" / "last.pt"
    res = run_ictal("evaluate", str(copy), "--split", "dev")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (run / "eval-last-dev" / "operating_points.json").is_file()
    return copy


def _cache_windows(tmp: Path, window: int) -> np.ndarray:
    """Two real windows of the first cached recording, read independently of the export."""
    cfg = load_config(None, [f"corpus.root={tmp / 'corpus'}", f"cache.root={tmp / 'cache'}"])
    view = open_cache(locate(cfg).path)
    array = np.load(view.array_path(view.recordings[0]), mmap_mode="r")
    return np.stack([np.asarray(array[s : s + window], np.float32).T for s in (0, window)])


def _torch_logits(ckpt: Path, x: np.ndarray) -> np.ndarray:
    model, _ = load_model(ckpt)
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.slow
def test_onnx_export_matches_torch_and_says_how_to_use_it(trained, tmp_path):
    import onnxruntime as ort

    tmp, ckpt = trained
    out = tmp_path / "onnx"
    res = run_ictal("export", str(ckpt), "--format", "onnx", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads((out / "ictal-model.json").read_text())
    assert set(doc) >= SIDECAR_KEYS
    pre, win, op = doc["preprocessing"], doc["windowing"], doc["operating_point"]
    assert len(pre["channels"]) == 19 and pre["montage"] == "average" and pre["fs"] == 256.0
    for key in ("bandpass_hz", "notch_hz", "filter_order", "normalisation", "missing_channels"):
        assert key in pre
    assert win["window_samples"] == 8 * 256 and win["hop_samples"] == 4 * 256
    assert doc["output"] == {"stride": 256, "rate_hz": 1.0}
    assert op["tuned"] is False and op["threshold"] == 0.5 and "evaluate.threshold" in op["source"]
    assert doc["check"]["max_abs_diff"] <= 1e-4 and doc["check"]["compared"] == "logits"
    # an independent check: onnxruntime on real windows (and a longer input) vs torch
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = _cache_windows(tmp, win["window_samples"])
    for batch in (x, x.transpose(1, 0, 2).reshape(1, x.shape[1], -1)):
        got = session.run(None, {"eeg": np.ascontiguousarray(batch)})[0]
        np.testing.assert_allclose(got, _torch_logits(ckpt, batch), atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_matches_torch(trained, tmp_path):
    tmp, ckpt = trained
    out = tmp_path / "ts"
    res = run_ictal("export", str(ckpt), "--format", "torchscript", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads((out / "ictal-model.json").read_text())
    assert doc["model"]["format"] == "torchscript" and doc["model"]["file"] == "model.pt"
    scripted = torch.jit.load(str(out / "model.pt"))
    x = _cache_windows(tmp, doc["windowing"]["window_samples"])
    with torch.inference_mode():
        got = scripted(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _torch_logits(ckpt, x), atol=1e-4, rtol=0)


def _events(out: Path) -> dict[str, list]:
    recs = [decode(p) for p in read_records(segments(out / LOG_DIR))]
    return {r["name"]: r["events"] for r in recs if r is not None and r["status"] == "done"}


@pytest.mark.slow
def test_detect_model_without_torch_finds_the_checkpoints_events(trained, tuned, tmp_path):
    tmp, _ = trained
    out = tmp_path / "onnx"
    res = run_ictal("export", str(tuned), "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads((out / "ictal-model.json").read_text())
    ops = json.loads((tuned.parent.parent / "eval-last-dev" / "operating_points.json").read_text())
    assert (
        doc["operating_point"]["tuned"] is True
        and "eval-last-dev" in doc["operating_point"]["source"]
    )
    assert doc["operating_point"]["min_duration_s"] == ops["postprocess"]["min_duration_s"]
    edf = str(tmp / "corpus" / "edf")
    det = ["--workers", "1", "--save-probs"]
    res = run_ictal("detect", str(tuned), edf, "--out", str(tmp_path / "det-ckpt"), *det)
    assert res.returncode == 0, res.stderr[-2000:]
    # torch made unimportable for the ONNX path, and nothing may even try (an import of an
    # installed torch, caught as "not installed" on a machine without it, cost 2 s of every
    # ONNX detect's start-up)
    env, tried = torchless_env(tmp_path)
    res = run_ictal("detect", "--model", str(out), edf, "--out", str(tmp_path / "det-onnx"),
                    *det, env=env)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert not tried.exists(), "the ONNX path tried to import torch"
    assert "dev-tuned" in res.stdout
    mine, theirs = _events(tmp_path / "det-onnx"), _events(tmp_path / "det-ckpt")
    assert mine.keys() == theirs.keys() and len(mine) >= 6
    for name, events in theirs.items():
        assert [e[:2] for e in mine[name]] == [e[:2] for e in events], name
        assert [e[2] for e in mine[name]] == pytest.approx([e[2] for e in events], abs=1e-4)
        probs = [np.load(tmp_path / d / "probs" / f"{name}.npy") for d in ("det-onnx", "det-ckpt")]
        np.testing.assert_allclose(probs[0], probs[1], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_bad_arguments_are_one_clear_line(trained, tmp_path):
    _, ckpt = trained
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint\n")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    cases = [
        (["export", str(bad), "--out", str(tmp_path / "a")], 2, "bad.pt"),
        (["export", str(ckpt), "--out", str(full)], 2, "not empty"),
        (["export", str(ckpt), "--format", "tflite", "--out", str(tmp_path / "b")], 2, "--format"),
    ]
    nocache = ["--set", f"cache.root={tmp_path / 'nocache'}"]
    cases.append((["export", str(ckpt), "--out", str(tmp_path / "c"), *nocache], 3, "ictal build"))
    for args, code, said in cases:
        res = run_ictal(*args)
        assert res.returncode == code, (args, res.stderr)
        assert said in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "a").exists()


def test_a_failed_check_leaves_no_model(trained, tmp_path):
    from ictal.export.bundle import ExportMismatch, export_model

    _, ckpt = trained
    out = tmp_path / "onnx"
    with pytest.raises(ExportMismatch, match="differs from torch by") as err:
        export_model(ckpt, "onnx", out, tolerance=-1.0)  # no difference passes: a mismatch
    assert err.value.exit_code == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("model", "exit_code", "words"),
    [
        ({"format": "onnx", "file": "../../outside.onnx"}, 3, "not a plain name"),
        ({"format": "onnx", "file": "/etc/passwd"}, 3, "not a plain name"),
        ({"format": "onnx"}, 3, "malformed"),
        ("not a mapping", 3, "malformed"),
    ],
)
def test_a_hostile_sidecar_is_refused_before_anything_is_read(
    tmp_path: Path, model: object, exit_code: int, words: str
) -> None:
    """detect --model reads the sidecar as untrusted input: its model file must be a plain
    name inside the folder, and a malformed sidecar is a clear refusal, not a traceback."""
    from ictal.errors import IctalError
    from ictal.export.runtime import load_exported
    from ictal.export.sidecar import FORMAT, SIDECAR

    (tmp_path / "outside.onnx").write_bytes(b"not read")
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    (folder / SIDECAR).write_text(json.dumps({"format": FORMAT, "model": model}))
    with pytest.raises(IctalError) as caught:
        load_exported(folder)
    assert int(caught.value.exit_code) == exit_code and words in str(caught.value)
