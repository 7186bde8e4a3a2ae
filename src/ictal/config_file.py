"""A config from a ``-c`` YAML file and ``--set`` overrides, over the built-in defaults: the
text is untrusted, so it is read within bounds and every refusal names the file or override."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ictal.config import Config, ConfigError, set_dotted
from ictal.io.bounded_yaml import MAX_DEPTH, YamlRefused, load_yaml
from ictal.io.untrusted import UnreadableInput, read_bytes

MAX_CONFIG_BYTES = 1 << 20  # a -c file
MAX_KEY_CHARS = 256  # a --set key

_SHOWN = 100  # characters of a value quoted in a message


def _shown(value: Any) -> str:
    """A value's repr for a message, cut short: a config value can be a megabyte."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def _format_validation_error(err: ValidationError, origin: str) -> str:
    """One line per problem: field path, bad value, what is allowed."""
    lines = [f"invalid config ({origin}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key (value {_shown(value)})")
            continue
        allowed = ""
        ctx = e.get("ctx") or {}
        if "expected" in ctx and str(ctx["expected"]) not in e["msg"]:
            allowed = f"; allowed: {ctx['expected']}"
        lines.append(f"  {loc} = {_shown(value)}: {e['msg']}{allowed}")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
    """Split 'a.b=value'; the value is parsed as YAML so numbers, lists and null work."""
    shown = _shown(text)
    if "=" not in text:
        raise ConfigError(f"override {shown} must look like section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {shown}: empty key")
    if len(key) > MAX_KEY_CHARS or key.count(".") >= MAX_DEPTH:
        raise ConfigError(
            f"override {shown}: a key of {len(key)} characters and {key.count('.') + 1} levels "
            f"is not a config field (at most {MAX_KEY_CHARS} characters, {MAX_DEPTH} levels)"
        )
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except YamlRefused as exc:
        raise ConfigError(f"override {shown}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {shown}: value is not valid YAML ({exc})") from exc
    return key, value


def _read_file(p: Path) -> dict[str, Any]:
    """A -c file's mapping: a regular UTF-8 file of at most ``MAX_CONFIG_BYTES`` of YAML."""
    try:
        data = read_bytes(p, "config file", MAX_CONFIG_BYTES)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {p} does not exist") from exc
    except UnreadableInput as exc:
        raise ConfigError(f"{exc}; pass a YAML file to -c") from None
    try:
        loaded = load_yaml(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not text (binary?); pass a YAML file") from exc
    except YamlRefused as exc:
        raise ConfigError(f"config file {p}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {p} must hold a mapping of sections")
    return loaded


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Built-in defaults, then the YAML file, then each --set override in order."""
    tree: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        origin = str(path)
        tree = _read_file(Path(path))
    for text in overrides or []:
        key, value = parse_override(text)
        set_dotted(tree, key, value)
    if overrides:
        origin = f"{origin} + --set overrides"
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from exc
