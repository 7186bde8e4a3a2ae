"""Ictal on Modal: the same command line, config and locked environment as on a laptop.

Each function runs ``ictal doctor --for COMMAND`` and then the ``ictal`` command itself, in a
child process under the function's time limit (``ictal.orchestrate.deadline``): SIGTERM before the
limit, so training checkpoints and every command keeps what it committed, then a new
invocation continues it (``train --run DIR``; the other commands resume by being run again),
at most ``ICTAL_MODAL_MAX_ATTEMPTS`` times. Nothing here reimplements the CLI.

    modal run deploy/modal/app.py::build --config configs/demo.yaml \\
        --overrides corpus.root=s3://my-bucket/tusz
    modal run deploy/modal/app.py::train --config configs/demo.yaml

The config is a path in this repository, used unchanged; ``overrides`` are ``--set`` strings
applied after the app's own volume paths (``cache.root``, ``runs.root``). docs/cloud.md has
the set-up (volumes, the storage secret, GPUs) and what is billed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import modal

ROOT = Path(__file__).resolve().parents[2]  # the checkout this app is deployed from
REPO_IN_IMAGE = "/opt/ictal"
IGNORE = [".git", ".venv", "demo", "data", "runs", "**/__pycache__", "**/*.egg-info",
          ".pytest_cache", ".ruff_cache", "**/.ipynb_checkpoints"]  # fmt: skip

# Settings, from the environment of `modal deploy` / `modal run`, passed on to the containers.
SETTINGS = {
    "ICTAL_MODAL_CACHE_DIR": os.environ.get("ICTAL_MODAL_CACHE_DIR", "/cache"),
    "ICTAL_MODAL_RUNS_DIR": os.environ.get("ICTAL_MODAL_RUNS_DIR", "/runs"),
    "ICTAL_MODAL_TIMEOUT_S": os.environ.get("ICTAL_MODAL_TIMEOUT_S", str(24 * 3600)),
    "ICTAL_MODAL_GRACE_S": os.environ.get("ICTAL_MODAL_GRACE_S", "300"),
    "ICTAL_MODAL_TIME_LIMIT_S": os.environ.get("ICTAL_MODAL_TIME_LIMIT_S", ""),
    "ICTAL_MODAL_MAX_ATTEMPTS": os.environ.get("ICTAL_MODAL_MAX_ATTEMPTS", "10"),
}
CACHE_DIR = SETTINGS["ICTAL_MODAL_CACHE_DIR"]
RUNS_DIR = SETTINGS["ICTAL_MODAL_RUNS_DIR"]
TIMEOUT_S = int(SETTINGS["ICTAL_MODAL_TIMEOUT_S"])  # Modal allows at most 24 h per call
GRACE_S = float(SETTINGS["ICTAL_MODAL_GRACE_S"])  # SIGTERM this long before the limit
MAX_ATTEMPTS = int(SETTINGS["ICTAL_MODAL_MAX_ATTEMPTS"])
GPU = os.environ.get("ICTAL_MODAL_GPU") or None  # e.g. "L4", "A100": train, evaluate, detect
TORCH_INDEX = os.environ.get(
    "ICTAL_MODAL_TORCH_INDEX", "https://download.pytorch.org/whl/cu128"
)  # the torch build of requirements/torch.txt for the GPU's CUDA
SECRET = os.environ.get("ICTAL_MODAL_SECRET", "ictal-storage")  # bucket credentials

image = (
    modal.Image.debian_slim(python_version="3.11")
    # the lock first (hash-checked, no resolution), then torch from its own pin and index
    .add_local_file(ROOT / "requirements" / "runtime.lock", "/opt/req/runtime.lock", copy=True)
    .add_local_file(ROOT / "requirements" / "torch.txt", "/opt/req/torch.txt", copy=True)
    .run_commands(
        "pip install --require-hashes --no-deps -r /opt/req/runtime.lock",
        f"pip install -r /opt/req/torch.txt --index-url {TORCH_INDEX}",
    )
    # the project itself, as checked out (no hand-copied trees), then the doctor at build time
    .add_local_dir(ROOT, REPO_IN_IMAGE, copy=True, ignore=IGNORE)
    .run_commands(
        f"pip install --no-deps -e {REPO_IN_IMAGE}",
        "ictal doctor --env-only",
        "pip check",
    )
    .env({"PYTHONUNBUFFERED": "1", "ICTAL_REPO": REPO_IN_IMAGE})
)

volumes = {
    CACHE_DIR: modal.Volume.from_name("ictal-cache", create_if_missing=True),
    RUNS_DIR: modal.Volume.from_name("ictal-runs", create_if_missing=True),
}
secrets = [modal.Secret.from_name(SECRET)] if SECRET else []

app = modal.App("ictal")


def _options(gpu: str | None = None) -> dict[str, Any]:
    return {"image": image, "volumes": volumes, "secrets": secrets, "timeout": TIMEOUT_S,
            "gpu": gpu, "env": SETTINGS}  # fmt: skip


def _repo() -> Path:
    return Path(os.environ.get("ICTAL_REPO") or ROOT)


def _config(config: str) -> str:
    """The config file, a path inside the repository (never outside it)."""
    from ictal.io.paths import contained

    path = contained(_repo(), config, "config")
    if not path.is_file():
        raise FileNotFoundError(f"config {config!r} is not a file of the repository {_repo()}")
    return str(path)


def _runs_root(command: str, run: str | None, args: list[str]) -> str:
    """Where this call's runs go. A first ``train`` call in a container gets its own directory
    named by Modal's input id, which stays the same when Modal restarts a preempted call, and
    trains with ``--resume``: the restart continues its own run, never another experiment's."""
    input_id = modal.current_input_id()
    if command != "train" or run or "--run" in args or not input_id:
        return RUNS_DIR
    return f"{RUNS_DIR}/{input_id}"


