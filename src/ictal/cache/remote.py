"""Publish a committed cache to an fsspec URL, and stage a published cache onto local disk.

A cache is built once, where the corpus and the cores are, then published; every machine
that trains stages it: the same directory byte for byte, checked with content hashes (L1)
before anything reads it. Both directions resume where they stopped and commit last: a
published cache exists when its ``manifest.json`` is there (uploaded last), a staged one
when ``<key16>.staging`` is renamed to ``<key16>``. Neither ever creates a bucket.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from ictal.cache import layout
from ictal.cache.ledger import build_lock
from ictal.cache.locate import corpus_digest, locate
from ictal.cache.manifest import matches
from ictal.cache.verify import format_problems, verify_l0, verify_l1
from ictal.config import Config, cache_key
from ictal.errors import PreflightError, UnsafePathError, UsageError
from ictal.io.atomic import atomic_write_bytes, atomic_write_json, fsync_dir
from ictal.io.paths import contained
from ictal.io.redact import redact
from ictal.io.storage import fetch_file, files_to_copy, make_dirs, open_url, storage_errors
from ictal.io.untrusted import MAX_JSON_BYTES, loads_json
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


_RERUN = (
    "check cache.remote and its credentials (environment variables), then run the same "
    "command again: it continues where it stopped"
)


def _storage(url: str, doing: str):  # type: ignore[no-untyped-def]
    """Storage failures (no bucket, no credentials, network) as a refusal naming the URL;
    what was copied stays, and a rerun continues from it."""
    return storage_errors(url, doing, _RERUN)


def _url(cfg: Config, url: str | None, flag: str) -> str:
    url = url or cfg.cache.remote
    if not url:
        raise UsageError(f"no remote cache location: pass {flag} URL or set cache.remote")
    return url.rstrip("/")


def _remote_sizes(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, int]:
    """Relative path -> size of every file under ``root`` (one listing, not a call per file).
    Names come from the remote listing as they are: callers check them before any use."""
    if not fs.exists(root):
        return {}
    found = fs.find(root, detail=True)
    prefix = root.rstrip("/") + "/"
    out = {}
    for name, info in found.items():
        if info.get("type") == "directory":
            continue
        rel = name[len(prefix) :] if name.startswith(prefix) else name
        out[rel] = int(info.get("size") or 0)
    return out


def publish(
    cfg: Config, url: str | None = None, *, workers: int = 4, force: bool = False
) -> Transfer:
    """Upload this config's committed cache to ``<url>/<key16>/``, manifest last. ``force``
    repairs a damaged or foreign remote copy: its manifest is removed first (the copy stops
    being published), every file is uploaded again, and the manifest goes last."""
    url = _url(cfg, url, "--to")
    located = locate(cfg)
    if not located.committed or located.path is None or located.key is None:
        raise PreflightError(
            f"no committed cache for this config under {cfg.cache.root} to publish",
            "run `ictal build` first",
        )
    path, k16 = located.path, layout.key16(located.key)
    fs, root = open_url(url, "cache.remote")
    dest = f"{root}/{k16}"
    manifest = (path / layout.MANIFEST).read_bytes()
    result = Transfer(k16, path, redact(f"{url}/{k16}"))
    with _storage(url, "reading"):
        published = fs.exists(f"{dest}/{layout.MANIFEST}")
        same = published and fs.cat_file(f"{dest}/{layout.MANIFEST}") == manifest
    if published and not force:
        if same:
            result.already = True
            return result
        raise PreflightError(
            f"{result.remote} holds another cache under this key (its manifest differs)",
            "if it is a broken copy, replace it with `ictal publish --force`",
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
    files = [
        f for f in files_to_copy(path, (layout.LOCK,)) if f != path / layout.MANIFEST
    ]  # manifest last
    with _storage(url, "publishing to"), progress("publish", total=len(files) + 1) as tick:
        if force and published:
            fs.rm_file(f"{dest}/{layout.MANIFEST}")  # unpublished until the new manifest lands
        there = {} if force else _remote_sizes(fs, dest)
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
        try:  # a remote manifest is untrusted: bounded, nesting and numbers checked
            data = fs.cat_file(name, start=0, end=MAX_JSON_BYTES + 1)
            if len(data) <= MAX_JSON_BYTES:
                out[k16] = loads_json(data, name)
        except (ValueError, OSError):  # UnreadableInput is a ValueError
            continue
    return out


def _same_config(cfg: Config, fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """Keys of the published caches of this semantic config and preprocessing version."""
    return [
        k for k, man in _published(fs, root).items() if isinstance(man, dict) and matches(man, cfg)
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
            f"no cache published at {redact(url)} matches this config (and the corpus "
            f"{cfg.corpus.root} is not reachable to compute its key)",
            "run `ictal publish` where the cache was built, or pass --key",
        )
    raise PreflightError(
        f"{len(matches)} caches published at {redact(url)} match this config "
        f"({', '.join(matches)}) and the corpus is not reachable to tell which is current",
        "pass --key with the one to stage",
    )


def published_key(cfg: Config, url: str | None = None, key: str | None = None) -> str:
    """The key16 of the published cache that `stage` would fetch for this config (``key``
    when given); a refusal when there is none, several, or the remote cannot be listed."""
    url = _url(cfg, url, "--from")
    if key is not None and not _KEY16.match(key):
        raise UsageError(f"--key {key!r} is not a cache key (16 or more hex digits)")
    fs, root = open_url(url, "cache.remote")
    with _storage(url, "listing"):
        return key[:16] if key is not None else _choose_key(cfg, fs, root, url)


# The files of a committed cache that stage fetches; anything else in a listing is ignored.
_CACHE_FILE = re.compile(
    r"^(?:recordings\.json|build\.json|plan\.json"
    r"|arrays/[A-Za-z0-9][A-Za-z0-9_.+-]*\.npy|records/[A-Za-z0-9][A-Za-z0-9_.+-]*\.json)$"
)


def _stage_names(sizes: dict[str, int], staging: Path, src: str) -> list[str]:
    """The cache files to fetch from a remote listing. Every name is untrusted: one that is
    absolute, climbs with '..' or lands outside the staging directory is refused (exit 3,
    naming it); a harmless name that is not part of a cache is skipped with a warning."""
    names, ignored = [], []
    for rel in sorted(sizes):
        if rel == layout.MANIFEST:
            continue
        contained(staging, rel, f"remote object in {redact(src)}")
        if _CACHE_FILE.match(rel) and ".." not in rel:
            names.append(rel)
        else:
            ignored.append(rel)
    if ignored:
        log.warning(
            f"{len(ignored)} object(s) under {redact(src)} are not part of a cache and are not "
            f"staged: {', '.join(ignored[:5])}" + (" ..." if len(ignored) > 5 else "")
        )
    return names


def stage(
    cfg: Config, url: str | None = None, *, key: str | None = None, workers: int = 4
) -> Transfer:
    """Download a published cache into ``cache.root``, verify it (L1), then commit it."""
    url = _url(cfg, url, "--from")
    fs, root = open_url(url, "cache.remote")
    k16 = published_key(cfg, url, key)
    cache_root = layout.CacheRoot.of(cfg).writable()
    final = cache_root.committed(k16)
    result = Transfer(k16, final, redact(f"{url}/{k16}"))
    with cache_root.key_lock(k16):
        if (final / layout.MANIFEST).is_file() and not verify_l0(final):
            result.already = True
            return result
        src = f"{root}/{k16}"
        _check_published(cfg, fs, root, src, url, k16, key)
        if final.exists() or final.is_symlink():
            problems = verify_l0(final)
            first = format_problems(problems)[0] if problems else "it is not a directory"
            raise PreflightError(
                f"{final} exists but fails verification: {first}",
                "move it aside, then stage again",
            )
        staging = cache_root.staging(k16)
        if staging.is_symlink():
            raise UnsafePathError(f"{staging} is a symbolic link", "remove it, then stage again")
        staging.mkdir(parents=True, exist_ok=True)
        with build_lock(staging):
            _fetch_and_commit(fs, src, staging, final, cache_root.path, url, k16, workers, result)
    result.local = final
    log.info(
        f"staged {result.remote} into {final}: {result.files} files, "
        f"{result.bytes / 1e6:.1f} MB ({result.skipped} already here), verified (L0 + L1)"
    )
    return result


def _check_published(
    cfg: Config,
    fs: fsspec.AbstractFileSystem,
    root: str,
    src: str,
    url: str,
    k16: str,
    key: str | None,
) -> None:
    """Refuse, naming the fix, when the wanted cache has no manifest at the remote."""
    with _storage(url, "reading"):
        published = fs.exists(f"{src}/{layout.MANIFEST}")
    if published:
        return
    with _storage(url, "listing"):
        others = [k for k in _same_config(cfg, fs, root) if k != k16]
    if key is None and others:  # the key came from this machine's corpus inventory
        raise PreflightError(
            f"no cache of this config built from the corpus at {cfg.corpus.root} is "
            f"published at {redact(url)}; published from another corpus inventory: "
            f"{', '.join(others)}",
            "publish the cache built from this corpus, or stage one of those with --key "
            "on a machine where corpus.root is not reachable (preflight checks a cache "
            "against a reachable corpus and would refuse it here)",
        )
    raise PreflightError(
        f"{redact(url)}/{k16} has no manifest.json: that cache is not published (or its "
        "publish did not finish)",
        "run `ictal publish` where the cache was built",
    )


def _fetch_and_commit(
    fs: fsspec.AbstractFileSystem,
    src: str,
    staging: Path,
    final: Path,
    cache_root: Path,
    url: str,
    k16: str,
    workers: int,
    result: Transfer,
) -> None:
    """Fetch the cache files into the locked staging directory (each fsynced, then renamed),
    verify L0 + L1, and commit by renaming the directory; on a failed check, remove only the
    staged files that failed (names this stage validated), so a rerun fetches them again."""
    atomic_write_json(
        staging / layout.STAGE_MARKER,
        {"key": k16, "source": redact(src), "started": time.time()},
    )
    with _storage(url, "listing"):
        sizes = _remote_sizes(fs, src)
        manifest = fs.cat_file(f"{src}/{layout.MANIFEST}", start=0, end=MAX_JSON_BYTES + 1)
    if len(manifest) > MAX_JSON_BYTES:
        raise PreflightError(
            f"{redact(url)}/{k16}/{layout.MANIFEST} is over {MAX_JSON_BYTES >> 20} MiB: not an "
            "ictal manifest",
            "run `ictal publish --force` where the cache was built",
        )
    names = _stage_names(sizes, staging, src)
    with _storage(url, "staging from"), progress("stage", total=len(names)) as tick:
        for rel in names:
            local = staging / rel
            if local.is_file() and not local.is_symlink() and local.stat().st_size == sizes[rel]:
                result.skipped += 1  # fetched by an interrupted stage (L1 checks it)
            else:
                fetch_file(fs, f"{src}/{rel}", local)
                result.files += 1
                result.bytes += sizes[rel]
            tick.advance(1)
    for sub in {str(Path(rel).parent) for rel in names} | {"."}:
        fsync_dir(staging / sub)
    atomic_write_bytes(staging / layout.MANIFEST, manifest)
    problems = verify_l0(staging) or verify_l1(staging, workers=workers)
    if problems:
        fetched = {staging / rel for rel in names}
        for p in problems:  # only files this stage fetched, by exact path, never a path text
            bad = Path(p.path)
            if bad in fetched and bad.is_file() and not bad.is_symlink():
                bad.unlink()
        (staging / layout.MANIFEST).unlink(missing_ok=True)
        raise PreflightError(
            f"the staged copy of {redact(url)}/{k16} fails verification "
            f"({len(problems)} problem(s)): {format_problems(problems)[0]}",
            "run `ictal stage` again (the files that failed are fetched again); if it fails "
            "again, the published copy is damaged: run `ictal publish --force` where the cache "
            "was built",
        )
    (staging / layout.STAGE_MARKER).unlink()  # the committed copy is the published one
    os.rename(staging, final)
    fsync_dir(cache_root)
