"""The model zoo's seizure_transformer and tcn_ssm: the contract at several lengths, gradients
to every parameter, the published sizes, ONNX with a dynamic time axis, the selective scan
against its step-by-step definition, the scan path decision and doctor's line, and one real
`ictal train` per model (with an exact resume for tcn_ssm)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_ictal, settings, small_built_corpus, stall_env, tiny_training, train_line
from ictal.config import ConfigError
from ictal.models import build_model
from ictal.models import selective_scan as scan
from ictal.models.checkpoint import load_checkpoint, load_model
from ictal.models.contract import check_contract
from ictal.runs.metrics import read_metrics
from test_models import check_all_parameters_get_gradients

ST_SMALL = {"filters": [4, 8, 8, 8, 16], "layers": 1, "heads": 2, "ff": 16, "res_kernels": [3, 2]}
SSM_SMALL = {"width": 8, "tcn_depth": 1, "ssm_layers": 1, "d_state": 4, "expand": 2}
ST_PARAMS = 37_848_897  # published defaults, 19 channels (as docs/models.md states)
SSM_PARAMS = 338_881  # defaults, 19 channels at 256 Hz


def small(name: str, n_channels: int = 3) -> torch.nn.Module:
    """A small model at 64 Hz (tcn_ssm: 8 Hz out, output_stride 8), in eval mode."""
    if name == "seizure_transformer":
        return build_model(name, n_channels=n_channels, fs=64, **ST_SMALL).eval()
    return build_model(name, n_channels=n_channels, fs=64, out_hz=8, **SSM_SMALL).eval()


@pytest.mark.parametrize("length", [1, 2, 31, 33, 100, 257, 640])
def test_seizure_transformer_gives_one_logit_per_sample_at_any_length(length: int) -> None:
    model = small("seizure_transformer")
    assert model.output_stride == 1
    with torch.no_grad():
        out = model(torch.randn(2, 3, length))
    assert out.shape == (2, length) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("length", [8, 9, 15, 43, 264])
def test_tcn_ssm_gives_one_logit_per_output_step(length: int) -> None:
    model = small("tcn_ssm")
    assert model.output_stride == 8
    with torch.no_grad():
        out = model(torch.randn(2, 3, length))
    assert out.shape == (2, length // 8) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="shorter than one output step"):
        model(torch.randn(1, 3, 7))


@pytest.mark.parametrize("name", ["seizure_transformer", "tcn_ssm"])
def test_the_contract_check_accepts_both(name: str) -> None:
    model = small(name, n_channels=19)
    assert check_contract(model, name, 19, 8 * 64 + 5) == model.output_stride


@pytest.mark.parametrize("name", ["seizure_transformer", "tcn_ssm"])
def test_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    check_all_parameters_get_gradients(small(name), torch.randn(2, 3, 96))


@pytest.mark.parametrize("name", ["seizure_transformer", "tcn_ssm"])
def test_eval_mode_is_deterministic(name: str) -> None:
    model, x = small(name), torch.randn(2, 3, 200)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_published_defaults_build_with_their_parameter_counts() -> None:
    st = build_model("seizure_transformer", n_channels=19, fs=256)
    assert sum(p.numel() for p in st.parameters()) == ST_PARAMS
    assert st.d_model == 512 and len(st.transformer) == 8 and len(st.res_stack) == 7
    ssm = build_model("tcn_ssm", n_channels=19, fs=256)
    assert sum(p.numel() for p in ssm.parameters()) == SSM_PARAMS
    assert ssm.output_stride == 256
    with torch.no_grad():  # a short input through the full-size transformer
        assert st.eval()(torch.randn(1, 19, 515)).shape == (1, 515)
        assert ssm.eval()(torch.randn(1, 19, 4 * 256)).shape == (1, 4)
    for cls in (type(st), type(ssm)):
        assert isinstance(cls.DESCRIPTION, str) and 0 < len(cls.DESCRIPTION) <= 100


def test_positions_are_computed_for_any_length_up_to_the_longest_window() -> None:
    from ictal.models.metadata import MAX_WINDOW
    from ictal.models.seizure_transformer import sinusoid

    length, d = MAX_WINDOW // 32, 8
    pe = sinusoid(length, d, torch.zeros(1, dtype=torch.float16))
    assert pe.shape == (length, d) and pe.dtype == torch.float16
    p = torch.tensor([0.0, 1.0, 777.0, length - 1.0])
    for i in range(d // 2):
        freq = 10000.0 ** (-2 * i / d)
        torch.testing.assert_close(
            pe[p.long(), 2 * i].float(), torch.sin(p * freq), atol=2e-3, rtol=0
        )
        torch.testing.assert_close(
            pe[p.long(), 2 * i + 1].float(), torch.cos(p * freq), atol=2e-3, rtol=0
        )
    buffers = [b.numel() for b in small("seizure_transformer").buffers()]
    assert max(buffers) <= 16  # BatchNorm statistics (at most 16 channels): no position table


@pytest.mark.parametrize(
    ("name", "params", "said"),
    [
        ("seizure_transformer", {"filters": [8] * 9}, "stages must be"),
        ("seizure_transformer", {"filters": [8, 1 << 20]}, "filters must be"),
        ("seizure_transformer", {"heads": 3}, "must divide d_model"),
        ("seizure_transformer", {"encoder_kernels": [10, 9, 7, 7, 5]}, "must be odd"),
        ("seizure_transformer", {"decoder_kernels": [3, 5]}, "as long"),
        ("tcn_ssm", {"d_state": 100000}, "d_state must be"),
        ("tcn_ssm", {"ssm_layers": True}, "ssm_layers must be"),
        ("tcn_ssm", {"kernel": "bogus"}, "model.params.kernel must be one of"),
    ],
)
def test_sizes_from_untrusted_params_are_bounded(name: str, params: dict, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        build_model(name, n_channels=2, fs=64, **params)


def _onnx_session(model: torch.nn.Module, length: int):
    ort = pytest.importorskip("onnxruntime")
    buffer = io.BytesIO()
    with pytest.warns():  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            model,
            (torch.randn(2, model.n_channels, length),),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["eeg"],
            output_names=["logits"],
            dynamic_axes={"eeg": {0: "batch", 2: "samples"}, "logits": {0: "batch", 1: "steps"}},
        )
    return ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(("name", "length"), [("seizure_transformer", 101), ("tcn_ssm", 96)])
def test_onnx_export_matches_torch_at_a_length_and_twice_it(name: str, length: int) -> None:
    model = small(name)
    session = _onnx_session(model, length)
    for samples, batch in ((length, 2), (2 * length, 3)):
        x = torch.randn(batch, 3, samples)
        with torch.no_grad():
            want = model(x).numpy()
        got = session.run(None, {"eeg": x.numpy()})[0]
        assert got.shape == want.shape == (batch, samples // model.output_stride)
        assert abs(got - want).max() <= 1e-4


def _scan_inputs(length: int, groups: int | None = None, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    b, d, n = 2, 6, 4
    shape = (b, n, length) if groups is None else (b, groups, n, length)
    return {
        "u": torch.randn(b, d, length, generator=g),
        "delta": torch.randn(b, d, length, generator=g),
        "A": -torch.rand(d, n, generator=g) * 4,
        "B": torch.randn(shape, generator=g),
        "C": torch.randn(shape, generator=g),
        "D": torch.randn(d, generator=g),
        "z": torch.randn(b, d, length, generator=g),
        "delta_bias": torch.randn(d, generator=g),
        "delta_softplus": True,
    }


@pytest.mark.parametrize(("length", "groups"), [(1, None), (7, None), (64, None), (300, None),
                                                (37, 2)])  # fmt: skip
def test_the_reference_scan_equals_the_sequential_definition(length: int, groups: int | None):
    args = _scan_inputs(length, groups, seed=length)
    want = scan.selective_scan_loop(**args)
    got = scan.selective_scan_ref(**args)
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    bare = {k: args[k] for k in ("u", "A", "B", "C")}  # no D, z, bias, softplus
    bare["delta"] = args["delta"].abs()  # a step is never negative (exp(delta A) <= 1)
    torch.testing.assert_close(
        scan.selective_scan_ref(**bare).double(), scan.selective_scan_loop(**bare),
        atol=1e-5, rtol=1e-5,
    )  # fmt: skip


def test_the_reference_scan_returns_the_last_state() -> None:
    args = _scan_inputs(20)
    y, last = scan.selective_scan_ref(**args, return_last_state=True)
    longer = _scan_inputs(20)  # one more step with zero input: the state only decays
    for key in ("u", "delta", "z"):
        longer[key] = torch.cat([longer[key], torch.zeros_like(longer[key][..., :1])], -1)
    for key in ("B", "C"):
        longer[key] = torch.cat([longer[key], torch.ones_like(longer[key][..., :1])], -1)
    longer["D"] = longer["z"] = None
    y2 = scan.selective_scan_ref(**longer)
    delta_last = torch.nn.functional.softplus(args["delta_bias"])[None, :, None]  # delta=0+bias
    decayed = torch.exp(delta_last * args["A"][None]) * last
    torch.testing.assert_close(y2[..., -1], decayed.sum(-1), atol=1e-5, rtol=1e-5)
    assert y.shape == (2, 6, 20)


def test_scan_path_is_one_decision() -> None:
    assert scan.scan_path("reference", "cuda")[0] == "reference"
    assert scan.scan_path("auto", "cpu") == ("reference", "auto: the fused kernel is CUDA-only")
    assert scan.scan_path("nope", "cpu")[0] == "unusable"
    fn, why = scan.fused_kernel()
    if fn is None:
        assert scan.scan_path("fused", "cuda") == (
            "unusable",
            f"model.params.kernel=fused but {why}",
        )
        assert scan.scan_path("auto", "cuda") == ("reference", f"auto: {why}")
        with pytest.raises(ConfigError, match=r"model\.params\.kernel=fused but mamba_ssm"):
            build_model("tcn_ssm", n_channels=2, fs=64, kernel="fused")


def test_a_fused_kernel_failing_under_auto_is_one_warning_and_the_reference(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(scan, "scan_path", lambda kernel, device: ("fused", "test"))
    monkeypatch.setattr(scan, "fused_kernel", lambda: (broken, ""))
    monkeypatch.setattr(scan, "_warned", set())
    args = _scan_inputs(9)
    with pytest.warns(RuntimeWarning, match="fused selective scan failed") as caught:
        got = scan.selective_scan("auto", *args.values())
        scan.selective_scan("auto", *args.values())
    assert len(caught) == 1
    torch.testing.assert_close(got, scan.selective_scan_ref(**args))
    with pytest.raises(RuntimeError, match="no kernel image"):
        scan.selective_scan("fused", *args.values())


FUSED = torch.cuda.is_available() and scan.fused_kernel()[0] is not None


@pytest.mark.skipif(not FUSED, reason="needs CUDA and mamba_ssm")
def test_fused_and_reference_agree_on_the_same_weights() -> None:
    """Tolerance 1e-4 absolute on logits: both scan in float32, in another order."""
    model = build_model("tcn_ssm", n_channels=3, fs=64, out_hz=8, **SSM_SMALL).cuda().eval()
    x = torch.randn(2, 3, 64 * 8, device="cuda")
    with torch.no_grad():
        for mixer in model.modules():
            if hasattr(mixer, "kernel"):
                mixer.kernel = "reference"
        reference = model(x)
        for mixer in model.modules():
            if hasattr(mixer, "kernel"):
                mixer.kernel = "fused"
        fused = model(x)
    torch.testing.assert_close(fused, reference, atol=1e-4, rtol=0)


def _rows(stdout: str) -> dict[str, tuple[str, str]]:
    """check name -> (status, what was found), from doctor's table."""
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│|").split("│")]
        if len(cells) >= 3 and cells[1] in ("ok", "warn", "fail", "skip"):
            out[cells[0]] = (cells[1], cells[2])
    return out


