"""The diagnosis of one command on this machine with this config, and its table."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ictal.config import Config
from ictal.doctor import Check
from ictal.doctor.environment import device, environment
from ictal.doctor.storage import storage
from ictal.ui import styled

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def diagnose(
    cfg: Config, command: str, *, env_only: bool = False, lock: Path | None = None
) -> list[Check]:
    """Environment and device checks, then (unless ``env_only``) what ``command`` needs."""
    wanted = cfg.train.device if command in ("train", "evaluate") else "auto"
    checks = [*environment(lock), device(wanted)]
    if not env_only:
        checks += storage(cfg, command)
    return checks


def table(checks: list[Check], command: str, env_only: bool) -> Table:
    """One row per check; the fixes of what is not ok follow the table."""
    title = "ictal doctor: " + ("the environment" if env_only else f"ready for `ictal {command}`")
    t = Table(title=title, title_justify="left")
    t.add_column("check")
    t.add_column("status")
    t.add_column("found")
    for c in checks:
        t.add_row(c.name, styled(c.status, STYLE[c.status]), c.detail)
    return t
