"""``ictal config``: the effective YAML is what a command with the same -c and --set uses,
--defaults the built-in one, --markdown the key reference that docs/configuration.md holds."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import ROOT, run_ictal, set_args
from ictal.config import ROLES, Config
from ictal.config.reference import MARKER
from ictal.config_file import load_config


def test_prints_the_effective_config_of_a_file_and_overrides(tmp_path: Path):
    cfg_file = tmp_path / "mine.yaml"
    cfg_file.write_text("train:\n  epochs: 7\nsignal:\n  notch: 50\n")
    sets = ["train.lr=0.02", "sink.url=s3://AKIA:s3cret@bucket/runs"]
    res = run_ictal("config", "-c", str(cfg_file), *set_args(*sets))
    assert res.returncode == 0, res.stderr
    printed = yaml.safe_load(res.stdout)
    expected = load_config(cfg_file, sets)
    assert printed["train"]["epochs"] == 7 and printed["signal"]["notch"] == 50.0
    assert printed["train"]["lr"] == 0.02
    assert "s3cret" not in res.stdout, "a credential was printed"
    # every field is there, and the printed YAML loads back into the same config
    assert set(printed) == set(Config.model_fields)
    printed["sink"]["url"] = expected.sink.url
    assert Config.model_validate(printed) == expected


def test_defaults_are_the_built_in_config():
    res = run_ictal("config", "--defaults")
    assert res.returncode == 0, res.stderr
    assert Config.model_validate(yaml.safe_load(res.stdout)) == Config()
    assert yaml.safe_load(res.stdout)["train"]["patience"] == 3


def test_bad_key_and_mixed_flags_are_one_line_exit_2():
    res = run_ictal("config", *set_args("train.warmup_fracton=0.1"))
    assert res.returncode == 2
    assert "train.warmup_fracton: unknown key" in res.stderr and "Traceback" not in res.stderr
    res = run_ictal("config", "--defaults", *set_args("train.lr=0.1"))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "error: --defaults shows the built-in defaults: drop -c and --set, or --defaults"
    ]


def test_every_field_has_a_meaning():
    """A new field without a docstring fails here, before the doc is regenerated."""
    res = run_ictal("config", "--markdown")
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("| `")]
    keys = {row.split("`")[1] for row in rows}
    assert keys == set(ROLES.table), set(ROLES.table) ^ keys
    empty = [row.split("`")[1] for row in rows if row.rstrip().endswith("|  |")]
    assert not empty, f"fields without a docstring: {empty}"


def test_the_configuration_doc_is_current():
    """docs/configuration.md ends with the reference the code generates today."""
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert MARKER in doc
    res = run_ictal("config", "--markdown")
    assert res.returncode == 0, res.stderr
    generated = doc.split(MARKER, 1)[1].strip()
    assert generated == res.stdout.strip(), (
        "docs/configuration.md is stale: run `.venv/bin/python scripts/config_doc.py` and commit it"
    )
