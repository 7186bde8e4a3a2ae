"""Layout parsing, sorting and the inventory digest, on a local path and fsspec URLs."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from ictal.corpus.discovery import open_fs, scan
from ictal.errors import UsageError

FILES = [
    "edf/train/aaaaaaab/s002_2004_02_02/02_tcp_le/aaaaaaab_s002_t001.edf",
    "edf/train/aaaaaaab/s002_2004_02_02/02_tcp_le/aaaaaaab_s002_t000.edf",
    "edf/dev/bbbbbbbb/s001_2010_05_06/01_tcp_ar/bbbbbbbb_s001_t000.edf",
    "edf/eval/cccccccc/s010_2012_01_01/03_tcp_ar_a/cccccccc_s010_t003.edf",
]
STRAYS = [
    "edf/train/aaaaaaab/s002_2004_02_02/02_tcp_le/notes.edf",  # bad file name
    "edf/test/dddddddd/s001_2010_05_06/01_tcp_ar/dddddddd_s001_t000.edf",  # unknown split
    "edf/dev/bbbbbbbb/s001_2010_05_06/01_tcp_ar/cccccccc_s001_t000.edf",  # patient mismatch
]


def _make(fs: fsspec.AbstractFileSystem, root: str) -> None:
    for rel in FILES + STRAYS:
        fs.makedirs(f"{root}/{rel.rsplit('/', 1)[0]}", exist_ok=True)
        fs.pipe_file(f"{root}/{rel}", b"x" * 10)
        if rel in FILES:
            fs.pipe_file(f"{root}/{rel[:-4]}.csv_bi", b"y")
    fs.pipe_file(f"{root}/README.txt", b"hello")


@pytest.fixture(params=["local", "file", "memory"])
def corpus(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        root = f"memory://corpus-{tmp_path.name}"
    elif request.param == "file":
        root = f"file://{tmp_path}/c"
    else:
        root = str(tmp_path / "c")
    fs, base = open_fs(root)
    _make(fs, base)
    return root


def scan_refs(root: str) -> list:
    return scan(root).refs


def test_layout_parsing_and_sorting(corpus: str) -> None:
    found = scan(corpus)
    assert [r.rel for r in found.refs] == sorted(FILES)
    assert sorted(rel for rel, _ in found.problems) == sorted(STRAYS)
    ref = next(r for r in found.refs if r.split == "eval")
    assert (ref.patient, ref.session, ref.token, ref.montage, ref.id) == (
        "cccccccc",
        "s010_2012_01_01",
        "t003",
        "03_tcp_ar_a",
        "cccccccc_s010_t003",
    )
    assert ref.size == 10
    assert ref.sidecar(".csv_bi").endswith("cccccccc_s010_t003.csv_bi")
    assert scan_refs(corpus) == found.refs
    assert len({r.id for r in found.refs}) == len(FILES)


def test_empty_or_missing_root(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert scan_refs(str(tmp_path / "empty")) == []
    with pytest.raises(UsageError, match=r"corpus .*nothing does not exist"):
        scan_refs(str(tmp_path / "nothing"))  # a missing root is said, not an empty corpus


def test_inventory_digest_stable_and_sensitive(corpus: str) -> None:
    refs = scan_refs(corpus)
    first = scan(corpus).digest(refs)
    assert first == scan(corpus).digest(refs)
    assert len(first) == 64
    fs, base = open_fs(corpus)
    # A file outside the inventory (stray, README) does not change the digest of refs.
    fs.pipe_file(f"{base}/README.txt", b"changed")
    assert scan(corpus).digest(refs) == first
    # A sidecar changing size does.
    fs.pipe_file(f"{base}/{refs[0].sidecar('.csv_bi')}", b"yy")
    assert scan(corpus).digest(refs) != first
    second = scan(corpus).digest(refs)
    fs.pipe_file(f"{base}/{refs[1].rel}", b"x" * 11)
    assert scan(corpus).digest(refs) != second


def test_digest_independent_of_how_the_root_is_named(tmp_path: Path) -> None:
    fs, base = open_fs(str(tmp_path / "c"))
    _make(fs, base)
    plain = scan(str(tmp_path / "c")).digest(scan_refs(str(tmp_path / "c")))
    url = f"file://{tmp_path}/c/"
    assert scan(url).digest(scan_refs(url)) == plain