def _argv(command: str, config: str, overrides: list[str], args: list[str], runs: str) -> list[str]:
    sets = [f"cache.root={CACHE_DIR}", f"runs.root={runs}", *overrides]
    extra = ["--resume"] if runs != RUNS_DIR else []
    return [command, *extra, *args, "-c", _config(config), *[a for s in sets for a in ("--set", s)]]


def _ictal(*argv: str) -> int:
    """One short ictal command (doctor, verify, stage) in a child process: its exit code."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ictal", *argv], stdin=subprocess.DEVNULL)
    return done.returncode


def _commit() -> None:
    """Make what this container wrote visible to the next one (remote only)."""
    if not modal.is_local():
        for volume in volumes.values():
            volume.commit()


def _invoke(command: str, config: str, overrides: list[str], args: list[str],
            run: str | None, attempt: int) -> dict[str, Any]:  # fmt: skip
    """Doctor, then the command under this call's time limit; the outcome as a dict."""
    from ictal.orchestrate.deadline import continue_argv, until_done

    started = time.monotonic()
    runs = _runs_root(command, run, args)
    argv = _argv(command, config, overrides, args, runs)
    settings = argv[argv.index("-c") :]  # -c CONFIG --set ...
    if _ictal("doctor", "--for", command, *settings) == 3:
        raise RuntimeError(f"ictal doctor refused `{command}` (its table above says why)")
    if command == "train":
        _stage_unless_present(settings)
        argv = continue_argv(argv, Path(run) if run else None)
    limit = float(SETTINGS["ICTAL_MODAL_TIME_LIMIT_S"] or TIMEOUT_S)
    limit = min(limit, TIMEOUT_S - (time.monotonic() - started) - 60.0)  # 60 s to commit
    outcome = until_done(argv, limit, GRACE_S, max_attempts=1, runs_root=runs)
    _commit()
    if outcome.interrupted:  # preempted or cancelled: never reported as a finished call
        raise RuntimeError(f"`ictal {command}` was interrupted; what it committed is kept")
    last = outcome.attempts[-1]
    return {
        "command": command,
        "exit_code": outcome.exit_code,
        "done": outcome.done,
        "stopped_by_limit": last.deadline and not outcome.done,
        "run": str(outcome.run_dir or run or "") or None,
        "attempt": attempt,
    }


def _stage_unless_present(sets: list[str]) -> None:
    """Training reads the cache from local disk: stage it when ``cache.remote`` is set and
    cache.root does not hold it yet (never read from a bucket mount)."""
    from ictal.config_file import load_config

    config = sets[sets.index("-c") + 1]
    cfg = load_config(config, [sets[i + 1] for i, a in enumerate(sets) if a == "--set"])
    if cfg.cache.remote and _ictal("verify", *sets) != 0:
        code = _ictal("stage", *sets)
        if code != 0:
            raise RuntimeError(f"ictal stage failed (exit {code}); its message is above")


