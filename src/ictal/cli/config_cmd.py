"""``ictal config``: the effective config as YAML (what a command given the same ``-c`` and
``--set`` would use), the built-in defaults, or the reference of every key as Markdown."""

from __future__ import annotations

from typing import Annotated

import typer

from ictal.cli.app import ConfigOpt, SetOpt, load
from ictal.cli.exits import command
from ictal.config import Config, ConfigError
from ictal.ui import echo


@command(name="config")
def config_(
    defaults: Annotated[
        bool, typer.Option("--defaults", help="The built-in defaults, without -c and --set.")
    ] = False,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown",
            help="Every key with its default, role and meaning as Markdown (the reference in "
            "docs/configuration.md).",
        ),
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Print the full effective config as YAML: the defaults, the -c file and the --set
    overrides, as any command given them would use it (credentials masked)."""
    if (defaults or markdown) and (config is not None or set_):
        flag = "--defaults" if defaults else "--markdown"
        raise ConfigError(f"{flag} shows the built-in defaults: drop -c and --set, or {flag}")
    if markdown:
        from ictal.config.reference import markdown as reference

        echo(reference())
        return None
    cfg = Config() if defaults else load(config, set_)
    echo(cfg.to_yaml().rstrip("\n"))
    return None
