"""Cache verification: L0 (structure and sizes, milliseconds) and L1 (content hashes).

Every problem names the file and the command that fixes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal.cache import layout
from ictal.cache.manifest import ManifestError, open_cache
from ictal.config import PREPROCESSING_VERSION, Config, diff_semantic
from ictal.io.digest import file_sha256


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a cache: which file, what, and how to fix it."""

    path: str
    what: str
    fix: str


def _rebuild_fix(path: Path) -> str:
    return f"move {path} aside (or delete it), then run `ictal build` to build it again"


def verify_l0(path: Path, cfg: Config | None = None, key: str | None = None) -> list[Problem]:
    """Manifest parses, versions supported, key and config match, arrays exist with exact sizes."""
    fix = _rebuild_fix(path)
    try:
        view = open_cache(path)
    except ManifestError as exc:
        where, _, what = str(exc).partition(": ")
        return [Problem(where or str(path / layout.MANIFEST), what or str(exc), fix)]
    man = view.manifest
    problems: list[Problem] = []
    mpath = str(path / layout.MANIFEST)
    if man.get("preprocessing_version") != PREPROCESSING_VERSION:
        problems.append(
            Problem(
                mpath,
                f"built by preprocessing {man.get('preprocessing_version')}, this ictal is "
                f"{PREPROCESSING_VERSION} (stale)",
                "run `ictal build` (a new key directory is built; the old one stays)",
            )
        )
    if key is not None and man.get("key") != key:
        problems.append(Problem(mpath, f"key {man.get('key')} is not {key}", fix))
    if key is not None and path.name != layout.key16(key):
        problems.append(Problem(str(path), f"directory name is not {layout.key16(key)}", fix))
    if cfg is not None:
        diffs = diff_semantic(man.get("semantic", {}), cfg.semantic())
        for field, was, now in diffs:
            problems.append(
                Problem(mpath, f"built with {field}={was!r}, config says {now!r}", "ictal build")
            )
    totals = man.get("totals", {})
    if totals.get("recordings") != len(view.recordings):
        problems.append(
            Problem(
                mpath,
                f"totals say {totals.get('recordings')} recordings, table has "
                f"{len(view.recordings)}",
                fix,
            )
        )
    for rec in view.recordings:
        array = view.array_path(rec)
        try:
            size = array.stat().st_size
        except FileNotFoundError:
            problems.append(Problem(str(array), "array file is missing", fix))
            continue
        if size != rec["bytes"]:
            problems.append(
                Problem(str(array), f"array has {size} bytes, expected {rec['bytes']}", fix)
            )
    return problems


def verify_l1(path: Path, workers: int = 4, progress: Any = None) -> list[Problem]:
    """Content hashes of every array against the table (hashlib releases the GIL: threads)."""
    view = open_cache(path)
    fix = _rebuild_fix(path)

    def check(rec: dict[str, Any]) -> Problem | None:
        array = view.array_path(rec)
        try:
            digest = file_sha256(array)
        except FileNotFoundError:
            return Problem(str(array), "array file is missing", fix)
        if digest != rec["sha256"]:
            return Problem(str(array), "content hash differs from the manifest (corrupt)", fix)
        return None

    problems: list[Problem] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for p in pool.map(check, view.recordings):
            if progress is not None:
                progress.advance(1)
            if p is not None:
                problems.append(p)
    return problems


def format_problems(problems: Iterable[Problem]) -> list[str]:
    """Human lines: path, what is wrong, the fix."""
    return [f"{p.path}: {p.what}\n  fix: {p.fix}" for p in problems]
