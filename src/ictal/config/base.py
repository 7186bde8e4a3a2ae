"""What every config section shares: unknown keys are errors, field docstrings document the
field (``ictal config --markdown`` reads them from the source, ``config/reference.py``), and
a refused value is a ConfigError (exit 2)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from ictal.errors import UsageError
from ictal.roles import Role


class ConfigError(UsageError, ValueError):
    """A config or override that cannot be used; the message names field, value, what is
    allowed (exit 2)."""


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, assignments are validated, and each
    field's docstring is its description (docs/configuration.md is generated from them, only
    when asked: pydantic's ``use_attribute_docstrings`` would parse every section's source at
    each start of every command)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    default_role: ClassVar[Role] = Role.EXPERIMENT
