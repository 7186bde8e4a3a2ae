"""YAML read within bounds: a config's text (a -c file, a --set value) is untrusted, and
PyYAML's ``safe_load`` still expands aliases and recurses without limit."""

from __future__ import annotations

from typing import Any

import yaml

# What a config may hold. A real one is a few KB, four levels deep, with short numbers; the
# limits refuse what only an attacker or a broken generator writes, before it costs memory.
MAX_DEPTH = 32  # nesting of mappings and lists in a file or a --set value; levels of a key
MAX_INT_DIGITS = 100  # an integer written in a config or a --set value


class YamlRefused(yaml.YAMLError):
    """YAML that is valid but refused: an alias, too deep, an integer too long."""


def _int_within_limit(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """YAML's int, refused past ``MAX_INT_DIGITS`` digits (Python's own limit is 4,300, and
    converting near it is already slow)."""
    digits = sum(ch.isalnum() for ch in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise YamlRefused(
            f"an integer of {digits} digits at line {node.start_mark.line + 1} (at most "
            f"{MAX_INT_DIGITS})"
        )
    return loader.construct_yaml_int(node)


class _BoundedLoader(yaml.SafeLoader):
    """``safe_load`` without what a config never needs and an attacker does: aliases (a
    "billion laughs" expands a few hundred bytes into billions of nodes), nesting deeper than
    ``MAX_DEPTH`` (the composer recurses), integers over ``MAX_INT_DIGITS`` digits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlRefused(
                f"a YAML alias (*{event.anchor}) at line {event.start_mark.line + 1}: aliases "
                "are refused in a config; write the value out"
            )
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep (a config needs 4)")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _int_within_limit)


def load_yaml(text: str) -> Any:
    """``text`` parsed as config YAML; ``YamlRefused`` or ``yaml.YAMLError`` when it is not."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
