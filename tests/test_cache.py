"""The cache: byte-identical builds, resumable after SIGKILL, ledger of failures, new keys for
new configs, verification that catches damage, preflight that refuses unusable caches."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_ictal
from ictal.cache.preflight import preflight
from ictal.config_file import load_config
from ictal.corpus.annotations import format_csv_bi
from ictal.corpus.synth import synthesize
from ictal.errors import PreflightError


def _sets(corpus: Path, cache: Path, *extra: str) -> list[str]:
    out = []
    for s in (f"corpus.root={corpus}", f"cache.root={cache}", *extra):
        out += ["--set", s]
    return out


def _tree_digest(path: Path, skip: tuple[str, ...] = ("build.json",)) -> dict[str, str]:
    """sha256 of every file under a cache directory, by relative path (build info excluded)."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name not in skip and p.name != ".lock":
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _committed(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and len(p.name) == 16)


N_RECORDINGS = 12  # in the corpus below


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "corpus"
    truth = synthesize(root, patients=6, hours=1.0, seed=11)
    assert len(truth["files"]) == N_RECORDINGS
    return root


@pytest.fixture(scope="module")
def reference_build(corpus, tmp_path_factory) -> Path:
    """One uninterrupted build with 2 workers: the bytes every other build must equal."""
    cache = tmp_path_factory.mktemp("ref") / "cache"
    res = run_ictal("build", "--workers", "2", *_sets(corpus, cache))
    assert res.returncode == 0, res.stderr
    (path,) = _committed(cache)
    return path


@pytest.mark.slow
def test_build_summary_and_layout(reference_build):
    man = json.loads((reference_build / "manifest.json").read_text())
    assert man["totals"]["recordings"] == man["totals"]["planned"] == 12
    assert man["totals"]["failed"] == 0
    assert man["key"].startswith(reference_build.name)
    assert not list(reference_build.parent.glob("*.building-*")), "building dir left behind"
    table = json.loads((reference_build / "recordings.json").read_text())
    assert sum(len(r["seizures"]) for r in table) == man["totals"]["seizure_events"] > 0
    for rec in table:
        arr = np.load(reference_build / rec["array"], mmap_mode="r", allow_pickle=False)
        assert arr.shape == (rec["n_samples"], 19) and arr.dtype == np.float32


def test_one_worker_build_is_byte_identical(corpus, reference_build, tmp_path):
    cache = tmp_path / "cache"
    res = run_ictal("build", "--workers", "1", *_sets(corpus, cache))
    assert res.returncode == 0, res.stderr
    (path,) = _committed(cache)
    assert path.name == reference_build.name
    assert _tree_digest(path) == _tree_digest(reference_build)


def test_cache_holds_each_recording_once(reference_build):
    man = json.loads((reference_build / "manifest.json").read_text())
    raw = man["totals"]["samples"] * 19 * 4
    arrays = sum(p.stat().st_size for p in (reference_build / "arrays").iterdir())
    assert raw <= arrays <= raw * 1.02
    everything = sum(p.stat().st_size for p in reference_build.rglob("*") if p.is_file())
    assert everything <= raw * 1.05


def test_float16_cache_is_half_the_size(corpus, reference_build, tmp_path):
    cache = tmp_path / "cache"
    res = run_ictal("build", *_sets(corpus, cache, "signal.dtype=float16"))
    assert res.returncode == 0, res.stderr
    (path,) = _committed(cache)
    assert path.name != reference_build.name
    size16 = sum(p.stat().st_size for p in (path / "arrays").iterdir())
    size32 = sum(p.stat().st_size for p in (reference_build / "arrays").iterdir())
    assert 0.49 < size16 / size32 < 0.51


def test_rerun_of_a_committed_cache_does_nothing(corpus, tmp_path):
    cache = tmp_path / "cache"
    assert run_ictal("build", *_sets(corpus, cache)).returncode == 0
    (path,) = _committed(cache)
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    res = run_ictal("build", *_sets(corpus, cache))
    assert res.returncode == 0
    assert "already built" in res.stdout
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == before


BUILD_SCRIPT = """
import sys
from ictal.cache.build import build_cache
from ictal.config_file import load_config
cfg = load_config(None, sys.argv[1:])
build_cache(cfg, workers=1)
"""


def _committed_records(building: Path) -> dict[str, int]:
    """Completed ledger records by name with their mtimes; a torn `.tmp` from a kill is not one."""
    records = building / "records"
    if not records.exists():
        return {}
    return {
        p.name: p.stat().st_mtime_ns for p in records.glob("*.json") if not p.name.startswith(".")
    }


