"""Model code and model metadata from files, through the real command line
(docs/robustness.md, "Model code and model metadata"): a checkpoint, a run's frozen config or
an export's sidecar never gets code imported or called that the user did not name; tampered
or absurd values are one line naming the file and the field (exit 3), before anything is
allocated; the decision holds in detect's worker processes and on resume of a pulled run."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest
import torch
import yaml

from conftest import ictal_env, run_ictal, settings, small_built_corpus, tiny_training

pytestmark = pytest.mark.slow  # real processes throughout

FAST = tiny_training("train.epochs=1", "train.steps_per_epoch=2", "train.heartbeat_s=0.5")
FLAG = "--trust-model-code"
LEGIT_PATH = "ictal.models.detector:ConvBiGRU"  # an nn.Module subclass of an installed package
ICTAL_VERSION = metadata.version("ictal")

# Imported, it leaves a marker; it is also a valid model (an nn.Module subclass), so only the
# trust decision stands between a file naming it and its code running.
SIDE_EFFECT = """
import os
from pathlib import Path

from torch import nn

Path(os.environ["ICTAL_TEST_MARKER"]).write_text("imported")


class Model(nn.Module):
    def __init__(self, n_channels, fs):
        super().__init__()
        self.output_stride = int(fs)
        self.head = nn.Conv1d(n_channels, 1, int(fs), stride=int(fs))
"""
# torch.hub.load(repo_or_dir=<the pulled run>, model="detector", source="local") imports this.
HUBCONF = """
import os
from pathlib import Path

Path(os.environ["ICTAL_TEST_MARKER"]).write_text("hubconf imported")


def detector(**kwargs):
    Path(os.environ["ICTAL_TEST_MARKER"]).write_text("hubconf called")
"""


@dataclass(frozen=True)
class World:
    """A built corpus, one trained run, its ONNX export, and a planted module on the path."""

    tmp: Path
    run: Path
    export: Path

    @property
    def ckpt(self) -> Path:
        return self.run / "checkpoints" / "best.pt"

    @property
    def marker(self) -> Path:
        return self.tmp / "PWNED"

    @property
    def edfs(self) -> list[str]:
        return [str(p) for p in sorted((self.tmp / "corpus").rglob("*.edf"))[:2]]

    def sets(self, runs: str = "runs", *extra: str) -> list[str]:
        return settings(self.tmp, runs, FAST, *extra)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = ictal_env({"ICTAL_TEST_MARKER": str(self.marker), **(extra or {})})
        env["PYTHONPATH"] += os.pathsep + str(self.tmp / "plant")
        return env

    def ictal(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return run_ictal(*args, env=env or self.env())

    def case(self, name: str) -> Path:
        path = self.tmp / "cases" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = small_built_corpus(tmp_path_factory.mktemp("models"), 7, FAST)
    res = run_ictal("train", *settings(tmp, "runs", FAST))
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (tmp / "runs").iterdir()
    export = tmp / "export"
    res = run_ictal("export", str(run / "checkpoints" / "best.pt"), "--out", str(export))
    assert res.returncode == 0, res.stderr[-2000:]
    (tmp / "plant").mkdir()
    (tmp / "plant" / "sideeffect.py").write_text(SIDE_EFFECT)
    return World(tmp, run, export)


@pytest.fixture(autouse=True)
def _no_marker(world: World):
    world.marker.unlink(missing_ok=True)
    yield
    assert not world.marker.exists(), f"model code ran: {world.marker.read_text()}"


def _refused(res: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """Exit ``code``, one error line (and its fix) holding every fragment, no traceback."""
    assert res.returncode == code, f"exit {res.returncode}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    for fragment in fragments:
        assert fragment in res.stderr, f"{fragment!r} not in\n{res.stderr[-3000:]}"
    assert len(line) < 600, line


def _tampered(world: World, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the trained run whose best.pt has ``edit`` applied (its run and config kept,
    so evaluate and export find the cache through the run's frozen config)."""
    run = world.case(name) / world.run.name
    shutil.copytree(world.run, run)
    path = run / "checkpoints" / "best.pt"
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)
    return path


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    def edit(ckpt: dict[str, Any]) -> None:
        ckpt.update(values)

    return edit


