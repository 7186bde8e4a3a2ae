"""The manifest (commit marker, written last) and the recordings table of a cache."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal.cache.layout import MANIFEST, TABLE
from ictal.config import CACHE_FORMAT_VERSION

SUPPORTED_FORMATS = (CACHE_FORMAT_VERSION,)


class ManifestError(ValueError):
    """A manifest or recordings table that cannot be used; the message names the file."""


def read_json(path: Path) -> Any:
    """Parse a JSON file, raising ManifestError naming the file on any problem."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable or not JSON ({exc})") from exc


def table_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Canonical bytes of the recordings table (sorted keys, one row per line)."""
    lines = [json.dumps(r, sort_keys=True, separators=(",", ":"), allow_nan=False) for r in rows]
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CacheView:
    """A committed cache opened read-only: its manifest and recordings table."""

    path: Path
    manifest: dict[str, Any]
    recordings: list[dict[str, Any]]

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    @property
    def fs(self) -> float:
        return float(self.manifest["fs"])

    @property
    def channels(self) -> list[str]:
        return list(self.manifest["channels"])

    def array_path(self, rec: dict[str, Any]) -> Path:
        """Absolute path of a recording's array file."""
        return self.path / rec["array"]

    def split(self, name: str) -> list[dict[str, Any]]:
        """Recordings of one split, in table order."""
        return [r for r in self.recordings if r["split"] == name]


def open_cache(path: str | Path) -> CacheView:
    """Read manifest and table; checks the format version and the table's hash."""
    base = Path(path)
    manifest = read_json(base / MANIFEST)
    if not isinstance(manifest, dict) or "format_version" not in manifest:
        raise ManifestError(f"{base / MANIFEST}: not an ictal manifest")
    if manifest["format_version"] not in SUPPORTED_FORMATS:
        raise ManifestError(
            f"{base / MANIFEST}: cache format {manifest['format_version']} is not supported "
            f"by this ictal (supports {SUPPORTED_FORMATS})"
        )
    table_path = base / TABLE
    try:
        raw = table_path.read_bytes()
    except FileNotFoundError as exc:
        raise ManifestError(f"{table_path}: missing") from exc
    expected = manifest["table"]["sha256"]
    if sha256_bytes(raw) != expected:
        raise ManifestError(f"{table_path}: content does not match the manifest's sha256")
    rows = json.loads(raw)
    return CacheView(base, manifest, rows)
