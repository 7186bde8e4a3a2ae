"""The --nproc relaunch under torchrun, with a stand-in launcher (a real one is in
tests/test_ddp.py): the ranks' command line, the exit code passed through, a share of the CPUs
per rank, the refusal under torchrun, and Ctrl-C stopping the launcher with exit 130."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from ictal.errors import UsageError
from ictal.machine import usable_cpus
from ictal.orchestrate import launch
from ictal.orchestrate.argv import without

# A stand-in launcher: writes its OMP_NUM_THREADS, then exits 3, or (with "wait") waits
# for SIGTERM, leaves a mark and exits 130.
LAUNCHER = """
import os, signal, sys, time
out, mode = sys.argv[1], sys.argv[2]
def stopped(*_):
    open(out + ".term", "w").close()
    sys.exit(130)
signal.signal(signal.SIGTERM, stopped)
with open(out + ".tmp", "w") as f:
    f.write(str(os.environ.get("OMP_NUM_THREADS")))
os.replace(out + ".tmp", out)
if mode == "wait":
    time.sleep(300)
sys.exit(3)
"""


def _stand_in(monkeypatch: pytest.MonkeyPatch, out: Path, mode: str) -> None:
    def args(nproc: int, argv: list[str]) -> list[str]:
        return [sys.executable, "-c", LAUNCHER, str(out), mode]

    monkeypatch.setattr(launch, "torchrun_args", args)


def test_the_ranks_run_the_same_command_without_nproc():
    argv = ["train", "--nproc", "2", "-c", "a.yaml", "--nproc=4", "--set", "x=1"]
    assert without(argv, "--nproc") == ["train", "-c", "a.yaml", "--set", "x=1"]
    assert launch.torchrun_args(2, ["bench", "--nproc", "2", "--batches", "3"]) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "ictal", "bench", "--batches", "3"]  # fmt: skip


def test_nproc_under_torchrun_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UsageError, match="--nproc under torchrun: give --nproc-per-node"):
        launch.torchrun(2, ["train", "--nproc", "2"])


def test_the_exit_code_comes_back_and_each_rank_gets_its_share_of_cpus(monkeypatch, tmp_path):
    out = tmp_path / "launcher"
    _stand_in(monkeypatch, out, "exit")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert launch.torchrun(2, ["train"]) == 3
    assert out.read_text() == str(max(1, usable_cpus() // 2))
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's setting is kept
    assert launch.torchrun(2, ["train"]) == 3
    assert out.read_text() == "7"


def test_ctrl_c_stops_the_launcher_and_exits_130(monkeypatch, tmp_path):
    out = tmp_path / "launcher"
    _stand_in(monkeypatch, out, "wait")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()

    def interrupt() -> None:  # Ctrl-C once the launcher is up, to the thread waiting for it
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        signal.pthread_kill(main, signal.SIGINT)

    presser = threading.Thread(target=interrupt, daemon=True)
    presser.start()
    try:
        assert launch.torchrun(2, ["train"]) == 130
    finally:
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert Path(f"{out}.term").exists(), "the launcher was not given SIGTERM"
