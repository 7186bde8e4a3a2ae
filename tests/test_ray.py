"""The Ray executor on a local Ray instance a build starts itself, and on a running local
cluster it joins (2 CPUs each): the same bytes as the local executor, a killed Ray worker
retried, a Ray build killed and resumed locally (and the reverse), and a clear exit 2 without
Ray installed."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import ictal_env, poll, run_ictal
from ictal.corpus.synth import synthesize

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def _sets(corpus: Path, cache: Path) -> list[str]:
    return ["--set", f"corpus.root={corpus}", "--set", f"cache.root={cache}"]


def _tree(cache: Path) -> dict[str, str]:
    (path,) = [p for p in cache.iterdir() if p.is_dir() and len(p.name) == 16]
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name not in ("build.json", ".lock")
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A corpus and the tree of its cache built by the local executor (the reference)."""
    tmp = tmp_path_factory.mktemp("ray")
    synthesize(tmp / "corpus", patients=6, hours=1.5, seed=8)
    res = run_ictal("build", "--workers", "2", *_sets(tmp / "corpus", tmp / "reference"))
    assert res.returncode == 0, res.stderr[-2000:]
    return tmp / "corpus", _tree(tmp / "reference")


@pytest.fixture(scope="module")
def head():  # type: ignore[no-untyped-def]
    """A running Ray cluster (``ray start --head --block``, 2 CPUs): its address and its temp
    directory. The builds that join it share its start (a local Ray instance costs each build
    seconds of CPU)."""
    import socket
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # Ray's socket paths must stay short
    ray_cli = str(Path(sys.executable).with_name("ray"))
    proc = subprocess.Popen([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={temp}", "--block"],
                            env=ictal_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None

    try:
        poll(listening, timeout=120, what="the Ray head listening")
        assert proc.poll() is None, "ray start --head failed"
        yield f"127.0.0.1:{port}", temp
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # every Ray process of this head is in its group
        proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _records(cache: Path) -> int:
    return sum(1 for d in cache.glob("*.building-*") for p in (d / "records").glob("*.json")
               if not p.name.startswith("."))  # fmt: skip


def _ray_tasks(cluster: str) -> list[psutil.Process]:
    """The Ray workers running a build task in the cluster whose ``--temp-dir`` is ``cluster``
    (their raylet, the parent, names it): never another test's, run at the same time."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any("ray::build_one" in part for part in (p.info["cmdline"] or [])):
                parent = p.parent()
                if parent is not None and any(cluster in a for a in parent.cmdline()):
                    out.append(p)
        except psutil.Error:
            continue
    return out


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ictal.cli", *args], env=ictal_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_ray_build_is_byte_identical_to_the_local_one(corpus, tmp_path):
    root, reference = corpus
    res = run_ictal("build", "--executor", "ray", "--workers", "2", *_sets(root, tmp_path / "c"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert _tree(tmp_path / "c") == reference


def test_a_killed_ray_worker_is_retried(corpus, head, tmp_path):
    (root, reference), (address, cluster) = corpus, head
    proc = _start(["build", "--executor", "ray", "--address", address,
                   *_sets(root, tmp_path / "c")])  # fmt: skip
    poll(lambda: bool(_ray_tasks(cluster)) or proc.poll() is not None, what="a Ray task running")
    victims = _ray_tasks(cluster)
    assert victims, "the build ended before a task could be killed"
    victims[0].send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert _tree(tmp_path / "c") == reference


def test_a_ray_build_resumes_locally_and_a_local_one_on_ray(corpus, head, tmp_path):
    (root, reference), (address, cluster) = corpus, head
    on_ray = ["--executor", "ray", "--address", address]
    for first, then in ((on_ray, ["--executor", "process"]),
                        (["--executor", "process"], on_ray)):  # fmt: skip
        cache = tmp_path / f"c-{first[1]}"
        proc = _start(["build", *first, "--workers", "2", *_sets(root, cache)])
        poll(lambda c=cache, p=proc: _records(c) >= 2 or p.poll() is not None,
              what="two recordings built")  # fmt: skip
        assert proc.poll() is None, "the build ended before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        poll(lambda: not _ray_tasks(cluster), timeout=60, what="the Ray tasks gone with the driver")
        done = _records(cache)
        res = run_ictal("build", *then, "--workers", "2", *_sets(root, cache))
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"{done} skipped" in res.stdout or f"{done} already done" in res.stderr
        assert _tree(cache) == reference


def test_without_ray_the_executor_is_a_usage_error(corpus, tmp_path):
    root, _ = corpus
    script = ("import sys; sys.modules['ray'] = None; from ictal.cli import main; "
              "sys.argv = ['ictal'] + sys.argv[1:]; main()")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", script, "build", "--executor", "ray",
                          *_sets(root, tmp_path / "c")], env=ictal_env(), capture_output=True,
                         text=True)  # fmt: skip
    assert res.returncode == 2, res.stderr[-2000:]
    assert "pip install 'ictal[ray]'" in res.stderr and "Traceback" not in res.stderr


def test_a_worker_that_cannot_see_the_cache_root_stops_the_build(corpus, tmp_path):
    """A node without the shared file system must refuse, not write to its own disk."""
    from ictal.cache.worker import Task, build_one
    from ictal.config import Config
    from ictal.corpus.discovery import scan
    from ictal.parallel.cluster import RayExecutor
    from ictal.parallel.executors import NotShared

    root, _ = corpus
    ref = scan(str(root)).refs[0]
    elsewhere = tmp_path / "not-mounted-here" / "abc.building-1"
    task = Task(str(root), ref, str(elsewhere), Config().model_dump(mode="json"), {})
    with pytest.raises(NotShared, match=r"cache\.root.*not visible on") as err:
        list(RayExecutor(2).map_unordered(build_one, [task]))
    assert "same path" in str(err.value) and not elsewhere.exists()


def test_a_build_joins_a_running_cluster_by_address(corpus, head, tmp_path):
    (root, reference), (address, _) = corpus, head
    res = run_ictal("build", "--executor", "ray", "--address", address,
                    *_sets(root, tmp_path / "c"))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert _tree(tmp_path / "c") == reference


def test_a_ray_worker_is_set_up_as_a_local_pool_worker(head):
    """A Ray worker of an Ictal job keeps freed memory for reuse, as the command line and a
    local pool worker do (``machine.own_process``): the same task runs the same way wherever
    it runs. (By default each 64 MB block taken again faults in fresh pages.)"""
    address, _ = head
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import memory_probe\n"
        "from ictal.parallel.cluster import RayExecutor\n"
        f"execu = RayExecutor(None, {address!r})\n"
        "import ray.cloudpickle\n"
        "ray.cloudpickle.register_pickle_by_value(memory_probe)  # workers cannot import tests/\n"
        "probe = lambda _: memory_probe.freed_block_refaults()\n"
        "(counts,) = execu.map_unordered(probe, [0])  # all of it: Ray stopped after\n"
        "print(*counts)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], env=ictal_env(), capture_output=True,
                         text=True, timeout=300, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    first, after = map(int, res.stdout.split()[-2:])
    assert first > 0 and after <= first // 2, (first, after)


def test_a_node_whose_workers_cannot_set_up_is_named_with_its_fix(corpus, head, tmp_path):
    """Workers that cannot import their set-up (a node without ictal, played here by a set-up
    of a module no node has) die before their first task: after the retries, exit 3 and one
    message that says so and how to fix it, never a bare "out of memory" or a traceback."""
    (root, _), (address, _) = corpus, head
    argv = ["ictal", "build", "--executor", "ray", "--address", address, "--set",
            "ray.max_retries=0", *_sets(root, tmp_path / "c")]  # fmt: skip
    code = (
        "import sys\n"
        "import ictal.parallel.cluster as cluster\n"
        "cluster.SET_UP = 'ictal_absent_from_this_node.own_process'\n"
        "from ictal.cli.exits import main\n"
        f"sys.argv = {argv!r}\n"
        "main()\n"
    )
    res = subprocess.run([sys.executable, "-c", code], env=ictal_env(), capture_output=True,
                         text=True, timeout=300, check=False)  # fmt: skip
    assert res.returncode == 3, res.stderr[-3000:]
    said = [line for line in res.stderr.splitlines() if "a Ray worker died once" in line]
    assert len(said) == 1 and "could not start" in said[0], res.stderr[-3000:]
    assert "install this ictal on every node" in res.stderr and "Traceback" not in res.stderr


def test_an_address_where_no_cluster_listens_is_refused_at_once(corpus, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    root, _ = corpus
    t = time.monotonic()
    res = run_ictal("build", "--executor", "ray", "--address", f"127.0.0.1:{port}",
                    *_sets(root, tmp_path / "c"))  # fmt: skip
    assert res.returncode == 3 and time.monotonic() - t < 60, res.stderr[-2000:]
    assert f"cannot join the Ray cluster at 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr
