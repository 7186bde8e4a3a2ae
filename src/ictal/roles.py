"""What each config field is for, declared where the field is and read back as one table:
the cache key takes the semantic fields, ``--resume`` the machine's, and ``ictal sweep``
varies neither a path nor what it gives each run. A new field gets its section's role."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, TypeVar, get_args, get_origin

from pydantic import BaseModel


class Role(StrEnum):
    """What a config field is for. A field takes its section's ``default_role`` unless its
    annotation names another (``MachineField[int]``); exactly one role per field."""

    EXPERIMENT = "experiment"  # the default: frozen in a run, may be varied by a sweep
    SEMANTIC = "semantic"  # changes a byte of the cache: enters the cache key
    MACHINE = "machine"  # describes the machine: a resume takes today's value
    SHARE = "share"  # machine: the run's share of a shared machine, set per run by ictal sweep
    PATH = "path"  # machine: a local path or URL of storage the user configured


MACHINE_ROLES = frozenset({Role.MACHINE, Role.SHARE, Role.PATH})

_T = TypeVar("_T")
MachineField = Annotated[_T, Role.MACHINE]
ShareField = Annotated[_T, Role.SHARE]
PathField = Annotated[_T, Role.PATH]


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model type a field holds and whether it is a tuple of them (a mixture's corpora);
    (None, False) for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is tuple:
        inner = get_args(annotation)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, True
    return None, False


def field_roles(model: type[BaseModel], prefix: str = "") -> dict[str, Role]:
    """Every field's dotted name and role, in declaration order. Members of a tuple of models
    are named ``field[].member`` (``corpus.roots[].root``); the other names are the keys
    ``config.flatten`` gives a dumped config. A field that declares two roles, or a role on a
    whole section, is a TypeError."""
    default = getattr(model, "default_role", Role.EXPERIMENT)
    out: dict[str, Role] = {}
    for name, info in model.model_fields.items():
        key = prefix + name
        declared = [m for m in info.metadata if isinstance(m, Role)]
        if len(declared) > 1:
            raise TypeError(f"config field {key} declares {len(declared)} roles; give it one")
        nested, many = _models_in(info.annotation)
        if nested is not None and not many:
            if declared:
                raise TypeError(f"{key} is a section: declare roles on its fields")
            out.update(field_roles(nested, key + "."))
            continue
        out[key] = declared[0] if declared else default
        if nested is not None:
            members = field_roles(nested, key + "[].")
            if Role.SEMANTIC in members.values():
                raise TypeError(f"{key}: semantic fields in a tuple of sections are not supported")
            out.update(members)
    return out


class FieldRoles:
    """The roles of every field of a config model, and the rules derived from them."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.table = field_roles(model)

    def of(self, key: str) -> Role | None:
        """The role of the field a dotted key names or lies inside (``model.params.depth`` is
        in ``model.params``); None for a section or a key that names no field."""
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            role = self.table.get(".".join(parts[:end]))
            if role is not None:
                return role
        return None

    def named(self, *roles: Role) -> list[str]:
        """The fields of these roles, in declaration order."""
        return [name for name, role in self.table.items() if role in roles]

    def resume_fields(self) -> frozenset[str]:
        """The fields a ``--resume`` takes from today's config (those that describe the
        machine: roles machine, share and path); every other field stays as the run froze it."""
        return frozenset(n for n in self.named(*MACHINE_ROLES) if "[]" not in n)

    def sweep_may_vary(self, key: str) -> bool:
        """Whether ``ictal sweep --vary KEY`` may vary this key: not when it is, holds or lies
        in a path field or a field the sweep sets per run (role share, and runs.root, a
        path). Keys that name no field are left to config validation."""
        for name in self.named(Role.SHARE, Role.PATH):
            if name == key or name.startswith(key + ".") or key.startswith(name + "."):
                return False
        return True