def test_doctor_says_which_scan_tcn_ssm_takes() -> None:
    base = ["doctor", "--env-only", "--set", "train.device=cpu"]
    res = run_ictal(*base, "--set", "model.name=tcn_ssm")
    assert res.returncode == 0, res.stdout + res.stderr
    status, found = _rows(res.stdout)["model"]
    assert status == "ok" and "reference selective scan on cpu" in found, res.stdout
    res = run_ictal(*base, "--set", "model.name=tcn_ssm", "--set", "model.params={kernel: fused}")
    if not FUSED:
        assert res.returncode == 3 and _rows(res.stdout)["model"][0] == "fail", res.stdout
        assert "model.params.kernel=auto" in res.stdout and "Traceback" not in res.stderr
    res = run_ictal(*base)  # conv_bigru: no model line
    assert res.returncode == 0 and "model" not in _rows(res.stdout), res.stdout


FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=3", model=False)
ST_TRAIN = "model.params={filters: [4, 8, 8, 8, 16], layers: 1, heads: 2, ff: 16}"
SSM_TRAIN = [
    "model.name=tcn_ssm",
    "model.params={width: 8, tcn_depth: 1, ssm_layers: 1, d_state: 4}",
    "train.epochs=2",
    "train.steps_per_epoch=4",
    "train.validate_each_epoch=false",
    "train.warmup_steps=2",
    "train.seed=3",
    "train.heartbeat_s=0.2",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return small_built_corpus(tmp_path_factory.mktemp("zoo"), 32, FAST)


def test_seizure_transformer_trains_from_the_command_line(corpus: Path) -> None:
    res = run_ictal("train", *settings(corpus, "runs-st", FAST, "model.name=seizure_transformer",
                                       ST_TRAIN))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (corpus / "runs-st").iterdir()
    assert (run / "checkpoints" / "last.pt").is_file() and (
        run / "checkpoints" / "best.pt"
    ).is_file()
    model, _ = load_model(run / "checkpoints" / "last.pt")
    with torch.no_grad():
        assert model(torch.zeros(1, 19, 8 * 256 + 3)).shape == (1, 8 * 256 + 3)


def test_a_fused_kernel_that_cannot_load_is_exit_2(corpus: Path) -> None:
    if FUSED:
        pytest.skip("the fused kernel loads here")
    res = run_ictal("train", *settings(corpus, "runs-bad", FAST, "model.name=tcn_ssm",
                                       "model.params={kernel: fused}"))  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "model.params.kernel" in res.stderr and "Traceback" not in res.stderr


def _losses(run: Path) -> list[tuple[int, float]]:
    rows = read_metrics(run / "metrics.jsonl")
    return [(r["step"], r["loss"]) for r in rows if r["phase"] == "train"]


def test_tcn_ssm_trains_and_resumes_exactly(corpus: Path, tmp_path: Path) -> None:
    res = run_ictal("train", *settings(corpus, "runs-ssm-a", FAST, *SSM_TRAIN))
    assert res.returncode == 0, res.stderr[-2000:]
    (reference,) = (corpus / "runs-ssm-a").iterdir()
    args = settings(corpus, "runs-ssm-b", FAST, *SSM_TRAIN, "train.checkpoint_every_s=3600")
    # A step takes about 20 ms: the third step's metrics line waits until SIGTERM has been
    # sent, so the run is always stopped mid-epoch, however late this process sends it.
    release = tmp_path / "release"
    held = stall_env(f"{corpus}/runs-ssm-b/*/metrics.jsonl", line=train_line(3),
                     release=release)  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "ictal.cli", "train", *args], env=held,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # stop it (SIGTERM: a checkpoint, then exit) at step 2
        runs = list((corpus / "runs-ssm-b").glob("*/metrics.jsonl"))
        if runs and any(s >= 2 for s, _ in _losses(runs[0].parent)):
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    release.touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    (run,) = (corpus / "runs-ssm-b").iterdir()
    stopped = load_checkpoint(run / "checkpoints" / "last.pt")
    assert stopped["step"] == 3, "stopped at the step boundary after the signal"
    res = run_ictal("train", "--resume", *args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert [s for s, _ in _losses(run)] == list(range(1, 9))  # every step once
    assert _losses(run) == _losses(reference)
    mine = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    theirs = load_checkpoint(reference / "checkpoints" / "last.pt")["model"]
    assert mine.keys() == theirs.keys() and any("A_log" in k for k in mine)
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key
    assert json.loads((run / "run.json").read_text())["resumes"], "not a resumed run"


def test_a_checkpoint_trained_on_the_fused_kernel_is_evaluated_here(corpus: Path, tmp_path):
    """The kernel says how the scan runs, not what it computes: a checkpoint whose model was
    built with ``kernel: fused`` (a GPU run) rebuilds here on the reference, same outputs."""
    runs = corpus / "runs-ssm-a"
    if not runs.is_dir():
        res = run_ictal("train", *settings(corpus, "runs-ssm-a", FAST, *SSM_TRAIN))
        assert res.returncode == 0, res.stderr[-2000:]
    (run,) = runs.iterdir()
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["model_params"] = {**ckpt["model_params"], "kernel": "fused"}
    torch.save(ckpt, tmp_path / "fused.pt")
    trained, _ = load_model(run / "checkpoints" / "last.pt")
    moved, _ = load_model(tmp_path / "fused.pt")
    x = torch.randn(2, 19, 8 * 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(trained(x), moved(x))


@pytest.mark.slow
@pytest.mark.parametrize("runs, sets", [("runs-st", ["model.name=seizure_transformer", ST_TRAIN]),
                                        ("runs-ssm-a", SSM_TRAIN)])  # fmt: skip
def test_each_exports_to_onnx_and_detect_runs_the_export(corpus: Path, tmp_path, runs, sets):
    """`ictal export` checks the ONNX file against torch on real windows (one twice as long);
    `ictal detect --model` then runs it over the corpus and finds what the checkpoint finds."""
    pytest.importorskip("onnxruntime")
    if not (corpus / runs).is_dir():
        res = run_ictal("train", *settings(corpus, runs, FAST, *sets))
        assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (corpus / runs).iterdir()
    ckpt = run / "checkpoints" / "last.pt"
    out = tmp_path / "onnx"
    res = run_ictal("export", str(ckpt), "--format", "onnx", "--out", str(out),
                    *settings(corpus, runs, FAST, *sets))  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert (out / "model.onnx").is_file() and (out / "ictal-model.json").is_file()
    edf = str(corpus / "corpus" / "edf")
    found = {}
    for kind, model in (("ckpt", [str(ckpt)]), ("onnx", ["--model", str(out)])):
        res = run_ictal("detect", *model, edf, "--out", str(tmp_path / kind), "--workers", "1",
                        "--threshold", "0.5", "--save-probs")  # fmt: skip
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        found[kind] = sorted((tmp_path / kind / "probs").glob("*.npy"))
    assert [p.name for p in found["ckpt"]] == [p.name for p in found["onnx"]] != []
    for a, b in zip(found["ckpt"], found["onnx"], strict=True):
        np.testing.assert_allclose(np.load(a), np.load(b), atol=1e-4, rtol=0)
