"""Dotted-key helpers over nested config dicts: set a field, flatten, diff, canonical JSON."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, no NaN; same object -> same string."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set tree[a][b][c] = value for 'a.b.c', creating dicts on the way."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def flatten(tree: dict[str, Any], prefix: str = "", *, keep_empty: bool = True) -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; used to diff configs field by field. An empty mapping is
    a leaf ``{}`` with ``keep_empty``, else it has no entry (tracker parameters)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and (v or not keep_empty):
            out.update(flatten(v, key + ".", keep_empty=keep_empty))
        else:
            out[key] = v
    return out


def diff_semantic(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Fields whose values differ between two semantic dicts: (field, a value, b value)."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]
