"""Shared test helpers: run the real command line in a subprocess."""

from __future__ import annotations

import atexit
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import fsspec
import pytest

from zygote import Zygote

ROOT = Path(__file__).resolve().parents[1]

# Two test processes share the machine's cores (pytest-xdist), and each starts commands that
# run torch: with torch's default of one OpenMP thread per core every command's pool competes
# with the others' (about 15 % of the suite's CPU went to that). Every command the suite runs
# gets one intra-op thread unless the user (or a test, through its own environment) sets it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


# The environment the suite started with, and the start-up variables that libraries imported
# inside the test process set in it (scikit-learn, joblib and threadpoolctl set KMP_*, torch's
# inductor TORCHINDUCTOR_*, a Ray driver PYTHONBREAKPOINT): a user's shell has none of them, a
# fresh `ictal` sets its own, and passing them on would make every later command of the test
# process start a new interpreter (tests/zygote.py).
_START_ENV = dict(os.environ)
_IMPORT_SET = ("KMP_", "TORCHINDUCTOR_", "PYTHONBREAKPOINT")


def _without_import_leaks(env: dict[str, str]) -> dict[str, str]:
    """``env`` less the variables an in-process import added to this process's environment."""
    return {
        k: v
        for k, v in env.items()
        if not (k.startswith(_IMPORT_SET) and k not in _START_ENV and os.environ.get(k) == v)
    }


def ictal_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an ictal subprocess: this checkout's sources first, plus ``extra``."""
    env = _without_import_leaks(dict(os.environ))
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def _faults_env() -> dict[str, str]:
    """``ictal_env()`` with tests/faults first on the path: its sitecustomize acts on the
    ICTAL_FAULT_* variables the caller sets."""
    env = ictal_env()
    env["PYTHONPATH"] = str(ROOT / "tests" / "faults") + os.pathsep + env["PYTHONPATH"]
    return env


def fault_env(code: str, match: str, after: int = 0) -> dict[str, str]:
    """Environment that makes the OS refuse writes to paths matching ``match`` with errno
    ``code`` (after ``after`` allowed ones), through tests/faults/sitecustomize.py."""
    env = _faults_env()
    env.update(ICTAL_FAULT_ERRNO=code, ICTAL_FAULT_MATCH=match, ICTAL_FAULT_AFTER=str(after))
    return env


def stall_env(
    match: str, after: int = 0, release: Path | None = None, line: str | None = None
) -> dict[str, str]:
    """Environment in which a process's write-open of a path matching ``match`` (with
    ``line``: its write of the line holding that text), after ``after`` allowed ones, waits
    until ``release`` exists or, without it, until a signal's exception ends it
    (tests/faults/sitecustomize.py): the process cannot finish before the test signals it."""
    env = _faults_env()
    env.update(ICTAL_FAULT_STALL=match, ICTAL_FAULT_AFTER=str(after))
    if line is not None:
        env.update(ICTAL_FAULT_STALL_AT="write", ICTAL_FAULT_STALL_CONTAINS=line)
    if release is not None:
        env["ICTAL_FAULT_RELEASE"] = str(release)
    return env


def train_line(step: int) -> str:
    """The text that marks step ``step``'s train line in metrics.jsonl (for ``stall_env``)."""
    return f'"step":{step},"step_in_epoch"'


def torchless_env(tmp: Path) -> tuple[dict[str, str], Path]:
    """An environment where torch cannot be imported (a `torch` package first on the path
    that raises ImportError), and the file that package appends to whenever anything tries:
    a command that must run without torch must not even try (an installed torch's import,
    caught, would still cost its 1-2 s)."""
    blocker = tmp / "no-torch" / "torch"
    blocker.mkdir(parents=True)
    tried = tmp / "torch-tried"
    (blocker / "__init__.py").write_text(
        "import os\n"
        "with open(os.environ['ICTAL_TEST_TORCH_TRIED'], 'a') as f:\n"
        "    f.write('tried\\n')\n"
        "raise ImportError('torch blocked by the test')\n"
    )
    env = ictal_env({"ICTAL_TEST_TORCH_TRIED": str(tried)})
    env["PYTHONPATH"] = f"{blocker.parent}{os.pathsep}{env['PYTHONPATH']}"
    return env, tried


# A training that takes seconds and still goes through everything: 8 s windows, batches of 4,
# reads inline, every epoch trained (no early stopping) and (unless ``model=False``) a tiny
# detector.
TINY_TRAINING = (
    "windows.length_s=8",
    "windows.stride_s=4",
    "loader.batch_size=4",
    "loader.num_workers=0",
    "train.patience=null",
)
TINY_MODEL = "model.params={width: 8, gru_hidden: 8}"


