"""Every command has --help; the top level lists the whole contract."""

from __future__ import annotations

import pytest

COMMANDS = [
    "synth", "census", "build", "verify", "explain", "gc",
    "publish", "stage", "train", "sweep", "bench", "evaluate", "detect", "report", "status",
    "pull", "doctor", "score", "models",
]  # fmt: skip


def test_top_level_help_lists_every_command(ictal):
    res = ictal("--help")
    assert res.returncode == 0
    for name in COMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help(ictal, name):
    res = ictal(name, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout
    # synth takes no config (score's holds SzCORE's parameters, scoring.szcore)
    assert ("--config" in res.stdout) == (name != "synth")


def test_unknown_command_is_a_usage_error(ictal):
    assert ictal("frobnicate").returncode == 2


def test_version(ictal):
    from ictal import __version__

    res = ictal("--version")
    assert res.returncode == 0 and res.stdout.strip() == __version__
