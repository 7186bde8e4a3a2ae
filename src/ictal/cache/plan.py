"""What a build of a config covers: the recordings of the configured splits and the digest of
their source inventory, from one listing of the corpus. Build, locate, stage and gc all ask
here; nothing here builds anything."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ictal.config import Config
from ictal.corpus.discovery import LAYOUT_HINT, Discovery, RecordingRef, scan
from ictal.errors import PreflightError
from ictal.io.redact import redact


def corpus_root(cfg: Config) -> str:
    """The corpus root as an absolute path or a URL (workers may run elsewhere)."""
    root = cfg.corpus.root
    return root if "://" in root else os.path.abspath(root)


@dataclass(frozen=True)
class Plan:
    """What a build of this config covers: recordings, inventory digest, per-file signatures."""

    refs: list[RecordingRef]
    digest: str
    discovery: Discovery


def plan(cfg: Config) -> Plan:
    """Recordings of the configured splits and the inventory digest, from one listing."""
    root = corpus_root(cfg)
    found = scan(root)
    refs = [r for r in found.refs if r.split in cfg.corpus.splits]
    if not refs:
        raise PreflightError(
            f"no recordings in the TUSZ layout under {redact(root)} (splits "
            f"{list(cfg.corpus.splits)}; {LAYOUT_HINT})",
            "check corpus.root, or create a demo corpus with `ictal synth DIR`",
        )
    return Plan(refs, found.digest(refs), found)
