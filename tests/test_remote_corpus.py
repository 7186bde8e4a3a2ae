"""Same code path everywhere: a corpus on an S3 API (moto's server on loopback) gives the same
census and the same cache bytes as the same corpus on local disk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import fsspec
import pytest

from ictal.corpus.synth import synthesize


def _arrays(cache: Path) -> dict[str, str]:
    (path,) = [p for p in cache.iterdir() if p.is_dir() and len(p.name) == 16]
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((path / "arrays").iterdir())
    }


@pytest.mark.slow
def test_s3_corpus_builds_the_same_bytes_as_local(s3, tmp_path, ictal):
    local = tmp_path / "corpus"
    truth = synthesize(local, patients=3, hours=0.3, seed=4)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("tusz")
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"tusz/corpus/{path.relative_to(local).as_posix()}")
    url = "s3://tusz/corpus"

    res = ictal("census", url, "--json", str(tmp_path / "remote.json"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert ictal("census", str(local), "--json", str(tmp_path / "local.json")).returncode == 0
    remote = json.loads((tmp_path / "remote.json").read_text())
    here = json.loads((tmp_path / "local.json").read_text())
    for key in ("files", "hours", "seizure_events", "patients", "vocabulary"):
        assert remote[key] == here[key], key
    assert sum(remote["files"].values()) == len(truth["files"])

    for name, root in (("local", str(local)), ("remote", url)):
        res = ictal("build", "--workers", "2", "--set", f"corpus.root={root}",
                    "--set", f"cache.root={tmp_path / name}")  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
    assert _arrays(tmp_path / "remote") == _arrays(tmp_path / "local")

    def hashes(cache: Path) -> dict[str, dict]:
        (path,) = [p for p in cache.iterdir() if p.is_dir() and len(p.name) == 16]
        recs = [json.loads(p.read_text()) for p in sorted((path / "records").iterdir())]
        return {r["id"]: r["source_sha256"] for r in recs if r["status"] == "done"}

    # the source files' sha256 (what lets a copied corpus be linked instead of rebuilt) are
    # the same whether the files were memory-mapped locally or downloaded once from S3
    remote_hashes = hashes(tmp_path / "remote")
    assert remote_hashes == hashes(tmp_path / "local") and remote_hashes
    rel = next(f["edf"] for f in truth["files"] if f["expected"] != "unusable")
    rid = Path(rel).stem
    assert remote_hashes[rid]["edf"] == hashlib.sha256((local / rel).read_bytes()).hexdigest()
