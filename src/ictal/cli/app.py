"""The typer app, the options several commands share, and the config of the running command.

A command option is either a plain input (a file, a count to time) or another way to write a
config field: those become ``--set`` overrides here (``load``), so the library reads one
setting from one place and the frozen config of a run records what was used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ictal import __version__
from ictal.config import Config
from ictal.config_file import load_config
from ictal.errors import EXIT_CODES_HELP
from ictal.ui import setup_logging

if TYPE_CHECKING:
    from ictal.models.trust import ModelTrust

app = typer.Typer(
    name="ictal",
    help="Train seizure detectors on scalp EEG: synth -> census -> build -> train -> evaluate.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (defaults are built in)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field: section.key=value (repeatable, in order)."),
]
AllowMismatchOpt = Annotated[
    bool,
    typer.Option(
        "--allow-version-mismatch",
        help="Go on when the model's package is installed at another version than the "
        "checkpoint was trained with.",
    ),
]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-model-code",
        help="Import the model code (an import path) that a checkpoint or a resumed run's "
        "config names though your own config does not: it runs that code, so only for "
        "files you trust.",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray cluster to join (auto, host:port); default: a local Ray instance."
    ),
]

# The config of the running command, so a storage error can name the setting it came from.
CURRENT: list[Config] = []


def overrides(fields: dict[str, Any]) -> list[str]:
    """``--set`` texts for the options given on the command line, by the dotted field each
    stands for (None: not given)."""
    return [f"{name}={json.dumps(value)}" for name, value in fields.items() if value is not None]


def load(
    config: Path | None, sets: list[str] | None, options: dict[str, Any] | None = None
) -> Config:
    """The command's config: defaults, the file, the ``--set`` overrides, then the options
    that stand for config fields (``overrides``). A bad one is a ConfigError (exit 2)."""
    return remember(load_config(config, [*(sets or []), *overrides(options or {})]))


def remember(cfg: Config) -> Config:
    """``cfg`` as the running command's config (for naming settings in storage errors)."""
    CURRENT[:] = [cfg]
    return cfg


def model_trust(
    config: Path | None, sets: list[str] | None, *, trust_code: bool, allow_mismatch: bool
) -> ModelTrust:
    """What model code this command may import: the ``model.name`` of the user's own config
    (``-c`` and ``--set``, never a run's frozen config), any with --trust-model-code."""
    from ictal.models.trust import ModelTrust

    named = load_config(config, sets).model.name
    return ModelTrust(named=named, any_code=trust_code, any_version=allow_mismatch)


def fix_command(command: str, config: Path | None, sets: list[str] | None) -> str:
    """The exact command line that repeats this invocation's config for another command."""
    parts = ["ictal", command]
    if config is not None:
        parts += ["-c", str(config)]
    for s in sets or []:
        parts += ["--set", s]
    return " ".join(parts)


def _print_version(ctx: typer.Context, value: bool) -> None:
    if value:
        typer.echo(__version__)
        ctx.exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Ictal command line."""
    setup_logging()
