"""The reference of every config key, its default, role and meaning, as Markdown: made from
the models' field docstrings, so docs/configuration.md cannot drift from the code (a test
compares them; ``.venv/bin/python scripts/config_doc.py`` regenerates the file)."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from collections.abc import Iterator
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ictal.config.whole import ROLES, Config
from ictal.roles import Role

# The line in docs/configuration.md after which the generated reference follows.
MARKER = "<!-- generated from the config models by `ictal config --markdown`; do not edit below -->"


def _default(info: Any) -> str:
    """A field's default as the YAML flow value a user would write (``null``, ``[a, b]``)."""
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    text = json.dumps(value, default=list)
    return "`" + text.replace('"', "") + "`" if text != '""' else '`""`'


def _cell(text: str | None) -> str:
    """A docstring as one table cell: one line, pipes escaped."""
    return " ".join((text or "").split()).replace("``", "`").replace("|", "\\|")


@cache
def _docstrings(model: type[BaseModel]) -> dict[str, str]:
    """Each field's docstring (the string right under its annotated assignment, cleaned as
    pydantic's ``use_attribute_docstrings`` does), over the model's classes, nearest last."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
        assert isinstance(body, ast.ClassDef)
        for first, second in zip(body.body, body.body[1:], strict=False):
            doc = second.value if isinstance(second, ast.Expr) else None
            if (isinstance(first, ast.AnnAssign) and isinstance(first.target, ast.Name)
                    and isinstance(doc, ast.Constant) and isinstance(doc.value, str)):  # fmt: skip
                found[first.target.id] = inspect.cleandoc(doc.value)
    return found


def _rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """(key, default, role, meaning) of every leaf field under ``model``, in declaration
    order; a nested section's fields follow under its dotted name."""
    for name, info in model.model_fields.items():
        key = prefix + name
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            yield from _rows(nested, key + ".")
            continue
        role = ROLES.of(key) or Role.EXPERIMENT
        yield key, _default(info), role.value, _cell(_docstrings(model).get(name))
        members = getattr(nested, "__args__", ())
        if members and isinstance(members[0], type) and issubclass(members[0], BaseModel):
            yield from _rows(members[0], key + "[].")


def markdown() -> str:
    """Every section of the config with a table of its keys (what follows ``MARKER``)."""
    lines: list[str] = []
    for name, info in Config.model_fields.items():
        section = info.annotation
        assert isinstance(section, type) and issubclass(section, BaseModel)
        lines += [f"### `{name}`", "", _cell(section.__doc__), ""]
        lines += ["| key | default | role | meaning |", "|---|---|---|---|"]
        lines += [f"| `{k}` | {d} | {r} | {m} |" for k, d, r, m in _rows(section, name + ".")]
        lines.append("")
    return "\n".join(lines)


def splice(document: str) -> str:
    """``document`` with everything after ``MARKER`` replaced by today's reference."""
    head, found, _ = document.partition(MARKER)
    if not found:
        raise ValueError(f"the document has no line {MARKER!r}")
    return f"{head}{MARKER}\n\n{markdown()}"
