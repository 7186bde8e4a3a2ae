"""Publish and stage: a cache built on one machine reaches another byte for byte through an
S3 API (moto's server on loopback) or a shared path; interrupted transfers resume, damaged
copies are caught by content hashes, and nothing half-copied is ever used."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest

from conftest import ictal_env, run_ictal
from ictal.corpus.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]


def _committed(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and len(p.name) == 16)


def _tree(path: Path) -> dict[str, str]:
    """sha256 of every file of a cache directory (lock excluded), by relative path."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A corpus and its committed cache (the build machine)."""
    from conftest import run_ictal

    tmp = tmp_path_factory.mktemp("published")
    synthesize(tmp / "corpus", patients=3, hours=0.3, seed=4)
    res = run_ictal("build", "--set", f"corpus.root={tmp / 'corpus'}",
                    "--set", f"cache.root={tmp / 'cache'}")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    (path,) = _committed(tmp / "cache")
    return tmp / "corpus", path


def _builder(corpus: Path, cache: Path, remote: str) -> list[str]:
    return ["--set", f"corpus.root={corpus}", "--set", f"cache.root={cache.parent}",
            "--set", f"cache.remote={remote}"]  # fmt: skip


def _trainer(tmp: Path, remote: str) -> list[str]:
    """A training machine: no corpus, an empty cache root, the remote location."""
    return ["--set", f"corpus.root={tmp / 'no-corpus-here'}", "--set",
            f"cache.root={tmp / 'local-cache'}", "--set", f"cache.remote={remote}"]  # fmt: skip


@pytest.mark.slow
def test_publish_then_stage_through_s3_is_byte_identical(s3, built, tmp_path, ictal):
    corpus, path = built
    remote = "s3://results/caches"
    trainer = _trainer(tmp_path, remote)
    res = ictal("train", *trainer)
    assert res.returncode == 3 and "ictal stage" in res.stderr  # the fix is named

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    res = ictal("publish", *_builder(corpus, path, "s3://no-such-bucket/caches"))
    assert res.returncode == 3 and "no-such-bucket" in res.stderr  # named, no traceback
    assert "Traceback" not in res.stderr and not fs.exists("no-such-bucket")  # never created
    res = ictal("publish", *_builder(corpus, path, remote))
    assert res.returncode == 0, res.stderr[-2000:]
    assert fs.exists(f"results/caches/{path.name}/manifest.json")
    again = ictal("publish", *_builder(corpus, path, remote))
    assert again.returncode == 0 and "already published" in again.stdout

    res = ictal("stage", *trainer)
    assert res.returncode == 0, res.stderr[-2000:]
    (staged,) = _committed(tmp_path / "local-cache")
    assert staged.name == path.name and _tree(staged) == _tree(path)
    assert not list((tmp_path / "local-cache").glob("*.staging"))
    assert ictal("verify", "--full", *trainer).returncode == 0  # found without the corpus
    again = ictal("stage", *trainer)
    assert again.returncode == 0 and "already staged" in again.stdout


def test_publish_refuses_a_damaged_cache(built, tmp_path, ictal):
    corpus, path = built
    copy = tmp_path / "cache" / path.name
    import shutil

    shutil.copytree(path, copy)
    array = sorted((copy / "arrays").iterdir())[0]
    data = bytearray(array.read_bytes())
    data[-1] ^= 0xFF  # same size: only content hashes (L1) can see it
    array.write_bytes(bytes(data))
    remote = tmp_path / "remote"
    remote.mkdir()
    res = ictal("publish", *_builder(corpus, copy, str(remote)))
    assert res.returncode == 3
    assert array.name in res.stderr and "not published" in res.stderr
    assert not (remote / path.name / "manifest.json").exists()


def test_stage_catches_damage_and_resumes(built, tmp_path, ictal):
    corpus, path = built
    remote = tmp_path / "remote"
    remote.mkdir()
    assert ictal("publish", *_builder(corpus, path, str(remote))).returncode == 0
    trainer = _trainer(tmp_path, str(remote))
    # An unfinished publish (no manifest yet) is not stageable.
    manifest = remote / path.name / "manifest.json"
    saved = manifest.read_bytes()
    manifest.unlink()
    res = ictal("stage", *trainer, "--key", path.name)
    assert res.returncode == 3 and "not published" in res.stderr
    manifest.write_bytes(saved)
    # A staging copy left by an interrupted stage, with one file damaged at its full size.
    staging = tmp_path / "local-cache" / f"{path.name}.staging"
    (staging / "arrays").mkdir(parents=True)
    arrays = sorted((path / "arrays").iterdir())
    for a in arrays[:3]:
        (staging / "arrays" / a.name).write_bytes(a.read_bytes())
    bad = staging / "arrays" / arrays[0].name
    data = bytearray(bad.read_bytes())
    data[100] ^= 0x01
    bad.write_bytes(bytes(data))
    res = ictal("stage", *trainer)
    assert res.returncode == 3
    assert "fails verification" in res.stderr and arrays[0].name in res.stderr
    assert not _committed(tmp_path / "local-cache")  # nothing damaged is ever committed
    res = ictal("stage", *trainer)  # fetches the damaged file again, keeps the good ones
    assert res.returncode == 0, res.stderr[-2000:]
    (staged,) = _committed(tmp_path / "local-cache")
    assert _tree(staged) == _tree(path)