@pytest.mark.slow
def test_sigkill_and_resume_ends_identical(corpus, reference_build, tmp_path):
    cache = tmp_path / "cache"
    sets = [f"corpus.root={corpus}", f"cache.root={cache}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    rng = random.Random(5)
    kills = 0
    for _ in range(4):
        building = list(cache.glob("*.building-*")) if cache.exists() else []
        before = {}
        if building:
            before = _committed_records(building[0])
        proc = subprocess.Popen(
            [sys.executable, "-c", BUILD_SCRIPT, *sets],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Kill at a random moment: after a random number of recordings plus a random delay,
        # always leaving recordings to build (12 in the corpus) so every run is interrupted.
        target = min(len(before) + rng.randint(1, 2), N_RECORDINGS - 3)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            dirs = list(cache.glob("*.building-*")) if cache.exists() else []
            n = len(_committed_records(dirs[0])) if dirs else 0
            if n >= target:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its workers
            kills += 1
        proc.wait()
        building = list(cache.glob("*.building-*"))
        if building:
            after = _committed_records(building[0])
            for name, mtime in before.items():
                assert after.get(name) == mtime, f"completed recording {name} was redone"
    assert kills >= 3, "builds were not interrupted: the test proves nothing"
    res = run_ictal("build", "--workers", "1", *_sets(corpus, cache))
    assert res.returncode == 0, res.stderr
    (path,) = _committed(cache)
    assert _tree_digest(path) == _tree_digest(reference_build)
    assert not list(cache.glob("*.building-*"))


@pytest.fixture(scope="module")
def quirk_corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("quirks") / "corpus"
    truth = synthesize(root, patients=9, hours=0.5, seed=3, quirks=0.8)
    return root, truth


def test_quirk_corpus_builds_good_and_records_bad(quirk_corpus, tmp_path):
    corpus, truth = quirk_corpus
    cache = tmp_path / "cache"
    unusable = {f["edf"]: f["quirk"] for f in truth["files"] if f["expected"] == "unusable"}
    assert len(unusable) >= 7
    res = run_ictal("build", *_sets(corpus, cache, "cache.max_failed_fraction=0.9"))
    assert res.returncode == 4, res.stderr
    (path,) = _committed(cache)
    man = json.loads((path / "manifest.json").read_text())
    failed = {f["rel"]: f["reason"] for f in man["failed"]}
    assert set(failed) == set(unusable)
    for rel, reason in failed.items():
        assert rel.rsplit("/", 1)[-1].removesuffix(".edf") in reason, reason
    assert man["totals"]["recordings"] == len(truth["files"]) - len(unusable)
    assert man["repairs"].get("records_minus_one", 0) >= 1
    for rel in failed:
        assert rel in res.stdout.replace("\n", "") or rel.split("/")[-1] in res.stdout


def test_failure_budget_gives_exit_3(quirk_corpus, tmp_path):
    corpus, _ = quirk_corpus
    res = run_ictal("build", *_sets(corpus, tmp_path / "cache"))
    assert res.returncode == 3
    assert "max_failed_fraction" in res.stderr


@pytest.mark.slow
def test_resume_does_not_retry_known_bad_unless_asked(quirk_corpus, tmp_path):
    corpus, _ = quirk_corpus
    cache = tmp_path / "cache"
    sets = _sets(corpus, cache, "cache.max_failed_fraction=0.9")
    assert run_ictal("build", *sets).returncode == 4
    (path,) = _committed(cache)
    # Turn the committed cache back into an interrupted build: every record is in the ledger.
    building = cache / f"{path.name}.building-test"
    path.rename(building)
    (building / "manifest.json").unlink()
    records = building / "records"
    failed = [p for p in records.iterdir() if json.loads(p.read_text())["status"] == "failed"]
    stamp = {p.name: p.stat().st_mtime_ns for p in records.iterdir()}
    res = run_ictal("build", *sets)
    assert res.returncode == 4
    (path,) = _committed(cache)
    after = {p.name: p.stat().st_mtime_ns for p in (path / "records").iterdir()}
    assert after == stamp, "a rerun redid recordings that were already in the ledger"
    # Asked explicitly: failed recordings are tried again, done ones still are not.
    building = cache / f"{path.name}.building-test2"
    path.rename(building)
    (building / "manifest.json").unlink()
    res = run_ictal("build", "--retry-failed", *sets)
    assert res.returncode == 4
    (path,) = _committed(cache)
    after = {p.name: p.stat().st_mtime_ns for p in (path / "records").iterdir()}
    for p in failed:
        assert after[p.name] != stamp[p.name]
    done = set(stamp) - {p.name for p in failed}
    assert all(after[n] == stamp[n] for n in done)


@pytest.mark.slow
def test_semantic_change_builds_a_new_key_and_explain_names_it(corpus, reference_build, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(reference_build, cache / reference_build.name)
    old = _tree_digest(cache / reference_build.name)
    res = run_ictal("explain", *_sets(corpus, cache, "signal.notch=50"))
    assert res.returncode == 3
    assert "signal.notch" in res.stdout and "60.0" in res.stdout and "50.0" in res.stdout
    res = run_ictal("build", *_sets(corpus, cache, "signal.notch=50"))
    assert res.returncode == 0, res.stderr
    dirs = _committed(cache)
    assert len(dirs) == 2
    assert _tree_digest(cache / reference_build.name) == old, "old cache was touched"
    res = run_ictal("explain", *_sets(corpus, cache, "signal.notch=50"))
    assert res.returncode == 0 and "exists" in res.stdout
    # gc lists the old one, removes nothing without --yes, removes it with --yes.
    res = run_ictal("gc", *_sets(corpus, cache, "signal.notch=50"))
    assert res.returncode == 0 and reference_build.name in res.stdout
    assert len(_committed(cache)) == 2
    res = run_ictal("gc", "--yes", *_sets(corpus, cache, "signal.notch=50"))
    assert res.returncode == 0
    assert [p.name for p in _committed(cache)] != [reference_build.name]
    assert len(_committed(cache)) == 1


def _copy_cache(reference_build: Path, tmp_path: Path) -> tuple[Path, Path]:
    cache = tmp_path / "cache"
    shutil.copytree(reference_build, cache / reference_build.name)
    return cache, cache / reference_build.name


def test_verify_catches_deleted_and_truncated_arrays(corpus, reference_build, tmp_path):
    cache, path = _copy_cache(reference_build, tmp_path)
    assert run_ictal("verify", *_sets(corpus, cache)).returncode == 0
    arrays = sorted((path / "arrays").iterdir())
    arrays[0].unlink()
    with open(arrays[1], "r+b") as fh:
        fh.truncate(arrays[1].stat().st_size - 100)
    res = run_ictal("verify", *_sets(corpus, cache))
    assert res.returncode == 3
    assert arrays[0].name in res.stderr and "missing" in res.stderr
    assert arrays[1].name in res.stderr and "bytes" in res.stderr
    assert "fix:" in res.stderr


def test_verify_full_catches_a_flipped_byte(corpus, reference_build, tmp_path):
    cache, path = _copy_cache(reference_build, tmp_path)
    victim = sorted((path / "arrays").iterdir())[3]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    assert run_ictal("verify", *_sets(corpus, cache)).returncode == 0  # L0 cannot see it
    res = run_ictal("verify", "--full", *_sets(corpus, cache))
    assert res.returncode == 3
    assert victim.name in res.stderr and "hash" in res.stderr


def test_verify_without_cache_names_the_build_command(corpus, tmp_path):
    res = run_ictal("verify", *_sets(corpus, tmp_path / "nothing"))
    assert res.returncode == 3
    assert "ictal build" in res.stderr


def test_preflight_refuses_cache_without_training_seizures(tmp_path):
    corpus = tmp_path / "corpus"
    truth = synthesize(corpus, patients=4, hours=0.4, seed=2)
    for f in truth["files"]:
        if f["split"] == "train":
            bi = corpus / f["edf"].replace(".edf", ".csv_bi")
            bname = bi.name.removesuffix(".csv_bi")
            bi.write_text(format_csv_bi(bname, f["duration_s"], []))
    cfg = load_config(None, [f"corpus.root={corpus}", f"cache.root={tmp_path / 'cache'}"])
    from ictal.cache.build import build_cache

    assert build_cache(cfg, workers=1).ending.exit_code == 0
    with pytest.raises(PreflightError) as err:
        preflight(cfg, split="train")
    assert "no seizures in the train split" in str(err.value)
    assert "ictal census" in str(err.value)


def test_preflight_refuses_missing_and_stale_caches(corpus, reference_build, tmp_path):
    cache = tmp_path / "cache"
    cfg = load_config(None, [f"corpus.root={corpus}", f"cache.root={cache}"])
    with pytest.raises(PreflightError) as err:
        preflight(cfg, fix="ictal build -c my.yaml")
    assert "ictal build -c my.yaml" in str(err.value)
    # A cache of the same config built from another inventory: the corpus changed since.
    stale_corpus = tmp_path / "corpus2"
    shutil.copytree(corpus, stale_corpus)  # same names, sizes and mtimes: same inventory
    edf = sorted(stale_corpus.rglob("*.edf"))[0]
    os.utime(edf, (edf.stat().st_atime, edf.stat().st_mtime + 60))  # then one file changes
    cfg2 = load_config(None, [f"corpus.root={stale_corpus}", f"cache.root={cache}"])
    shutil.copytree(reference_build, cache / reference_build.name)
    ok = preflight(load_config(None, [f"corpus.root={corpus}", f"cache.root={cache}"]))
    assert ok.view.path.name == reference_build.name
    with pytest.raises(PreflightError) as err:
        preflight(cfg2)
    assert "corpus changed" in str(err.value)


def test_preflight_finds_a_staged_cache_when_the_corpus_is_unreachable(reference_build, tmp_path):
    cache, path = _copy_cache(reference_build, tmp_path)
    cfg = load_config(None, [f"corpus.root={tmp_path / 'gone'}", f"cache.root={cache}"])
    result = preflight(cfg)
    assert result.view.path == path
    assert not result.located.corpus_reachable


@pytest.mark.slow
def test_a_corpus_copied_without_timestamps_is_linked_not_rebuilt(
    corpus, reference_build, tmp_path
):
    copied = tmp_path / "copied"
    shutil.copytree(corpus, copied, copy_function=shutil.copyfile)  # like cp -r: new mtimes
    cache = tmp_path / "cache"
    shutil.copytree(reference_build, cache / reference_build.name)
    res = run_ictal("build", *_sets(copied, cache))
    assert res.returncode == 0, res.stderr
    assert "0 built, 12 reused" in res.stdout
    new = next(p for p in _committed(cache) if p.name != reference_build.name)
    donor = cache / reference_build.name / "arrays"
    assert all(
        p.stat().st_ino == (donor / p.name).stat().st_ino for p in (new / "arrays").iterdir()
    )
    fresh = tmp_path / "fresh"
    assert run_ictal("build", *_sets(copied, fresh)).returncode == 0
    (fresh_dir,) = _committed(fresh)
    assert _tree_digest(new) == _tree_digest(fresh_dir)  # as if built from the copy


@pytest.mark.slow
def test_new_key_reuses_unchanged_recordings_byte_identically(corpus, reference_build, tmp_path):
    edited = tmp_path / "corpus"
    shutil.copytree(corpus, edited)  # same names, sizes and mtimes: same key as the reference
    cache = tmp_path / "cache"
    shutil.copytree(reference_build, cache / reference_build.name)
    victim = sorted(edited.rglob("*.csv_bi"))[0]
    text = victim.read_text()
    assert text.count("bckg,1.0000") >= 1
    # same size, other bytes (a new mtime too): a new inventory and key, and a rebuild
    victim.write_text(text.replace("bckg,1.0000", "bckg,0.9999", 1))
    touched = sorted(edited.rglob("*.edf"))[-1]
    touched.write_bytes(touched.read_bytes())  # same bytes, new mtime: linked by content
    res = run_ictal("build", *_sets(edited, cache))
    assert res.returncode == 0, res.stderr
    assert "1 built, 11 reused" in res.stdout
    new = next(p for p in _committed(cache) if p.name != reference_build.name)
    fresh = tmp_path / "fresh"
    assert run_ictal("build", *_sets(edited, fresh)).returncode == 0
    (fresh_dir,) = _committed(fresh)
    assert fresh_dir.name == new.name
    assert _tree_digest(new) == _tree_digest(fresh_dir)
    donor = cache / reference_build.name / "arrays"
    shared = [p for p in (new / "arrays").iterdir()
              if p.stat().st_ino == (donor / p.name).stat().st_ino]  # fmt: skip
    assert len(shared) == 11  # hard links: no second copy on disk
    # gc of the old cache reports what removing it frees: not the shared arrays
    from ictal.cache.gc import plan_gc

    (old,) = plan_gc(load_config(None, [f"corpus.root={edited}", f"cache.root={cache}"])).removals
    assert old.path.name == reference_build.name
    total = sum(p.stat().st_size for p in donor.iterdir())
    assert 0 < old.bytes < total / 6
