"""What a build of a config covers: the recordings of the configured splits and the digest of
their source inventory, from one listing of the corpus. Build, locate, stage and gc all ask
here; nothing here builds anything."""

from __future__ import annotations

from dataclasses import dataclass

from ictal.config import Config
from ictal.corpus.discovery import RecordingRef
from ictal.corpus.sources import HINT, Inventory, inventory
from ictal.errors import PreflightError
from ictal.io.redact import redact


@dataclass(frozen=True)
class Plan:
    """What a build of this config covers: recordings, inventory digest, per-file signatures."""

    refs: list[RecordingRef]
    digest: str
    discovery: Inventory


def plan(cfg: Config) -> Plan:
    """Recordings of the configured splits and the inventory digest, from one listing of
    each corpus."""
    found = inventory(cfg.corpus)
    refs = [r for r in found.refs if r.split in cfg.corpus.splits]
    if not refs:
        roots = ", ".join(redact(s.root) for s, _ in found.parts)
        raise PreflightError(
            f"no recordings under {roots} (splits {list(cfg.corpus.splits)}; {HINT})",
            "check corpus.root, or create a demo corpus with `ictal synth DIR`",
        )
    return Plan(refs, found.digest(refs), found)
