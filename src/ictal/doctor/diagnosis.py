"""The diagnosis of one command on this machine with this config, and its table."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ictal.config import Config
from ictal.doctor import Check, failed
from ictal.doctor.environment import device, environment
from ictal.doctor.model import model
from ictal.doctor.storage import storage
from ictal.ui import styled

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
# Commands that never import torch: a broken or absent torch does not make them fail, and
# their diagnosis does not pay its import (1-2 s).
WITHOUT_TORCH = ("build", "stage")


def diagnose(
    cfg: Config, command: str, *, env_only: bool = False, lock: Path | None = None
) -> list[Check]:
    """Environment and device checks (for training, the model's path on that device), then
    (unless ``env_only``) what ``command`` needs. A command that runs without torch gets no
    device check (``env_only``, the check of a whole image, always has one)."""
    wanted = cfg.train.device if command in ("train", "evaluate") else "auto"
    if command in WITHOUT_TORCH and not env_only:
        used = Check("device", "skip", f"`ictal {command}` runs without torch")
    else:
        used = device(wanted)
    checks = [*environment(lock), used]
    if command == "train":
        checks += model(cfg)
    if not env_only:
        checks += storage(cfg, command)
    return checks


def verdict(checks: list[Check], command: str, env_only: bool) -> str:
    """The title: what was checked and what the checks say (never "ready" above a failure)."""
    what = "the environment" if env_only else f"`ictal {command}`"
    bad = failed(checks)
    warned = sum(c.status == "warn" for c in checks)
    if bad:
        return f"ictal doctor: NOT ready for {what}: {len(bad)} check(s) failed"
    note = f" ({warned} warning(s))" if warned else ""
    return f"ictal doctor: ready for {what}{note}"


def table(checks: list[Check], command: str, env_only: bool) -> Table:
    """One row per check under the verdict; the fixes of what is not ok follow the table."""
    t = Table(title=verdict(checks, command, env_only), title_justify="left")
    t.add_column("check", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("found")
    for c in checks:
        t.add_row(c.name, styled(c.status, STYLE[c.status]), c.detail)
    return t
