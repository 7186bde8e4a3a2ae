"""Command line: a module per command group (cache, train, results, runs, tools, config_cmd)
that parses, loads the config, calls the library and renders its result (render.py); exits.py
turns every outcome into the documented exit code."""

from ictal.cli import cache, config_cmd, results, runs, tools, train  # noqa: F401  (registers)
from ictal.cli.app import app
from ictal.cli.exits import main, run
from ictal.cli.tools import CorpusFormat, Difficulty, LineFreq

__all__ = ["CorpusFormat", "Difficulty", "LineFreq", "app", "main", "run"]