def _continue(fn: Any, result: dict[str, Any], config: str, overrides: list[str],
              args: list[str]) -> dict[str, Any]:  # fmt: skip
    """A command stopped by the time limit goes on in a new call (bounded)."""
    if not result["stopped_by_limit"] or result["attempt"] >= MAX_ATTEMPTS:
        if result["stopped_by_limit"]:
            print(f"ictal-modal: {MAX_ATTEMPTS} calls spent; call again to continue")
        return result
    nxt = {"run": result["run"], "attempt": result["attempt"] + 1}
    print(f"ictal-modal: time limit; continuing in call {nxt['attempt']}/{MAX_ATTEMPTS}")
    if modal.is_local():
        return fn.local(config, overrides, args, **nxt)
    call = fn.spawn(config, overrides, args, **nxt)
    return {**result, "continued_in": call.object_id}


@app.function(**_options())
def build(config: str, overrides: list[str] | None = None, args: list[str] | None = None,
          run: str | None = None, attempt: int = 1) -> dict[str, Any]:  # fmt: skip
    """``ictal build`` (the corpus read once, from its URL or a mount; the cache on a volume)."""
    overrides, args = list(overrides or []), list(args or [])
    result = _invoke("build", config, overrides, args, run, attempt)
    return _continue(build, result, config, overrides, args)


@app.function(**_options())
def stage(config: str, overrides: list[str] | None = None, args: list[str] | None = None,
          run: str | None = None, attempt: int = 1) -> dict[str, Any]:  # fmt: skip
    """``ictal stage``: the published cache (``cache.remote``) onto the cache volume."""
    overrides, args = list(overrides or []), list(args or [])
    result = _invoke("stage", config, overrides, args, run, attempt)
    return _continue(stage, result, config, overrides, args)


@app.function(**_options(GPU))
def train(config: str, overrides: list[str] | None = None, args: list[str] | None = None,
          run: str | None = None, attempt: int = 1) -> dict[str, Any]:  # fmt: skip
    """``ictal train``, continued across the time limit (``--run DIR``) until done."""
    overrides, args = list(overrides or []), list(args or [])
    result = _invoke("train", config, overrides, args, run, attempt)
    return _continue(train, result, config, overrides, args)


@app.function(**_options(GPU))
def evaluate(config: str, overrides: list[str] | None = None, args: list[str] | None = None,
             run: str | None = None, attempt: int = 1) -> dict[str, Any]:  # fmt: skip
    """``ictal evaluate ARGS`` (ARGS: the checkpoint, e.g. /runs/<id>/checkpoints/best.pt)."""
    overrides, args = list(overrides or []), list(args or [])
    result = _invoke("evaluate", config, overrides, args, run, attempt)
    return _continue(evaluate, result, config, overrides, args)


@app.function(**_options(GPU))
def detect(config: str, overrides: list[str] | None = None, args: list[str] | None = None,
           run: str | None = None, attempt: int = 1) -> dict[str, Any]:  # fmt: skip
    """``ictal detect ARGS`` (ARGS: CKPT INPUT... --out /runs/<name>; resumes by itself)."""
    overrides, args = list(overrides or []), list(args or [])
    result = _invoke("detect", config, overrides, args, run, attempt)
    return _continue(detect, result, config, overrides, args)


FUNCTIONS = {"build": build, "stage": stage, "train": train, "evaluate": evaluate, "detect": detect}


def split_command(argv: list[str]) -> tuple[str, str, list[str], list[str]]:
    """``COMMAND [-c CONFIG] [--set S]... [ARGS]...`` (the CLI's own shape) as the functions'
    parameters: command, config, overrides, the other arguments."""
    if not argv or argv[0] not in FUNCTIONS:
        raise SystemExit(f"usage: COMMAND -c CONFIG [--set section.key=value]... [ARGS]; "
                         f"COMMAND one of {', '.join(FUNCTIONS)}")  # fmt: skip
    command, rest = argv[0], list(argv[1:])
    config, overrides, args = "", [], []
    while rest:
        arg = rest.pop(0)
        if arg in ("-c", "--config") and rest:
            config = rest.pop(0)
        elif arg == "--set" and rest:
            overrides.append(rest.pop(0))
        else:
            args.append(arg)
    if not config:
        raise SystemExit("-c CONFIG (a config file of the repository) is required")
    return command, config, overrides, args


@app.local_entrypoint()
def main(*argv: str) -> None:
    """``modal run deploy/modal/app.py train -c configs/x.yaml --set train.epochs=20``: the
    command line of a local run, run by the function of that name."""
    command, config, overrides, args = split_command(list(argv))
    result = FUNCTIONS[command].remote(config, overrides, args)
    print(result)
    if result.get("exit_code") not in (0, None) and "continued_in" not in result:
        raise SystemExit(int(result["exit_code"]))
