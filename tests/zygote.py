"""A pre-imported Python that forks one real process per `ictal` command the tests run.

Most of a short command's time in the suite is a fresh interpreter importing torch, numpy
and Ictal (1-2 s of a 2 s hostile case). The zygote imports them once per test process and,
for each command, forks a child that starts as `python -m ictal.cli ARGS` would: its own
pid, the test's environment, working directory and `sys.path` (cwd first, then PYTHONPATH),
stdin from /dev/null, stdout and stderr captured, `ictal/cli/__main__.py` run as `__main__`,
the real exit code (or the killing signal) back. Only what an interpreter decides at start-up
is shared, so a command whose environment changes that (thread counts, locale, a
sitecustomize on its path, interpreter options) gets a real fresh process instead
(`eligible`), as does every test that starts its processes itself (kills, signals).

Run as a script it is the server: requests and replies are pickled, length-prefixed, over
its stdin and stdout pipes; it exits when the test process closes them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = struct.Struct("!I")
# Environment variables an interpreter or a library reads once, at start-up or import: a
# command whose environment differs from the zygote's in one of these runs fresh.
STARTUP_PREFIXES = ("PYTHON", "LD_", "LANG", "LC_", "OMP_", "MKL_", "OPENBLAS_", "KMP_",
                    "GOTO", "VECLIB", "NUMEXPR", "TORCH", "CUDA", "MALLOC", "TERM", "COLUMNS",
                    "LINES", "NO_COLOR", "FORCE_COLOR", "TZ", "HOME", "XDG_")  # fmt: skip
SITE_HOOKS = ("sitecustomize.py", "usercustomize.py")


def _send(fd: int, obj: object) -> None:
    data = pickle.dumps(obj)
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> object | None:
    head = _read_exact(fd, HEADER.size)
    if head is None:
        return None
    body = _read_exact(fd, HEADER.unpack(head)[0])
    return None if body is None else pickle.loads(body)


# --- server -----------------------------------------------------------------------------


def _preload() -> None:
    """Import what commands import (torch, numpy, every Ictal module that loads without an
    optional extra), without running any torch or BLAS work: a fork of a process whose
    thread pools never started is safe."""
    import importlib
    import pkgutil

    import torch._dynamo  # noqa: F401  (DDP and torch.compile load it: 2 s of a command)

    import ictal
    import ictal.cli

    extras = ("ray", "modal", "sky", "wandb", "mlflow")
    for info in pkgutil.walk_packages(ictal.__path__, "ictal."):
        if info.name.endswith("__main__"):  # running them is the child's job
            continue
        before = set(sys.modules)
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional extra missing: the child imports it itself
            continue
        pulled = {m.split(".")[0] for m in set(sys.modules) - before}
        if pulled & set(extras):  # keep extras out: their import starts threads
            for name in set(sys.modules) - before:
                del sys.modules[name]
    from ictal.cli.exits import click_command

    click_command()  # the command tree every child would otherwise build (50 ms each)
    # torch's compiler formats a table of compile times at every exit, importing its
    # formatter the first time (20-27 ms of each child's exit): loaded here once.
    with contextlib.suppress(Exception):
        from torch._dynamo.utils import compile_times

        compile_times(repr="str", aggregate=True)


def _child(request: dict, proto: Sequence[int]) -> None:
    """In the forked child: become `python -m ictal.cli ARGS` and exit with its code."""
    import importlib
    import runpy

    for fd in proto:
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for target, path in ((1, request["out"]), (2, request["err"])):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, target)
        os.close(fd)
    os.close(devnull)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    base = [p for p in sys.path[1:] if p not in extra]
    sys.path[:] = [os.getcwd(), *extra, *base]
    importlib.invalidate_caches()
    import random

    import numpy as np

    random.seed()
    np.random.seed()
    sys.argv = ["-m", *request["args"]]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        runpy.run_module("ictal.cli", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    _exit(code)


def _exit(code: int) -> None:
    """Exit as an interpreter does (atexit handlers, then the streams flushed) but without
    tearing down the modules inherited from the zygote: that would touch, and so copy,
    every page the fork shares with it."""
    import atexit

    if "threading" in sys.modules:
        sys.modules["threading"]._shutdown()  # non-daemon threads first, as at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def serve() -> None:
    """Preload, then fork a child per request and reply with its pid, then its status."""
    sys.path[0] = str(ROOT / "src")
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    _preload()
    import gc
    import weakref

    # The exit finalizers of what the zygote loaded (torch's 174 operator libraries) are its
    # own teardown, which a child leaves alone like its modules': run in every child's exit
    # they touched, and so copied, pages it shares with the zygote (40 ms of each command).
    for inherited in list(getattr(weakref.finalize, "_registry", {})):
        inherited.atexit = False
    gc.collect()
    gc.freeze()  # the children's collections skip (and so do not copy) the zygote's objects
    native = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    _send(proto_out, {"ready": True, "threads": threading.active_count(), "native": native})
    while True:
        request = _receive(proto_in)
        if request is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                _child(request, (proto_in, proto_out))
            except BaseException:  # a failure to start: report it as the child's stderr
                import traceback

                traceback.print_exc()
                _exit(1)
        _send(proto_out, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(proto_out, {"status": status})


# --- client -----------------------------------------------------------------------------


class Zygote:
    """The test process's handle on its zygote server (started on first use)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            cwd=ROOT,
        )
        self.tmp = Path(tempfile.mkdtemp(prefix="ictal-zygote-"))
        self.count = 0
        hello = _receive(self.proc.stdout.fileno())
        if not isinstance(hello, dict) or not hello.get("ready"):
            raise RuntimeError("the test zygote did not start")
        self.hello = hello

    def eligible(self, env: Mapping[str, str]) -> bool:
        """True when a fork of the zygote starts as a fresh interpreter with ``env`` would:
        the same start-up variables, and PYTHONPATH only adds directories without site
        hooks after the zygote's own."""
        keys = set(env) | set(self.env)
        for key in keys:
            if key == "PYTHONPATH" or env.get(key) == self.env.get(key):
                continue
            if key.startswith(STARTUP_PREFIXES):
                return False
        mine = self.env.get("PYTHONPATH", "")
        theirs = env.get("PYTHONPATH", "")
        if not theirs.startswith(mine):
            return False
        added = [p for p in theirs[len(mine) :].split(os.pathsep) if p]
        return not any(os.path.exists(os.path.join(p, h)) for p in added for h in SITE_HOOKS)

    def run(
        self, args: Sequence[str], cwd: Path | None, env: Mapping[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        """Run one command in a forked child; a CompletedProcess as subprocess.run gives."""
        self.count += 1
        out, err = self.tmp / f"{self.count}.out", self.tmp / f"{self.count}.err"
        request = {"args": list(args), "cwd": str(cwd or os.getcwd()), "env": dict(env),
                   "out": str(out), "err": str(err)}  # fmt: skip
        fd_in, fd_out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        _send(fd_in, request)
        reply = _receive(fd_out)
        if not isinstance(reply, dict) or "pid" not in reply:
            raise RuntimeError("the test zygote stopped")
        pid = reply["pid"]
        ready, _, _ = select.select([fd_out], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        done = _receive(fd_out)
        if not isinstance(done, dict):
            raise RuntimeError("the test zygote stopped")
        stdout, stderr = _text(out), _text(err)
        out.unlink(missing_ok=True)
        err.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "ictal.cli", *args]
        if not ready:
            raise subprocess.TimeoutExpired(argv, timeout, stdout, stderr)
        code = os.waitstatus_to_exitcode(done["status"])
        return subprocess.CompletedProcess(argv, code, stdout, stderr)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        for path in self.tmp.iterdir():
            path.unlink()
        self.tmp.rmdir()


def _text(path: Path) -> str:
    """A captured stream as subprocess.run(text=True) decodes it."""
    try:
        with open(path, encoding=None, newline=None) as f:
            return f.read()
    except FileNotFoundError:
        return ""


if __name__ == "__main__":
    serve()
