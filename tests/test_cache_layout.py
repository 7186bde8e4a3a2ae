"""The cache root names every directory and lock under cache.root in one place; results say
how their work ended (``Ending``) and the documented exit code follows from it; a remote file
is fetched atomically."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from ictal.cache.build import BuildReport
from ictal.cache.layout import CacheRoot, key16
from ictal.config_file import load_config
from ictal.corpus.census import Census
from ictal.errors import Ending, ExitCode, PreflightError
from ictal.io.lock import is_locked
from ictal.io.storage import fetch_file

KEY = "0123456789abcdef" + "f" * 48


def test_the_cache_root_is_built_once_from_the_config(tmp_path: Path):
    cfg = load_config(None, [f"cache.root={tmp_path / 'c'}"])
    root = CacheRoot.of(cfg)
    assert root.path == tmp_path / "c"
    assert root.committed(KEY) == tmp_path / "c" / key16(KEY)
    assert root.building(KEY, "run1") == tmp_path / "c" / f"{key16(KEY)}.building-run1"
    assert root.staging(KEY) == tmp_path / "c" / f"{key16(KEY)}.staging"
    assert root.key_lock_path(KEY) == tmp_path / "c" / f"{key16(KEY)}.lock"
    assert root.entries() == [] and root.builds_of(KEY) == []  # missing root: nothing there
    assert root.writable() is root and root.path.is_dir()


def test_entries_and_builds_of_a_key(tmp_path: Path):
    root = CacheRoot(tmp_path)
    for name in ("0123456789abcdef", "0123456789abcdef.building-b", "0123456789abcdef.building-a",
                 "0123456789abcdef.staging", "fedcba9876543210.building-a", "notes"):  # fmt: skip
        (tmp_path / name).mkdir()
    (tmp_path / "aaaaaaaaaaaaaaaa").symlink_to(tmp_path / "notes")
    names = [e.path.name for e in root.entries()]
    assert "aaaaaaaaaaaaaaaa" not in names and "notes" not in names
    assert "aaaaaaaaaaaaaaaa" in [e.path.name for e in root.entries(links=True)]
    assert [e.run for e in root.builds_of(KEY)] == ["a", "b"]  # newest run last; no staging


def test_the_key_lock_refuses_a_second_holder_naming_the_cache(tmp_path: Path):
    root = CacheRoot(tmp_path)
    with root.key_lock(KEY):
        assert is_locked(root.key_lock_path(KEY))
        with pytest.raises(PreflightError, match=f"the cache {key16(KEY)} under"):
            root.key_lock(KEY).acquire()
    assert not is_locked(root.key_lock_path(KEY))


@pytest.mark.parametrize(
    ("failed", "ending", "code"),
    [(0, Ending.DONE, 0), (5, Ending.PARTIAL, 4), (6, Ending.REFUSED, 3)],
)
def test_a_build_report_ends_by_its_failure_budget(failed: int, ending: Ending, code: int):
    report = BuildReport(key=KEY, path=Path("x"), planned=100, max_failed_fraction=0.05)
    report.failed = [(f"f{i}", "bad") for i in range(failed)]
    assert report.ending is ending and ending.exit_code == code


def test_a_census_ends_partial_on_unusable_files_or_shared_patients():
    clean = Census(root="r", window_s=60.0, label_source="csv_bi")
    assert clean.ending is Ending.DONE and clean.ending.exit_code == ExitCode.OK
    unusable = Census(root="r", window_s=60.0, label_source="csv_bi", unusable=[("a", "bad")])
    shared = Census(root="r", window_s=60.0, label_source="csv_bi",
                    patient_overlap={"p": ["train", "dev"]})  # fmt: skip
    assert unusable.ending is shared.ending is Ending.PARTIAL
    assert shared.ending.exit_code == ExitCode.PARTIAL


def test_fetch_file_lands_whole_under_its_name(tmp_path: Path):
    src = tmp_path / "remote" / "a.bin"
    src.parent.mkdir()
    src.write_bytes(os.urandom(4096))
    fs = fsspec.filesystem("file")
    local = tmp_path / "local" / "deep" / "a.bin"
    fetch_file(fs, str(src), local)
    assert local.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in local.parent.iterdir()) == ["a.bin"]  # no temp left
    src.write_bytes(b"new")
    fetch_file(fs, str(src), local)  # replaces the old copy
    assert local.read_bytes() == b"new"
