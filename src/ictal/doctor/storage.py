"""What a command needs from storage: free, writable disk under the roots it writes, a
reachable corpus to build, the cache (here, or published where `ictal stage` can fetch it),
and a sink that accepts a write. Every URL is printed with its credentials masked."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ictal.cache.layout import CacheRoot, key16
from ictal.cache.locate import corpus_digest
from ictal.cache.preflight import preflight
from ictal.cache.remote import published_key
from ictal.config import Config
from ictal.doctor import Check, Status
from ictal.errors import IctalError
from ictal.io.redact import redact
from ictal.runs.sink import probe_sink

LOW_DISK_GB = 5.0
WRITES = {
    "build": "cache.root",
    "stage": "cache.root",
    "train": "runs.root",
    "evaluate": "runs.root",
}
PUSHES = ("train", "evaluate", "detect")  # the commands that push to sink.url


def storage(cfg: Config, command: str) -> list[Check]:
    """The storage checks of ``command`` with this config, in the order a person reads them."""
    checks = [
        _disk(CacheRoot.of(cfg).path, "cache.root", WRITES.get(command) == "cache.root"),
        _disk(Path(cfg.runs.root), "runs.root", WRITES.get(command) == "runs.root"),
    ]
    checks.append(_corpus(cfg, needed=command == "build"))
    checks.append(_cache(cfg, command))
    if cfg.sink.url:
        checks.append(_sink(cfg.sink.url, needed=command in PUSHES))
    return checks


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (where Ictal would create it)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _disk(path: Path, setting: str, writes: bool) -> Check:
    """Free space and writability where ``setting`` lives (probed with a temporary file)."""
    where = _existing(path)
    try:
        free = shutil.disk_usage(where).free / 1e9
        if writes:
            fd, probe = tempfile.mkstemp(prefix=".ictal-doctor-", dir=where)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        status = "fail" if writes else "warn"
        return Check(
            setting,
            status,
            f"{path}: not writable here ({exc.strerror or exc})",
            f"set {setting} to a directory this process can write",
        )
    detail = f"{path}: {free:.1f} GB free" + ("" if where == path.absolute() else " (not made yet)")
    if free < LOW_DISK_GB:
        return Check(
            setting,
            "warn",
            detail,
            f"free space under {setting} (a cache of TUSZ takes about 100 GB in float32)",
        )
    return Check(setting, "ok", detail)


def _corpus(cfg: Config, *, needed: bool) -> Check:
    """The corpus lists (one listing, as the build does)."""
    roots = cfg.corpus.roots
    root = ", ".join(f"{s.name}={redact(s.root)}" for s in roots) or redact(cfg.corpus.root)
    found = corpus_digest(cfg)
    if found is None:
        if needed:
            return Check(
                "corpus",
                "fail",
                f"{root}: not reachable, or neither a TUSZ layout nor a BIDS dataset",
                "fix corpus.root or corpus.roots (a path or URL whose edf/ holds the "
                "recordings, or a BIDS root with dataset_description.json)",
            )
        return Check("corpus", "skip", f"{root}: not reachable (not needed by this command)")
    return Check("corpus", "ok", f"{root}: {found[1]} recordings")


def _cache(cfg: Config, command: str) -> Check:
    """Whether the command finds the cache it needs, or how it would get it."""
    if command in ("build", "detect"):
        return Check("cache", "skip", f"not read by `ictal {command}`")
    if command == "stage":
        return _published(cfg, needed=True)
    try:
        pre = preflight(cfg, split="train" if command == "train" else "dev")
    except IctalError as exc:
        missing = _refused("cache", "fail", exc)
        if cfg.cache.remote:
            remote = _published(cfg, needed=False)
            if remote.status == "ok":
                return Check(
                    "cache",
                    "warn",
                    f"{missing.detail}; {remote.detail}",
                    "run `ictal stage` first (the cloud wrappers do)",
                )
        return (
            missing if missing.fix else Check("cache", "fail", missing.detail, "run `ictal build`")
        )
    return Check("cache", "ok", f"{key16(pre.view.key)} at {pre.view.path}")


def _published(cfg: Config, *, needed: bool) -> Check:
    """The published cache `ictal stage` would fetch from ``cache.remote``."""
    if not cfg.cache.remote:
        return Check(
            "cache.remote",
            "fail" if needed else "skip",
            "not set",
            "set cache.remote to where `ictal publish` put the cache",
        )
    url = cfg.cache.remote.rstrip("/")
    try:
        k16 = published_key(cfg, url)
    except IctalError as exc:
        return _refused("cache.remote", "fail" if needed else "warn", exc)
    return Check("cache.remote", "ok", f"published as {k16} at {redact(url)}")


def _sink(url: str, *, needed: bool) -> Check:
    """The sink takes a write (a probe object, removed again)."""
    try:
        probe_sink(url)
    except IctalError as exc:
        return _refused("sink.url", "fail" if needed else "warn", exc)
    return Check("sink.url", "ok", f"{redact(url)}: writable")


def _refused(name: str, status: Status, exc: IctalError) -> Check:
    """A check from a refusal: its problem and its fix, as the command would say them."""
    problem = getattr(exc, "problem", None) or str(exc).split("\n", 1)[0]
    return Check(name, status, problem, getattr(exc, "fix", None) or "")