STAGE = """
import sys
from ictal.cache import remote
from ictal.config_file import load_config
remote.stage(load_config(None, sys.argv[1:]))
"""


@pytest.mark.slow
def test_stage_killed_with_sigkill_resumes_and_never_commits_half(built, tmp_path, ictal):
    import random

    corpus, path = built
    remote = tmp_path / "remote"
    remote.mkdir()
    assert ictal("publish", *_builder(corpus, path, str(remote))).returncode == 0
    local = tmp_path / "local"
    sets = [f"corpus.root={tmp_path / 'no-corpus-here'}", f"cache.root={local}",
            f"cache.remote={remote}"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    staging = local / f"{path.name}.staging"
    rng = random.Random(3)
    interrupted = attempts = 0
    # Kill at a random moment once files are arriving, until a kill has left a staging copy
    # behind; a stage that finished first is checked, removed and tried again.
    while interrupted < 2 and attempts < 20:
        attempts += 1
        proc = subprocess.Popen([sys.executable, "-c", STAGE, *sets], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if staging.exists() and any((staging / "arrays").glob("*.npy")):
                break
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.01))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        for p in _committed(local):  # committed means complete, never half
            assert _tree(p) == _tree(path)
            shutil.rmtree(p)  # not the case under test: stage again
        if proc.returncode == -signal.SIGKILL and staging.exists():
            interrupted += 1
    assert interrupted >= 1, f"no stage was interrupted in {attempts} attempts"
    res = ictal("stage", *[a for s in sets for a in ("--set", s)])
    assert res.returncode == 0, res.stderr[-2000:]
    (staged,) = _committed(local)
    assert _tree(staged) == _tree(path)


def test_stage_with_another_corpus_names_the_published_caches(built, tmp_path, ictal):
    corpus, path = built
    remote = tmp_path / "remote"
    remote.mkdir()
    assert ictal("publish", *_builder(corpus, path, str(remote))).returncode == 0
    other = tmp_path / "other-corpus"
    synthesize(other, patients=3, hours=0.3, seed=5)  # same config, another inventory
    res = ictal("stage", "--set", f"corpus.root={other}", "--set",
                f"cache.root={tmp_path / 'local'}", "--set", f"cache.remote={remote}")  # fmt: skip
    assert res.returncode == 3
    assert "another corpus inventory" in res.stderr and path.name in res.stderr


def _publish_to_s3(built, ictal, prefix: str) -> tuple[Path, str]:
    corpus, path = built
    remote = f"s3://results/{prefix}"
    res = ictal("publish", *_builder(corpus, path, remote))
    assert res.returncode == 0, res.stderr[-2000:]
    return path, remote


@pytest.mark.slow
def test_stage_refuses_a_remote_name_that_climbs_out(s3, built, tmp_path, ictal):
    path, remote = _publish_to_s3(built, ictal, "escape")
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.pipe_file(f"results/escape/{path.name}/../../../evil.txt", b"owned")
    assert any("evil.txt" in k for k in fs.find("results/escape"))  # the key holds '..'
    res = ictal("stage", *_trainer(tmp_path, remote))
    assert res.returncode == 3, res.stderr[-2000:]
    assert "evil.txt" in res.stderr and "Traceback" not in res.stderr
    assert not [p for p in tmp_path.parent.rglob("evil.txt")], "written outside cache.root"
    assert not _committed(tmp_path / "local-cache")


