"""The manifest (commit marker, written last) and the recordings table of a cache."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal.cache.layout import MANIFEST, TABLE
from ictal.config import CACHE_FORMAT_VERSION, PREPROCESSING_VERSION, Config, diff_semantic
from ictal.errors import ExitCode, IctalError, UnsafePathError
from ictal.io.paths import check_name, contained_all
from ictal.io.untrusted import MAX_JSON_BYTES, UnreadableInput, loads_json, read_bytes

SUPPORTED_FORMATS = (CACHE_FORMAT_VERSION,)


class ManifestError(IctalError, ValueError):
    """A manifest or recordings table that cannot be used; the message names the file
    (exit 3: the cache is refused, never read past the problem)."""

    exit_code = ExitCode.PREFLIGHT


def read_json(path: Path) -> Any:
    """Parse a JSON file (regular, at most ``MAX_JSON_BYTES``, nesting and numbers bounded),
    raising ManifestError naming the file on any problem."""
    return _parsed(path, _read(path))


def _read(path: Path) -> bytes:
    """A manifest or table's bytes (a regular file within the limit) or a ManifestError."""
    try:
        return read_bytes(path, "cache file", MAX_JSON_BYTES)
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: missing") from exc
    except (OSError, UnreadableInput) as exc:
        raise ManifestError(f"{path}: unreadable ({exc})") from None


def _parsed(path: Path, data: bytes) -> Any:
    try:
        return loads_json(data, str(path))
    except UnreadableInput as exc:
        raise ManifestError(f"{exc}: the cache is refused (rebuild or stage it again)") from None


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a committed cache directory, or None when missing or unreadable."""
    try:
        man = read_json(path / MANIFEST)
    except ManifestError:
        return None
    return man if isinstance(man, dict) else None


def matches(manifest: dict[str, Any], cfg: Config) -> bool:
    """True when a cache was built with this config's semantic fields and this ictal's
    preprocessing version: given the same inputs it holds the bytes this config would write
    (the one rule for finding, reusing and staging caches across corpus inventories)."""
    semantic = manifest.get("semantic")
    return (
        manifest.get("preprocessing_version") == PREPROCESSING_VERSION
        and isinstance(semantic, dict)
        and not diff_semantic(semantic, cfg.semantic())
    )


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
        """Path of a recording's array file (every row was checked to stay inside the cache
        directory when it was opened)."""
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
    for name, kind in _MANIFEST_FIELDS.items():
        if not isinstance(manifest.get(name), kind) or isinstance(manifest.get(name), bool):
            raise ManifestError(f"{base / MANIFEST}: no valid {name!r} (not an ictal manifest)")
    table_path = base / TABLE
    raw = _read(table_path)
    table = manifest.get("table")
    expected = table.get("sha256") if isinstance(table, dict) else None
    if sha256_bytes(raw) != expected:
        raise ManifestError(f"{table_path}: content does not match the manifest's sha256")
    rows = _parsed(table_path, raw)
    check_rows(base, rows)
    return CacheView(base, manifest, rows)


# Fields every manifest must carry, with their JSON types.
_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "key": str, "preprocessing_version": str, "semantic": dict, "source": dict,
    "fs": (int, float), "dtype": str, "channels": list, "table": dict, "totals": dict,
    "per_split": dict, "failed": list,
}  # fmt: skip

# Fields every recordings row must carry, with their JSON types.
_ROW_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "split": str, "array": str, "bytes": int, "n_samples": int, "sha256": str,
    "seizures": list,
}  # fmt: skip


def check_rows(base: Path, rows: Any) -> None:
    """Every row has its fields with the right types, a plain id and an array path inside
    the cache directory; anything else (a tampered or foreign table) is refused."""
    where = base / TABLE
    if not isinstance(rows, list):
        raise ManifestError(f"{where}: not a list of recordings")
    arrays: list[tuple[object, str]] = []
    try:
        for k, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ManifestError(f"{where}: row {k} is not an object")
            for name, kind in _ROW_FIELDS.items():
                if not isinstance(row.get(name), kind) or isinstance(row.get(name), bool):
                    raise ManifestError(f"{where}: row {k} has no valid {name!r}")
            check_name(row["id"], f"{where}: row {k} id")
            arrays.append((row["array"], f"{where}: array of {row['id']!r}"))
        contained_all(base, arrays)
    except UnsafePathError as exc:
        raise ManifestError(exc.problem) from exc
