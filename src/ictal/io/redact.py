"""Credentials never leave the process: URL userinfo and credential-like query parameters are
masked in every message printed or logged and in every file Ictal stores (config.yaml,
run.json, census JSON). Credentials belong in the environment, never in a URL."""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# scheme://user:password@host or scheme://token@host (the whole userinfo goes).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@'\"]+)@")
# ?token=...&X-Amz-Signature=... : values of parameters whose name says they are secret.
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*(?:token|secret|password|passwd|pwd|signature|sig|credential"
    r"|key|auth|session)[\w.-]*))=(?P<value>[^&#\s'\"]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with URL userinfo and secret query values replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['name']}={MASK}", text)


def redact_tree(obj: Any) -> Any:
    """Every string inside nested dicts, lists and tuples redacted (for stored JSON/YAML)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact_tree(v) for v in obj)
    return obj


class RedactingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) carry no credentials."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