def test_stage_of_a_table_pointing_outside_deletes_nothing_of_the_user(s3, built, tmp_path, ictal):
    from ictal.cache.manifest import sha256_bytes, table_bytes

    path, remote = _publish_to_s3(built, ictal, "victim")
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file next to the cache")
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    base = f"results/victim/{path.name}"
    rows = json.loads(fs.cat_file(f"{base}/recordings.json"))
    # <tmp>/local/cache/<key16>.staging/../../../victim.txt is <tmp>/victim.txt
    rows[0]["array"] = "../../../victim.txt"
    table = table_bytes(rows)
    man = json.loads(fs.cat_file(f"{base}/manifest.json"))
    man["table"]["sha256"] = sha256_bytes(table)
    fs.pipe_file(f"{base}/recordings.json", table)
    fs.pipe_file(f"{base}/manifest.json", json.dumps(man).encode())
    local = tmp_path / "local" / "cache"
    trainer = ["--set", f"corpus.root={tmp_path / 'none'}", "--set", f"cache.root={local}",
               "--set", f"cache.remote={remote}"]  # fmt: skip
    res = ictal("stage", *trainer)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "victim.txt" in res.stderr and "Traceback" not in res.stderr
    assert victim.read_text() == "the user's file next to the cache"
    assert not _committed(tmp_path / "local" / "cache")


@pytest.mark.slow
def test_publish_force_repairs_a_damaged_remote_copy(s3, built, tmp_path, ictal):
    path, remote = _publish_to_s3(built, ictal, "repair")
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    array = sorted((path / "arrays").iterdir())[0]
    key = f"results/repair/{path.name}/arrays/{array.name}"
    data = bytearray(fs.cat_file(key))
    data[200] ^= 0xFF  # same size: a size comparison cannot see it
    fs.pipe_file(key, bytes(data))
    trainer = _trainer(tmp_path, remote)
    res = ictal("stage", *trainer)
    assert res.returncode == 3 and "ictal publish --force" in res.stderr, res.stderr[-2000:]
    corpus, _ = built
    again = ictal("publish", *_builder(corpus, path, remote))
    assert again.returncode == 0 and "already published" in again.stdout  # same manifest
    fixed = ictal("publish", "--force", *_builder(corpus, path, remote))
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    res = ictal("stage", *trainer)  # the advice given above really repairs it
    assert res.returncode == 0, res.stderr[-2000:]
    (staged,) = _committed(tmp_path / "local-cache")
    assert _tree(staged) == _tree(path)


@pytest.mark.slow
def test_a_missing_bucket_or_a_down_host_is_said_as_such(s3, tmp_path, ictal):
    res = ictal("census", "s3://no-such-bucket/corpus")
    assert res.returncode == 3 and "bucket does not exist" in res.stderr, res.stderr
    assert "TUSZ" not in res.stderr and "Traceback" not in res.stderr
    res = ictal("build", "--set", "corpus.root=s3://no-such-bucket/corpus", "--set",
                f"cache.root={tmp_path / 'cache'}")  # fmt: skip
    assert res.returncode == 3 and "bucket does not exist" in res.stderr, res.stderr
    import socket

    with socket.socket() as sock:  # a port nothing listens on: the host is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = ictal_env({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "1",
                     "AWS_RETRY_MODE": "standard"})  # fmt: skip
    res = run_ictal("census", "s3://results/corpus", env=env)
    assert res.returncode == 3 and "Could not connect" in res.stderr, res.stderr
    assert "TUSZ" not in res.stderr and "Traceback" not in res.stderr


def test_staged_files_are_fsynced_before_the_commit(built, tmp_path, monkeypatch):
    from ictal.cache import remote as remote_mod
    from ictal.config_file import load_config
    from ictal.io import storage as storage_mod

    _, path = built
    share = tmp_path / "remote"
    shutil.copytree(path, share / path.name)
    synced: list[str] = []
    real = storage_mod.fsync_file
    monkeypatch.setattr(storage_mod, "fsync_file", lambda p: (synced.append(Path(p).name), real(p)))
    cfg = load_config(None, [f"corpus.root={tmp_path / 'none'}", f"cache.root={tmp_path / 'c'}",
                             f"cache.remote={share}"])  # fmt: skip
    remote_mod.stage(cfg)
    arrays = sorted(p.name for p in (path / "arrays").iterdir())
    fetched = {n.split(".part.tmp")[0].lstrip(".") for n in synced}
    assert set(arrays) <= fetched, "every fetched array is fsynced before it is renamed"


def test_the_copy_fallback_of_reuse_is_fsynced(tmp_path, monkeypatch):
    import errno

    from ictal.io import atomic

    src = tmp_path / "a.npy"
    src.write_bytes(b"x" * 1000)
    dst = tmp_path / "out" / "a.npy"
    dst.parent.mkdir()

    def no_link(a, b):  # type: ignore[no-untyped-def]
        raise OSError(errno.EXDEV, "cross-device link")

    synced: list[str] = []
    real = atomic.fsync_file
    monkeypatch.setattr(atomic.os, "link", no_link)
    monkeypatch.setattr(atomic, "fsync_file", lambda p: (synced.append(str(p)), real(p)))
    atomic.link_or_copy(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert len(synced) == 1 and synced[0].endswith(".tmp"), "the copy is synced before rename"