def tiny_training(*extra: str, model: bool = True) -> list[str]:
    """``TINY_TRAINING`` (and the tiny model), then a test module's own ``extra`` settings,
    which win where they name the same field."""
    return [*TINY_TRAINING, *([TINY_MODEL] if model else []), *extra]


def poll(condition: Callable[[], Any], timeout: float = 120.0, what: str = "condition",
         every: float = 0.01) -> Any:  # fmt: skip
    """``condition()``'s first true value, checked every ``every`` seconds; an AssertionError
    naming ``what`` after ``timeout`` seconds (tests wait for a state, never for a time)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:.0f} s")
        time.sleep(every)
    return value


def plant_victims(tmp: Path) -> dict[Path, str]:
    """Files an attack must never touch (one beside the roots, one in a directory outside
    them), with their sha256, for a test to check they are intact."""
    victims = {}
    for path in (tmp / "victim.txt", tmp / "outside" / "keep.txt"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"precious {path.name}\n")
        victims[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return victims


def set_args(*items: str) -> list[str]:
    """``--set ITEM`` for every item, in order (later ones win)."""
    return [arg for item in items for arg in ("--set", item)]


def roots(corpus: Path, cache: Path, runs: Path, *items: str) -> list[str]:
    """``--set`` arguments naming the three roots, then ``items``."""
    return set_args(f"corpus.root={corpus}", f"cache.root={cache}", f"runs.root={runs}", *items)


def settings(tmp: Path, runs: str | Path, fast: Iterable[str], *extra: str) -> list[str]:
    """``--set`` arguments: corpus, cache and runs under ``tmp`` (``runs``: a name there, or
    a path), then the test module's ``fast`` settings and ``extra``."""
    return roots(tmp / "corpus", tmp / "cache", tmp / runs, *fast, *extra)


def small_built_corpus(tmp: Path, seed: int, fast: Iterable[str]) -> Path:
    """A 3-patient, 0.4 h synthetic corpus in ``tmp/corpus`` with its cache built."""
    from ictal.corpus.synth import synthesize

    synthesize(tmp / "corpus", patients=3, hours=0.4, seed=seed)
    res = run_ictal("build", "--workers", "1", *settings(tmp, "runs", fast))
    assert res.returncode == 0, res.stderr[-2000:]
    return tmp


_ZYGOTE: list[Zygote] = []


def _zygote() -> Zygote | None:
    """This test process's zygote (tests/zygote.py), started on first use; None when
    ICTAL_TEST_ZYGOTE=0 asks for a fresh interpreter per command."""
    if os.environ.get("ICTAL_TEST_ZYGOTE", "1") == "0":
        return None
    if not _ZYGOTE:
        _ZYGOTE.append(Zygote(ictal_env()))
        atexit.register(_ZYGOTE[0].close)
    return _ZYGOTE[0]


def run_ictal(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """Run `ictal ARGS` as a user would (same interpreter), capturing output, no stdin: a
    process forked from the pre-imported zygote (tests/zygote.py) when it starts exactly as
    a fresh one would, else (or with ``fresh``) a new interpreter."""
    env = _without_import_leaks(env) if env is not None else ictal_env()
    zygote = None if fresh else _zygote()
    if zygote is not None and zygote.eligible(env):
        return zygote.run(args, cwd, env, timeout)
    return subprocess.run(
        [sys.executable, "-m", "ictal.cli", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tree_digest(root: Path) -> str:
    """sha256 over every file under ``root`` (relative path and bytes, in sorted order)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# pytest-xdist hands the test files out most tests first, so the files of one to four long
# tests came last, and the suite ended with them running alone while the other test processes
# sat idle (test_end_to_end and test_modal, 45 s each; test_skypilot and test_sweep_compare,
# 40-50 s in one test; test_ddp, 75-90 s in five, the last file of the suite on 2026-12-07:
# the others idle for its last 50 s). `make test` turns xdist's order off
# (--no-loadscope-reorder) and this keeps it, but hands these out first, in this order.
FIRST = (
    "test_end_to_end.py",
    "test_modal.py",
    "test_skypilot.py",
    "test_sweep_compare.py",
    "test_user_models.py",
    "test_ddp.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order xdist would choose (files with more tests first), the FIRST files before it."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.path.name] = counts.get(item.path.name, 0) + 1

    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        return (FIRST.index(name), 0) if name in FIRST else (len(FIRST), -counts[name])

    items.sort(key=rank)


@pytest.fixture
def ictal():
    """The command line as a fixture: ictal('build', '-c', cfg) -> CompletedProcess."""
    return run_ictal


@pytest.fixture(scope="session")
def s3():
    """An S3 endpoint on 127.0.0.1 with one bucket; env for s3fs/botocore."""
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("results")
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()