def _config(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(ckpt: dict[str, Any]) -> None:
        node = ckpt["config"]
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


def _named(
    name: str, /, version: str | None = ICTAL_VERSION, params: dict[str, Any] | None = None
) -> Callable[[dict[str, Any]], None]:
    """The checkpoint names ``name`` by import path (with a recorded source), with
    ``params`` (default: the trained model's own)."""
    package = "ictal" if name.startswith("ictal.") else name.split(".")[0].split(":")[0]
    source = {"kind": "import", "target": name, "package": package, "version": version}

    def edit(ckpt: dict[str, Any]) -> None:
        ckpt.update(model_name=name, model_source=source)
        if params is not None:
            ckpt["model_params"] = params

    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda ckpt: ckpt.pop(key)


# The code a checkpoint may point at among installed packages; none is imported or called
# unless the user names it or passes --trust-model-code, and none is a model even then.
ATTACKER_TARGETS = [
    ("torch.hub:load", {"repo_or_dir": "{run}", "model": "detector", "source": "local"}),
    ("subprocess:run", {"args": ["touch", "{marker}"]}),
    ("builtins:exec", {"source": "open('{marker}', 'w')"}),
    ("os:system", {"command": "touch {marker}"}),
    ("fsspec:open_files", {"urlpath": "{tmp}/made/by/fsspec/x", "mode": "wb"}),
    ("pickle:loads", {"data": "x"}),
    ("importlib:import_module", {"name": "sideeffect"}),
    ("numpy:load", {"file": "{marker}"}),
    ("torch.nn.functional:relu", {}),
    ("torch:Tensor", {}),  # a class, but no nn.Module
]


def _expand(world: World, run: Path, params: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(params)
    for key, value in {"run": run, "marker": world.marker, "tmp": world.tmp}.items():
        text = text.replace("{" + key + "}", str(value))
    return json.loads(text)


@pytest.mark.parametrize(
    ("target", "params"), ATTACKER_TARGETS, ids=[t for t, _ in ATTACKER_TARGETS]
)
def test_a_checkpoint_never_gets_installed_code_called(world, target, params):
    """Without the flag: refused before the import, naming checkpoint, path and flag. With
    --trust-model-code and --allow-version-mismatch: refused as no model (the standard
    library not even imported), nothing called, no directory made."""
    run = world.case(target.replace(":", "_")) / world.run.name
    shutil.copytree(world.run, run)
    (run / "hubconf.py").write_text(HUBCONF)
    ckpt = run / "checkpoints" / "best.pt"
    data = torch.load(ckpt, weights_only=True)
    _named(target, version=None, params=_expand(world, run, params))(data)
    torch.save(data, ckpt)
    out = run.parent / "export"
    res = world.ictal("export", str(ckpt), "--out", str(out))
    stdlib = target.split(".")[0].split(":")[0] in sys.stdlib_module_names
    _refused(res, 3, str(ckpt), repr(target), "standard library" if stdlib else FLAG)
    res = world.ictal("export", str(ckpt), "--out", str(out), FLAG, "--allow-version-mismatch")
    _refused(res, 3, str(ckpt), target)
    assert "standard library" in res.stderr or "not a model factory" in res.stderr
    assert not out.exists() and not (world.tmp / "made").exists()


def _push(fs: Any, local: Path, remote: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.pipe_file(f"{remote}/{path.relative_to(local).as_posix()}", path.read_bytes())


def test_a_pulled_run_with_hubconf_never_runs_it(world, s3):
    """The reported attack: a pushed run carrying hubconf.py, a best.pt naming torch.hub:load
    at itself with no version, and a frozen config naming it too. After `ictal pull`, evaluate,
    detect and export refuse (exit 3); the frozen config is not the user's config."""
    evil = world.case("hub") / world.run.name
    shutil.copytree(world.run, evil)
    (evil / "hubconf.py").write_text(HUBCONF)
    frozen = yaml.safe_load((evil / "config.yaml").read_text())
    frozen["model"] = {"name": "torch.hub:load", "params": {}}
    (evil / "config.yaml").write_text(yaml.safe_dump(frozen))
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    _push(fs, evil, f"results/hostile/{evil.name}")
    pulled = world.tmp / "runs-pulled" / evil.name
    env = world.env(s3)
    res = world.ictal("pull", f"s3://results/hostile/{evil.name}", str(pulled), env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = pulled / "checkpoints" / "best.pt"
    data = torch.load(ckpt, weights_only=True)
    hub = {"repo_or_dir": str(pulled), "model": "detector", "source": "local"}
    _named("torch.hub:load", version=None, params=hub)(data)
    torch.save(data, ckpt)
    for argv in (
        ["evaluate", str(ckpt), "--split", "dev"],
        ["detect", str(ckpt), *world.edfs, "--out", str(world.tmp / "cases" / "hub-det")],
        ["export", str(ckpt), "--out", str(world.tmp / "cases" / "hub-export")],
    ):
        _refused(world.ictal(*argv, env=env), 3, str(ckpt), "'torch.hub:load'", FLAG)
        trusted = world.ictal(*argv, FLAG, "--allow-version-mismatch", env=env)
        _refused(trusted, 3, "not a model factory")
        named = world.ictal(*argv, "--set", "model.name=torch.hub:load", env=env)
        _refused(named, 3, "records no version")  # named by the user: the version rule next
    assert not (world.tmp / "cases" / "hub-det").exists()
    assert not (world.tmp / "cases" / "hub-export").exists()


def test_a_module_that_acts_when_imported_is_not_imported(world):
    """A checkpoint naming a planted module (an nn.Module subclass in it) is refused before
    the import; the user naming it, or the flag, lets it load (and it is then a model)."""
    ckpt = _tampered(world, "sideeffect", _named("sideeffect:Model", params={}))
    out = ckpt.parent.parent.parent / "export"
    _refused(world.ictal("export", str(ckpt), "--out", str(out)), 3, "'sideeffect:Model'", FLAG)
    assert not world.marker.exists()
    res = world.ictal("export", str(ckpt), "--out", str(out), FLAG, "--allow-version-mismatch")
    assert res.returncode == 3 and world.marker.read_text() == "imported", res.stderr[-3000:]
    assert "weights do not fit" in res.stderr  # a model, just not this one's weights
    world.marker.unlink()


@pytest.mark.parametrize(
    ("how", "code"),
    [([], 3), (["--set", f"model.name={LEGIT_PATH}"], 0), ([FLAG], 0)],
    ids=["not-named", "named-by-the-user", "trusted"],
)
def test_an_import_path_loads_when_the_user_names_it(world, how, code):
    """An import path to a real model of an installed package: refused unless the user's own
    config names it or --trust-model-code is given; then exported as usual."""
    ckpt = _tampered(world, f"legit-{code}-{len(how)}", _named(LEGIT_PATH))
    out = ckpt.parent.parent.parent / "export"
    res = world.ictal("export", str(ckpt), "--out", str(out), *how)
    assert res.returncode == code, res.stderr[-3000:]
    if code:
        _refused(res, 3, str(ckpt), repr(LEGIT_PATH), FLAG)
    else:
        assert (out / "ictal-model.json").is_file()


def test_a_missing_version_is_a_refusal_not_a_skip(world):
    ckpt = _tampered(world, "no-version", _named(LEGIT_PATH, version=None))
    out = ckpt.parent.parent.parent / "export"
    res = world.ictal("export", str(ckpt), "--out", str(out), FLAG)
    _refused(res, 3, str(ckpt), "records no version", "--allow-version-mismatch")
    res = world.ictal("export", str(ckpt), "--out", str(out), FLAG, "--allow-version-mismatch")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "records no version" in res.stderr  # said, as a warning


def test_detect_workers_take_the_users_decision(world):
    """Workers (separate processes) load the checkpoint again under the coordinator's trust:
    the user's --set reaches them (every recording done), and without it the coordinator
    refuses before any worker starts."""
    ckpt = _tampered(world, "workers", _named(LEGIT_PATH))
    out = world.tmp / "cases" / "workers" / "det"
    common = ["detect", str(ckpt), *world.edfs, "--out", str(out), "--workers", "2",
              "--executor", "process", "--threshold", "0.5"]  # fmt: skip
    _refused(world.ictal(*common), 3, repr(LEGIT_PATH), FLAG)
    assert not out.exists()
    res = world.ictal(*common, "--set", f"model.name={LEGIT_PATH}")
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["recordings"], summary["done"], summary["failed"]) == (2, 2, 0)


def test_resume_of_a_pulled_run_needs_the_users_name_for_its_model(world, s3):
    """`train --resume` pulls an unfinished run from the sink whose frozen config names a
    planted module: refused (exit 3) before the import, naming the frozen config and the
    flag; `--run DIR` of a local copy is refused the same way."""
    evil = world.case("resume") / world.run.name
    shutil.copytree(world.run, evil)
    frozen = yaml.safe_load((evil / "config.yaml").read_text())
    frozen["model"] = {"name": "sideeffect:Model", "params": {}}
    (evil / "config.yaml").write_text(yaml.safe_dump(frozen))
    beat = json.loads((evil / "heartbeat.json").read_text())
    beat.update(state="stopped", host="gone-vm", time=beat.get("time", 0) - 3600)
    (evil / "heartbeat.json").write_text(json.dumps(beat))
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    _push(fs, evil, f"results/resume-sink/{evil.name}")
    runs = "runs-resume"
    res = world.ictal("train", "--resume", *world.sets(runs, "sink.url=s3://results/resume-sink"),
                      env=world.env(s3))  # fmt: skip
    _refused(res, 3, "frozen config", "'sideeffect:Model'", FLAG)
    res = world.ictal("train", "--run", str(evil), *world.sets(runs))
    _refused(res, 3, "frozen config", "'sideeffect:Model'", FLAG)


# (id, edit of best.pt, fragment of the one line): each through `ictal export`, which loads
# the checkpoint first; a few also through evaluate and detect below.
TAMPERED = [
    ("extra-source-key", _set(model_source={"kind": "builtin", "target": "conv_bigru",
                                            "package": None, "version": None, "evil": 1}),
     "model_source.evil"),
    ("params-a-list", _set(model_params=[1, 2]), "model_params"),
    ("param-named-name", _set(model_params={"name": "x"}), "name not accepted"),
    ("param-named-fs", _set(model_params={"fs": 1}), "model_params"),
    ("param-absurd-width", _set(model_params={"width": 10**12}), "width must be between"),
    ("param-tiny-out-hz", _set(model_params={"out_hz": 1e-300}), "fs / out_hz"),
    ("output-stride-zero", _set(output_stride=0), "output_stride"),
    ("output-stride-negative", _set(output_stride=-256), "output_stride"),
    ("output-stride-wrong", _set(output_stride=128), "output_stride is 128"),
    ("output-stride-over-window", _set(output_stride=4096), "longer than the window"),
    ("window-zero", _set(window=0), "window"),
    ("window-10e12", _set(window=10**12), "window"),
    ("window-a-string", _set(window="2048"), "window"),
    ("window-bool", _set(window=True), "window"),
    ("fs-zero", _set(fs=0.0), "fs"),
    ("fs-nan", _set(fs=math.nan), "fs"),
    ("fs-a-string", _set(fs="256"), "fs"),
    ("fs-not-the-preprocessings", _set(fs=512.0), "preprocessing"),
    ("channels-zero", _set(n_channels=0), "n_channels"),
    ("channels-million", _set(n_channels=10**6), "n_channels"),
    ("channels-times-window", _set(n_channels=1024, window=1 << 22), "values Ictal allows"),
    ("fs-missing", _drop("fs"), "fs: missing"),
    ("model-name-a-path", _set(model_name="../../x"), "model_name"),
    ("model-name-not-a-string", _set(model_name=["conv_bigru"]), "model_name"),
    ("weights-not-tensors", _set(model=[1, 2]), "model: not a mapping"),
    ("signal-montage-unknown", _config("signal.montage", "weird"), "config.signal.montage"),
    ("signal-fs-zero", _config("signal.fs", 0), "config.signal.fs"),
    ("channel-policy-unknown", _config("corpus.policy.missing_channels", "ignore"),
     "missing_channels"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "edit", "fragment"), TAMPERED, ids=[c[0] for c in TAMPERED])
def test_tampered_checkpoint_values_are_one_line(world, name, edit, fragment):
    ckpt = _tampered(world, name, edit)
    out = ckpt.parent.parent.parent / "export"
    _refused(world.ictal("export", str(ckpt), "--out", str(out)), 3, str(ckpt), fragment)
    assert not out.exists()


class _Reduce:
    """Unpickled, it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_file_that_is_no_checkpoint_is_refused_unopened_or_unpickled(world):
    """Exit 2, one line: a pickle that would run code (never unpickled), an integer of 5,000
    digits (torch's weights-only reader refuses it), a FIFO (never opened: it would block)."""
    folder = world.case("foreign")
    evil = folder / "evil.pt"
    evil.write_bytes(pickle.dumps(_Reduce(world.marker)))
    huge = _tampered(world, "huge-int", _set(model_params={"width": 10**5000}))
    fifo = folder / "fifo.pt"
    os.mkfifo(fifo)
    for path, fragment in ((evil, "cannot be read"), (huge, "cannot be read"),
                           (fifo, "not a regular file")):  # fmt: skip
        res = world.ictal("export", str(path), "--out", str(folder / "out"))
        _refused(res, 2, str(path), fragment)
    assert not (folder / "out").exists()


@pytest.mark.parametrize("command", ["evaluate", "detect"])
def test_evaluate_and_detect_refuse_tampered_values_first(world, command):
    ckpt = _tampered(world, f"tamper-{command}", _set(output_stride=0, window=10**12))
    out = ckpt.parent.parent.parent / "out"
    argv = {"evaluate": ["evaluate", str(ckpt), "--split", "dev", "--out", str(out)],
            "detect": ["detect", str(ckpt), *world.edfs, "--out", str(out)]}[command]  # fmt: skip
    _refused(world.ictal(*argv), 3, str(ckpt), "output_stride")
    assert not out.exists()


def _peak_rss_mb(world: World, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run ictal ARGS in a child of a fresh interpreter that reports the child's peak RSS."""
    probe = ("import resource, subprocess, sys; "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stderr.write(r.stderr); "
             "print(r.returncode, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "ictal.cli", *args],
                          env=world.env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    code, rss_kb = done.stdout.split()
    return subprocess.CompletedProcess(args, int(code), "", done.stderr), int(rss_kb) / 1024


def test_params_that_would_allocate_gigabytes_refuse_before_allocating(world):
    """width 1024 / gru_hidden 1024 make conv_bigru about 1 GB of weights: the model is
    first built on the meta device, its weights do not fit the file's, and the refusal
    comes without the allocation (peak memory as for a refusal that allocates nothing)."""
    small = _tampered(world, "alloc-none", _set(output_stride=0))
    big = _tampered(world, "alloc-big", _set(model_params={"width": 1024, "gru_hidden": 1024}))
    res, base = _peak_rss_mb(world, "export", str(small), "--out", str(small.parent / "o"))
    _refused(res, 3, "output_stride")
    res, peak = _peak_rss_mb(world, "export", str(big), "--out", str(big.parent / "o"))
    _refused(res, 3, str(big), "weights do not fit", "encoder.0.0.weight")
    assert peak < base + 200, (base, peak)


def _sidecar_case(world: World, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    folder = world.case(name) / "export"
    shutil.copytree(world.export, folder)
    doc = json.loads((folder / "ictal-model.json").read_text())
    edit(doc)
    (folder / "ictal-model.json").write_text(json.dumps(doc))
    return folder


def _at(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = key.split(".")
        for part in parents:
            doc = doc[part]
        doc[last] = value

    return edit


SIDECARS = [
    ("stride-zero", _at("output.stride", 0), 3, "output.stride"),
    ("stride-wrong", _at("output.stride", 128), 3, "not (1, 16) logits"),
    ("window-zero", _at("windowing.window_samples", 0), 3, "windowing.window_samples"),
    ("window-negative", _at("windowing.window_samples", -2048), 3, "windowing.window_samples"),
    ("window-10e12", _at("windowing.window_samples", 10**12), 3, "windowing.window_samples"),
    ("window-a-string", _at("windowing.window_samples", "2048"), 3, "windowing.window_samples"),
    ("fs-zero", _at("preprocessing.fs", 0), 3, "preprocessing.fs"),
    ("fs-a-string", _at("preprocessing.fs", "256"), 3, "preprocessing.fs"),
    ("fs-not-the-signals", _at("preprocessing.fs", 512.0), 3, "preprocessing's 256.0 Hz"),
    ("signal-fs-zero", _at("preprocessing.signal.fs", 0), 3, "preprocessing.signal.fs"),
    ("policy-unknown", _at("preprocessing.missing_channels", "ignore"), 3, "missing_channels"),
    ("channels-million", _at("model.input.shape", ["batch", 10**6, "samples"]), 3,
     "model.input.shape"),
    ("channels-not-the-montages", _at("model.input.shape", ["batch", 18, "samples"]), 3,
     "montage gives 19"),
    ("threshold-two", _at("operating_point.threshold", 2), 3, "operating_point.threshold"),
    ("hysteresis-above", _at("operating_point.hysteresis_low", 0.99), 3, "hysteresis_low"),
    ("tuned-a-string", _at("operating_point.tuned", "yes"), 3, "operating_point.tuned"),
    ("sensitivity-two", _at("operating_point.dev_sensitivity", 2.0), 3,
     "operating_point.dev_sensitivity"),
    ("budget-negative", _at("operating_point.budget_fa24h", -10.0), 3,
     "operating_point.budget_fa24h"),
    ("scorer-without-budget",
     lambda doc: doc["operating_point"].update(scorer="ovlp", budget_fa24h=None), 3,
     "scorer and budget_fa24h come together"),
    ("file-climbs", _at("model.file", "../../victim.onnx"), 3, "model.file"),
    ("file-missing", _at("model.file", "other.onnx"), 2, "other.onnx is missing"),
    ("not-a-sidecar", _at("format", "something-else"), 2, "is not an ictal-model-1 sidecar"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "edit", "code", "fragment"), SIDECARS,
                         ids=[c[0] for c in SIDECARS])  # fmt: skip
def test_tampered_sidecar_values_are_one_line(world, name, edit, code, fragment):
    folder = _sidecar_case(world, name, edit)
    out = folder.parent / "det"
    res = world.ictal("detect", "--model", str(folder), *world.edfs, "--out", str(out))
    _refused(res, code, str(folder), fragment)
    assert not out.exists()


def test_a_model_file_leading_out_of_the_export_or_blocking_is_refused(world):
    outside = world.case("outside-model") / "model.onnx"
    shutil.copy(world.export / "model.onnx", outside)
    linked = _sidecar_case(world, "linked-model", lambda doc: None)
    (linked / "model.onnx").unlink()
    (linked / "model.onnx").symlink_to(outside)
    res = world.ictal("detect", "--model", str(linked), *world.edfs, "--out", str(linked / "d"))
    _refused(res, 3, "model.file", "outside")
    fifo = _sidecar_case(world, "fifo-model", lambda doc: None)
    (fifo / "model.onnx").unlink()
    os.mkfifo(fifo / "model.onnx")
    res = world.ictal("detect", "--model", str(fifo), *world.edfs, "--out", str(fifo / "d"))
    _refused(res, 2, "not a regular file")
    fifo_sidecar = _sidecar_case(world, "fifo-sidecar", lambda doc: None)
    (fifo_sidecar / "ictal-model.json").unlink()
    os.mkfifo(fifo_sidecar / "ictal-model.json")
    res = world.ictal("detect", "--model", str(fifo_sidecar), *world.edfs, "--out",
                      str(fifo_sidecar / "d"))  # fmt: skip
    _refused(res, 2, "not a regular file")


def test_a_sidecars_model_name_is_never_imported(world):
    """The sidecar's model name and source are a record: detect --model runs the ONNX file
    and imports nothing it names."""

    def name_it(doc: dict[str, Any]) -> None:
        doc["model"]["name"] = "sideeffect:Model"
        doc["model"]["source"] = {"kind": "import", "target": "sideeffect:Model"}

    folder = _sidecar_case(world, "sidecar-name", name_it)
    out = folder.parent / "det"
    res = world.ictal("detect", "--model", str(folder), *world.edfs, "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert not world.marker.exists()
