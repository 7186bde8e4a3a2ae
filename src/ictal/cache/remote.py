"""Publish a committed cache to an fsspec URL, and stage a published cache onto local disk.

A cache is built once, where the corpus and the cores are, then published; every machine
that trains stages it: the same directory byte for byte, checked with content hashes (L1)
before anything reads it. Both directions resume where they stopped and commit last: a
published cache exists when its ``manifest.json`` is there (uploaded last), a staged one
when ``<key16>.staging`` is renamed to ``<key16>``. Neither ever creates a bucket.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from ictal.cache import layout
from ictal.cache.ledger import BuildLock
from ictal.cache.locate import corpus_digest, locate
from ictal.cache.verify import format_problems, verify_l0, verify_l1
from ictal.config import PREPROCESSING_VERSION, Config, cache_key, diff_semantic
from ictal.errors import IctalError, PreflightError, UsageError
from ictal.io.atomic import atomic_write_bytes, fsync_dir
from ictal.io.sink import files_to_copy, make_dirs, open_url
from ictal.ui import log, progress

_KEY16 = re.compile(r"^[0-9a-f]{16}")


@dataclass
class Transfer:
    """What publish or stage did."""

    key16: str
    local: Path
    remote: str
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    already: bool = False


@contextlib.contextmanager
def _storage(url: str, doing: str) -> Iterator[None]:
    """Storage failures (no bucket, no credentials, network) as a refusal naming the URL;
    what was copied stays, and a rerun continues from it."""
    try:
        yield
    except IctalError:
        raise
    except Exception as exc:  # fsspec backends raise their own types (botocore, aiohttp...)
        raise PreflightError(
            f"{doing} {url} failed: {type(exc).__name__}: {exc}",
            "check cache.remote and its credentials (environment variables), then run the "
            "same command again: it continues where it stopped",
        ) from exc


def _url(cfg: Config, url: str | None, flag: str) -> str:
    url = url or cfg.cache.remote
    if not url:
        raise UsageError(f"no remote cache location: pass {flag} URL or set cache.remote")
    return url.rstrip("/")


def _remote_sizes(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, int]:
    """Relative path -> size of every file under ``root`` (one listing, not a call per file)."""
    if not fs.exists(root):
        return {}
    found = fs.find(root, detail=True)
    return {name[len(root) + 1 :]: int(info.get("size") or 0) for name, info in found.items()}


def publish(cfg: Config, url: str | None = None, *, workers: int = 4) -> Transfer:
    """Upload this config's committed cache to ``<url>/<key16>/``, manifest last."""
    url = _url(cfg, url, "--to")
    located = locate(cfg)
    if not located.committed or located.path is None or located.key is None:
        raise PreflightError(
            f"no committed cache for this config under {cfg.cache.root} to publish",
            "run `ictal build` first",
        )
    path, k16 = located.path, layout.key16(located.key)
    fs, root = open_url(url)
    dest = f"{root}/{k16}"
    manifest = (path / layout.MANIFEST).read_bytes()
    result = Transfer(k16, path, f"{url}/{k16}")
    with _storage(url, "reading"):
        published = fs.exists(f"{dest}/{layout.MANIFEST}")
        same = published and fs.cat_file(f"{dest}/{layout.MANIFEST}") == manifest
    if published:
        if same:
            result.already = True
            return result
        raise PreflightError(
            f"{url}/{k16} holds another cache under this key (its manifest differs)",
            f"remove {url}/{k16} if it is a broken copy, then publish again",
        )
    with progress("verify", total=1) as tick:
        problems = verify_l0(path, cfg, located.key) or verify_l1(path, workers=workers)
        tick.advance(1)
    if problems:
        first = format_problems(problems)[0]
        raise PreflightError(
            f"{path} fails verification, it is not published: {first}",
            "run `ictal verify --full` and rebuild what it names",
        )
    files = [f for f in files_to_copy(path) if f != path / layout.MANIFEST]  # manifest last
    with _storage(url, "publishing to"), progress("publish", total=len(files) + 1) as tick:
        there = _remote_sizes(fs, dest)
        make_dirs(fs, dest)
        for f in files:
            rel = f.relative_to(path).as_posix()
            size = f.stat().st_size
            if there.get(rel) == size:  # uploaded by an interrupted publish
                result.skipped += 1
            else:
                make_dirs(fs, f"{dest}/{rel}".rsplit("/", 1)[0])
                fs.put_file(str(f), f"{dest}/{rel}")
                result.files += 1
                result.bytes += size
            tick.advance(1)
        fs.pipe_file(f"{dest}/{layout.MANIFEST}", manifest)  # the commit: last
        result.files += 1
        tick.advance(1)
    log.info(
        f"published {path} to {result.remote}: {result.files} files, "
        f"{result.bytes / 1e6:.1f} MB ({result.skipped} already there)"
    )
    return result


def _published(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, dict[str, Any]]:
    """key16 -> manifest of every published (committed) cache under ``root``."""
    out = {}
    for name in sorted(fs.glob(f"{root}/*/{layout.MANIFEST}")):
        k16 = name.rsplit("/", 2)[-2]
        if not _KEY16.fullmatch(k16):
            continue
        try:
            out[k16] = json.loads(fs.cat_file(name))
        except (ValueError, OSError):
            continue
    return out


