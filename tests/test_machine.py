"""What the machine offers a command, answered cheaply: whether the installed torch could see
a GPU, without importing it (a sweep's coordinator asks, and a CPU build costs 1-2 s to load);
and a C library that keeps freed memory for the next arrays instead of faulting pages in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ictal_env
from ictal import machine


def _lib(tmp: Path, *names: str) -> Path:
    lib = tmp / "torch" / "lib"
    lib.mkdir(parents=True)
    for name in names:
        (lib / name).write_bytes(b"")
    return lib


@pytest.mark.parametrize(
    ("names", "gpu"),
    [
        (("libtorch_cpu.so", "libc10.so", "libtorch.so"), False),  # Linux CPU build
        (("libtorch_cpu.so", "libtorch_cuda.so", "libc10_cuda.so"), True),  # CUDA
        (("libtorch_cpu.so", "libtorch_hip.so"), True),  # ROCm: torch.cuda sees its GPUs
        (("torch_cpu.dll", "c10.dll"), False),  # Windows CPU build
        (("torch_cpu.dll", "torch_cuda.dll"), True),  # Windows CUDA
        (("libtorch_cpu.dylib",), False),  # macOS: no CUDA
        ((), True),  # not a layout it knows: it might
    ],
)
def test_a_gpu_build_is_told_from_a_cpu_build_by_its_libraries(tmp_path, names, gpu):
    assert machine.gpu_libraries([_lib(tmp_path, *names)]) is gpu


def test_no_library_directory_or_no_torch(tmp_path, monkeypatch):
    assert machine.gpu_libraries([tmp_path / "absent"]) is True
    cpu_only = _lib(tmp_path, "libtorch_cpu.so")

    def refused(self):
        raise PermissionError(f"cannot list {self}")

    with monkeypatch.context() as m:  # a directory it may not list: it might
        m.setattr(Path, "iterdir", refused)
        assert machine.gpu_libraries([cpu_only]) is True
    assert machine.gpu_libraries([cpu_only]) is False
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(machine.importlib.util, "find_spec", lambda name: None)
    assert machine.torch_may_see_a_gpu() is False


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter (nothing this test process loaded or set)."""
    return subprocess.run([sys.executable, "-c", code], env=ictal_env(), capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_a_sweep_budget_on_a_cpu_build_leaves_torch_unloaded():
    code = (
        "import sys\n"
        "from ictal.config import Config\n"
        "from ictal.machine import torch_may_see_a_gpu\n"
        "from ictal.orchestrate.budget import default_budget\n"
        "may = torch_may_see_a_gpu()\n"
        "b = default_budget(Config(), None, None, None, 'auto')\n"
        "print(may, b.gpu_memory_gb, 'torch' in sys.modules)\n"
    )
    res = _fresh(code)
    assert res.returncode == 0, res.stderr[-2000:]
    may, gpu, loaded = res.stdout.split()
    if may == "True":
        pytest.skip("the installed torch is not a CPU build: the budget asks it")
    assert (gpu, loaded) == ("None", "False")


def _faults_of_blocks_freed_and_taken_again(keep: bool) -> tuple[int, int]:
    """Minor page faults of a fresh interpreter that takes, fills and frees a 64 MB block
    (a training step's tensors), with or without ``keep_freed_memory`` first: the first
    time, and the 19 times after it."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from memory_probe import freed_block_refaults\n"
        "from ictal.machine import keep_freed_memory\n"
        f"if {keep} and not keep_freed_memory(): sys.exit(7)\n"
        "print(*freed_block_refaults())\n"
    )
    res = _fresh(code)
    if res.returncode == 7:
        pytest.skip("not glibc: nothing to keep")
    assert res.returncode == 0, res.stderr[-2000:]
    first, after = map(int, res.stdout.split())
    return first, after


def test_freed_blocks_are_reused_not_faulted_in_again():
    first, after = _faults_of_blocks_freed_and_taken_again(keep=False)
    assert first > 0 and after >= 15 * first  # the C library's default: fresh pages each time
    first, after = _faults_of_blocks_freed_and_taken_again(keep=True)
    assert first > 0 and after <= first // 2  # kept: the first block's pages, reused


_FROZEN_AT_EXIT = (
    "import atexit, gc, sys\n"
    "say = lambda when: print(when, gc.get_freeze_count() > 0, flush=True)\n"
    "atexit.register(say, 'last:')  # registered before: run after\n"
    "{set_up}\n"
    "atexit.register(say, 'first:')  # registered after: run before\n"
)


@pytest.mark.parametrize(
    "set_up",
    [
        "from ictal.machine import spare_the_last_collection; spare_the_last_collection()",
        "import os\nfrom ictal.parallel.executors import _init_worker\n_init_worker(os.getppid())",
        "from ictal.cli.exits import main\nsys.argv = ['ictal', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass",
    ],
    ids=["machine", "pool-worker", "command-line"],
)
def test_the_exit_spares_the_last_collection_after_the_other_exit_handlers(set_up):
    """The objects alive at exit are frozen (the interpreter's last full collection skips
    them) only once every exit handler registered after the set-up has run: theirs may still
    need the collector."""
    res = _fresh(_FROZEN_AT_EXIT.format(set_up=set_up))
    assert res.returncode == 0, res.stderr[-2000:]
    seen = [line for line in res.stdout.splitlines() if line.endswith(("True", "False"))]
    assert seen == ["first: False", "last: True"]
