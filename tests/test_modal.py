"""The Modal wrapper (deploy/modal/app.py) offline, with Modal's own SDK: every function is
declared with the image built from the lock, the two volumes, the timeout and the storage
secret; ``build.local`` and ``train.local`` run the real commands in temporary "volume"
directories and give the CLI's cache key and metrics; training crosses a fake short time
limit by continuing its run in new calls; the cache is staged from a published copy first."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_ictal, tiny_training

modal = pytest.importorskip("modal")
pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")
from modal._utils.async_utils import synchronizer  # noqa: E402

APP = ROOT / "deploy" / "modal" / "app.py"
COMMANDS = ("build", "stage", "train", "evaluate", "detect")

# A tiny experiment whose steps take a few seconds on an idle machine: the time limit is a
# call's start-up plus half of them, measured on a reference training just before.
FAST = tiny_training(
    "model.params={width: 48, gru_hidden: 48}",
    "loader.num_workers=1",
    "train.epochs=20",
    "train.steps_per_epoch=12",
    "train.seed=3",
    "train.heartbeat_s=0.3",
    "train.checkpoint_every_s=0.001",
)


def _load(monkeypatch, name: str, **env: str) -> types.ModuleType:
    """Import the app module as `modal run` would, with these ICTAL_MODAL_* settings."""
    for key, value in {"ICTAL_MODAL_SECRET": "ictal-storage", **env}.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location(name, APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _closure(obj: object, attr: str = "_load") -> dict[str, object]:
    """The values a Modal object was declared with (what its loader sends to the server)."""
    fn = getattr(synchronizer._translate_in(obj), attr)
    fn = getattr(fn, "__func__", fn)
    cells = zip(fn.__code__.co_freevars, fn.__closure__, strict=True)
    return {n: c.cell_contents for n, c in cells}


def _dockerfile(image: object) -> list[str]:
    """Every Dockerfile command of an image, base first."""
    layers = []
    while image is not None:
        cells = _closure(image)
        layers.append(cells["dockerfile_function"]("2025.06").commands)  # type: ignore[operator]
        image = (cells["base_images"] or {}).get("base")  # type: ignore[union-attr]
    return [c for layer in reversed(layers) for c in layer]


def test_every_function_has_the_image_volumes_timeout_and_secret(monkeypatch):
    app = _load(monkeypatch, "ictal_modal_spec", ICTAL_MODAL_GPU="L4",
                ICTAL_MODAL_TIMEOUT_S="7200")  # fmt: skip
    assert set(synchronizer._translate_in(app.app)._local_state.functions) == set(COMMANDS)
    for name in COMMANDS:
        fn = getattr(app, name)
        spec = fn._spec_
        assert synchronizer._translate_in(spec.image) is synchronizer._translate_in(app.image)
        assert {p: v.name for p, v in spec.volumes.items()} == {  # type: ignore[attr-defined]
            "/cache": "ictal-cache", "/runs": "ictal-runs"}  # fmt: skip
        assert [s.name for s in spec.secrets if s.name] == ["ictal-storage"]  # + env=SETTINGS
        declared = _closure(fn)
        assert declared["timeout"] == 7200
        assert spec.gpus == ("L4" if name in ("train", "evaluate", "detect") else None)
    steps = _dockerfile(app.image)
    assert steps[0].startswith("FROM python:3.11")
    lock = steps.index("RUN pip install --require-hashes --no-deps -r /opt/req/runtime.lock")
    torch_pin = next(i for i, s in enumerate(steps) if "/opt/req/torch.txt" in s)
    doctor = steps.index("RUN ictal doctor --env-only")
    assert lock < torch_pin < steps.index("RUN pip install --no-deps -e /opt/ictal") < doctor
    assert "ENV PYTHONUNBUFFERED=1" in steps
    assert app.split_command(["train", "-c", "configs/demo.yaml", "--set", "a.b=1", "--run",
                              "/runs/x"]) == ("train", "configs/demo.yaml", ["a.b=1"],
                                              ["--run", "/runs/x"])  # fmt: skip


def _train_lines(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["phase"] == "train"]


def _losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in _train_lines(run)]


def _steps_s(run: Path) -> float:
    """Seconds from a run's first training step to its last."""
    times = [r["time"] for r in _train_lines(run)]
    return max(times) - min(times)