def _same_config(cfg: Config, fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """Keys of the published caches of this semantic config and preprocessing version."""
    semantic = cfg.semantic()
    return [
        k
        for k, man in _published(fs, root).items()
        if man.get("preprocessing_version") == PREPROCESSING_VERSION
        and not diff_semantic(man.get("semantic", {}), semantic)
    ]


def _choose_key(cfg: Config, fs: fsspec.AbstractFileSystem, root: str, url: str) -> str:
    """The published cache for this config: by exact key when the corpus is reachable, by
    semantic config and preprocessing version when it is not (a training machine)."""
    found = corpus_digest(cfg)
    if found is not None:
        return layout.key16(cache_key(cfg, found[0]))
    matches = _same_config(cfg, fs, root)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PreflightError(
            f"no cache published at {url} matches this config (and the corpus "
            f"{cfg.corpus.root} is not reachable to compute its key)",
            "run `ictal publish` where the cache was built, or pass --key",
        )
    raise PreflightError(
        f"{len(matches)} caches published at {url} match this config ({', '.join(matches)}) "
        "and the corpus is not reachable to tell which is current",
        "pass --key with the one to stage",
    )


def stage(
    cfg: Config, url: str | None = None, *, key: str | None = None, workers: int = 4
) -> Transfer:
    """Download a published cache into ``cache.root``, verify it (L1), then commit it."""
    url = _url(cfg, url, "--from")
    if key is not None and not _KEY16.match(key):
        raise UsageError(f"--key {key!r} is not a cache key (16 or more hex digits)")
    fs, root = open_url(url)
    k16 = key[:16] if key is not None else _choose_key(cfg, fs, root, url)
    cache_root = Path(cfg.cache.root)
    final = cache_root / k16
    result = Transfer(k16, final, f"{url}/{k16}")
    if (final / layout.MANIFEST).is_file() and not verify_l0(final):
        result.already = True
        return result
    src = f"{root}/{k16}"
    with _storage(url, "reading"):
        published = fs.exists(f"{src}/{layout.MANIFEST}")
    if not published:
        with _storage(url, "listing"):
            others = [k for k in _same_config(cfg, fs, root) if k != k16]
        if key is None and others:  # the key came from this machine's corpus inventory
            raise PreflightError(
                f"no cache of this config built from the corpus at {cfg.corpus.root} is "
                f"published at {url}; published from another corpus inventory: "
                f"{', '.join(others)}",
                "publish the cache built from this corpus, or stage one of those with --key "
                "on a machine where corpus.root is not reachable (preflight checks a cache "
                "against a reachable corpus and would refuse it here)",
            )
        raise PreflightError(
            f"{url}/{k16} has no manifest.json: that cache is not published (or its publish "
            "did not finish)",
            "run `ictal publish` where the cache was built",
        )
    if final.exists():
        first = format_problems(verify_l0(final))[0]
        raise PreflightError(
            f"{final} exists but fails verification: {first}",
            "move it aside, then stage again",
        )
    staging = cache_root / f"{k16}.staging"
    staging.mkdir(parents=True, exist_ok=True)
    with BuildLock(staging):
        with _storage(url, "listing"):
            sizes = _remote_sizes(fs, src)
            manifest = fs.cat_file(f"{src}/{layout.MANIFEST}")
        names = sorted(rel for rel in sizes if rel != layout.MANIFEST)
        with _storage(url, "staging from"), progress("stage", total=len(names)) as tick:
            for rel in names:
                local = staging / rel
                if local.is_file() and local.stat().st_size == sizes[rel]:
                    result.skipped += 1  # fetched by an interrupted stage (L1 checks it)
                else:
                    local.parent.mkdir(parents=True, exist_ok=True)
                    tmp = local.with_name(f".{local.name}.part.tmp")
                    fs.get_file(f"{src}/{rel}", str(tmp))
                    os.replace(tmp, local)
                    result.files += 1
                    result.bytes += sizes[rel]
                tick.advance(1)
        atomic_write_bytes(staging / layout.MANIFEST, manifest)
        problems = verify_l0(staging) or verify_l1(staging, workers=workers)
        if problems:
            for p in problems:  # a damaged file of the staging copy is fetched again next time
                bad = Path(p.path)
                if bad.is_file() and staging in bad.parents:
                    bad.unlink()
            (staging / layout.MANIFEST).unlink(missing_ok=True)
            raise PreflightError(
                f"the staged copy of {url}/{k16} fails verification "
                f"({len(problems)} problem(s)): {format_problems(problems)[0]}",
                "run `ictal stage` again (the files that failed are fetched again); if it "
                "fails again, the published copy is damaged: publish it again",
            )
        os.rename(staging, final)
        fsync_dir(cache_root)
    result.local = final
    log.info(
        f"staged {url}/{k16} into {final}: {result.files} files, {result.bytes / 1e6:.1f} MB "
        f"({result.skipped} already here), verified (L0 + L1)"
    )
    return result
