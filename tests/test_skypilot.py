"""The SkyPilot task files (deploy/skypilot/*.yaml): SkyPilot's own parser accepts them (and
refuses them while a required bucket is not given); their `run` sections are CLI commands and
nothing else, and run here, as written, against loopback S3: build and publish on one
"machine", stage and train on a second, detect from the pushed run on a third."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import fsspec
import pytest
import yaml

from conftest import ROOT, ictal_env


@pytest.fixture(scope="module")
def sky():
    """SkyPilot (dev extra), imported when its tests run rather than at collection (1.9 s)."""
    return pytest.importorskip("sky")


TASKS = ROOT / "deploy" / "skypilot"
# Shell lines a run section may hold besides `ictal ...` commands.
PRELUDE = {"set -euo pipefail", 'export PATH="$PWD/.venv/bin:$PATH"'}
FAST = {
    "windows": {"length_s": 8, "stride_s": 4},
    "model": {"params": {"width": 8, "gru_hidden": 8}},
    "loader": {"batch_size": 4, "num_workers": 1},
    "train": {"warmup_steps": 2, "epochs": 2, "steps_per_epoch": 3, "heartbeat_s": 0.3},
    "sink": {"every_s": 0.5},
}


def _task(name: str) -> dict:
    return yaml.safe_load((TASKS / f"{name}.yaml").read_text())


def _commands(name: str) -> list[list[str]]:
    """The `ictal` command lines of a task's run section (anything else fails the test)."""
    from ictal.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}  # type: ignore[union-attr]
    out = []
    for line in _task(name)["run"].splitlines():
        line = line.strip()
        if not line or line in PRELUDE:
            continue
        words = shlex.split(line)
        assert words[0] == "ictal" and words[1] in commands, f"{name}.yaml runs {line!r}"
        out.append(words)
    return out


@pytest.mark.parametrize("name", ["build", "train", "detect"])
def test_task_files_validate_with_skypilot(sky, name, tmp_path):
    task = _task(name)
    required = [k for k, v in task["envs"].items() if v is None]
    assert required, "the buckets are required settings"
    with pytest.raises(ValueError, match=required[0]):
        sky.Task.from_yaml(str(TASKS / f"{name}.yaml"))
    filled = {**task, "envs": {**task["envs"], **dict.fromkeys(required, "s3://bucket/path")}}
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(filled))
    parsed = sky.Task.from_yaml(str(tmp_path / "task.yaml"))
    assert parsed.name == f"ictal-{name}"
    assert "requirements/runtime.lock" in parsed.setup and "ictal doctor" in parsed.setup
    commands = _commands(name)
    assert commands[0][1] == "doctor" and f"--for={name}" in "=".join(commands[0])
    if name == "train":
        assert all(r.use_spot for r in parsed.resources)
        assert "--resume" in commands[-1] and any("sink.url=" in w for w in commands[-1])
        assert [c[1] for c in commands] == ["doctor", "stage", "train"]
    if name in ("build", "detect"):
        assert parsed.storage_mounts, "the corpus or archive comes from a bucket mount"


def _run(name: str, tmp: Path, **env: str) -> subprocess.CompletedProcess:
    task = _task(name)
    envs = {k: "" if v is None else str(v) for k, v in task["envs"].items()}
    envs.update(env)
    return subprocess.run(["bash", "-c", task["run"]], cwd=ROOT, env=ictal_env(envs),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.mark.slow
def test_the_run_sections_build_train_and_detect_here(sky, s3, tmp_path):
    from ictal.corpus.synth import synthesize

    synthesize(tmp_path / "corpus", patients=3, hours=0.4, seed=8)
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    config = tmp_path / "experiment.yaml"  # one config file for every machine
    laptop = {"corpus": {"root": str(tmp_path / "corpus-on-the-laptop")}}  # not on the VMs
    config.write_text(yaml.safe_dump({**demo, **FAST, **laptop,
                                      "train": {**demo["train"], **FAST["train"]}}))  # fmt: skip
    common = {"CONFIG": str(config), "CACHE_REMOTE": "s3://results/sky-cache"}

    built = _run("build", tmp_path, **common, CORPUS_DIR=str(tmp_path / "corpus"),
                 CACHE_ROOT=str(tmp_path / "vm-build" / "cache"))  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]

    sink = "s3://results/sky-runs/exp-1"
    trained = _run("train", tmp_path, **common, SINK=sink,
                   CACHE_ROOT=str(tmp_path / "vm-train" / "cache"),
                   RUNS_ROOT=str(tmp_path / "vm-train" / "runs"))  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "staged" in trained.stdout, "the new machine staged the published cache"
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    (run,) = [p.rsplit("/", 1)[-1] for p in fs.ls("results/sky-runs/exp-1")]
    assert fs.exists(f"results/sky-runs/exp-1/{run}/_PUSHED.json")

    detected = _run("detect", tmp_path, **common, RUN_URL=f"{sink}/{run}",
                    SINK="s3://results/sky-detect",
                    INPUTS_DIR=str(tmp_path / "corpus" / "edf" / "eval"),
                    RUNS_ROOT=str(tmp_path / "vm-detect" / "runs"),
                    OUT=str(tmp_path / "vm-detect" / "out"))  # fmt: skip
    assert detected.returncode == 0, detected.stderr[-3000:]
    assert (tmp_path / "vm-detect" / "out" / "events.csv").is_file()