def _keys(cache_root: Path) -> set[str]:
    return {p.name for p in cache_root.iterdir() if (p / "manifest.json").is_file()}


@pytest.mark.slow
def test_build_and_train_run_the_cli_and_cross_the_time_limit(monkeypatch, tmp_path, s3, capfd):
    from ictal.corpus.synth import synthesize

    synthesize(tmp_path / "corpus", patients=3, hours=0.4, seed=6)
    sets = [f"corpus.root={tmp_path / 'corpus'}", *FAST]
    cli = [a for s in sets for a in ("--set", s)]
    here = ["--set", f"cache.root={tmp_path / 'cache-cli'}", "--set",
            f"runs.root={tmp_path / 'runs-cli'}"]  # fmt: skip
    built = run_ictal("build", "-c", "configs/demo.yaml", *here, *cli)
    assert built.returncode == 0, built.stderr[-2000:]

    # build.local: the same cache, on the "cache volume"
    vol = _load(monkeypatch, "ictal_modal_build", ICTAL_MODAL_SECRET="",
                ICTAL_MODAL_CACHE_DIR=str(tmp_path / "vol-cache"),
                ICTAL_MODAL_RUNS_DIR=str(tmp_path / "vol-runs"))  # fmt: skip
    result = vol.build.local("configs/demo.yaml", sets)
    assert result["done"] and result["exit_code"] == 0, result
    assert _keys(tmp_path / "vol-cache") == _keys(tmp_path / "cache-cli") != set()

    # train.local on a fresh machine: stage the published cache, then train with a time limit
    published = run_ictal("publish", "--to", "s3://results/modal-cache", "-c",
                          "configs/demo.yaml", *here, *cli)  # fmt: skip
    assert published.returncode == 0, published.stderr[-2000:]
    # A fresh process, as each call is: its start-up is what every call pays again.
    started = time.monotonic()
    reference = run_ictal("train", "-c", "configs/demo.yaml", *here, *cli, fresh=True)
    assert reference.returncode == 0, reference.stderr[-2000:]
    (cli_run,) = [p for p in (tmp_path / "runs-cli").iterdir() if (p / "config.yaml").is_file()]
    # The start-up and half the steps: each call has time for about half of them, so three or
    # four calls end the run at any steady load (the limit scales with it; a fixed fraction of
    # the whole left calls on a loaded machine little more than their start-up: 19 calls). A
    # machine that got faster since the reference lets the first call (which also stages the
    # cache) finish: then a fresh machine tries again with half the limit.
    limit_s = time.monotonic() - started - 0.5 * _steps_s(cli_run)
    for attempt_at in ("fresh", "retry"):
        fresh = _load(monkeypatch, f"ictal_modal_train_{attempt_at}", ICTAL_MODAL_SECRET="",
                      ICTAL_MODAL_CACHE_DIR=str(tmp_path / f"{attempt_at}-cache"),
                      ICTAL_MODAL_RUNS_DIR=str(tmp_path / f"{attempt_at}-runs"),
                      ICTAL_MODAL_TIME_LIMIT_S=f"{limit_s:.1f}", ICTAL_MODAL_GRACE_S="1.5",
                      ICTAL_MODAL_MAX_ATTEMPTS="60")  # fmt: skip
        capfd.readouterr()
        result = fresh.train.local(
            "configs/demo.yaml", [*sets, "cache.remote=s3://results/modal-cache"]
        )
        out = capfd.readouterr()
        assert result["done"] and result["exit_code"] == 0, (result, out.err[-3000:])
        if result["attempt"] >= 2:
            break
        limit_s /= 2
    assert result["attempt"] >= 2, "the time limit was crossed by continuing the run"
    assert (out.out + out.err).count("staged (L0 + L1 verified)") == 1, "staged once, then used"
    assert _keys(tmp_path / f"{attempt_at}-cache") == _keys(tmp_path / "cache-cli")
    run = Path(result["run"])
    assert _losses(run) == _losses(cli_run)
    a = torch.load(run / "checkpoints/last.pt", weights_only=True)["model"]
    b = torch.load(cli_run / "checkpoints/last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    resumes = json.loads((run / "run.json").read_text())["resumes"]
    # one run, continued by the later calls; a call whose start-up outlasts its time (a
    # loaded machine) stops before it reaches the run, and so adds no resume
    assert 1 <= len(resumes) <= result["attempt"] - 1, "one run, continued by later calls"
