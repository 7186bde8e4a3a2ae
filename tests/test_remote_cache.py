"""Publish and stage: a cache built on one machine reaches another byte for byte through an
S3 API (moto's server on loopback) or a shared path; interrupted transfers resume, damaged
copies are caught by content hashes, and nothing half-copied is ever used."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest

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
from ictal.config import load_config
remote.stage(load_config(None, sys.argv[1:]))
"""


@pytest.mark.slow
def test_stage_killed_with_sigkill_resumes_and_never_commits_half(built, tmp_path, ictal):
    corpus, path = built
    remote = tmp_path / "remote"
    remote.mkdir()
    assert ictal("publish", *_builder(corpus, path, str(remote))).returncode == 0
    sets = [f"corpus.root={tmp_path / 'no-corpus-here'}", f"cache.root={tmp_path / 'local'}",
            f"cache.remote={remote}"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    staging = tmp_path / "local" / f"{path.name}.staging"
    kills = 0
    for delay in (0.0, 0.05, 0.15):
        proc = subprocess.Popen([sys.executable, "-c", STAGE, *sets], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if staging.exists() and any((staging / "arrays").glob("*.npy")):
                break
            time.sleep(0.005)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        for p in _committed(tmp_path / "local"):  # committed means complete, never half
            assert _tree(p) == _tree(path)
        if _committed(tmp_path / "local"):
            break
    assert kills >= 1, "the stage was never interrupted: the test proves nothing"
    res = ictal("stage", *[a for s in sets for a in ("--set", s)])
    assert res.returncode == 0, res.stderr[-2000:]
    (staged,) = _committed(tmp_path / "local")
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
