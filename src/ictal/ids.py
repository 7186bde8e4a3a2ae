"""Run ids: the UTC start time and a short random suffix, so names sort by start and never
clash across machines (training runs, detect outputs, cache builds, sweeps)."""

from __future__ import annotations

import secrets
import time


def new_run_id(now: float | None = None) -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxx`` for ``now`` (default: this moment)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{stamp}-{secrets.token_hex(3)}"
