"""A sweep's grid: values split on top-level commas only, every combination, and run names
that are plain, unique directory names whatever the values hold."""

from __future__ import annotations

import pytest

from ictal.errors import UsageError
from ictal.orchestrate.grid import MEMBER_NAME, grid, member_name, split_values


def test_a_mapping_or_list_value_stays_one_value():
    text = "{name: tcn_ssm, params: {width: 8}},{name: conv_bigru},[1, 2],'a,b'"
    assert split_values(text) == ["{name: tcn_ssm, params: {width: 8}}", "{name: conv_bigru}",
                                  "[1, 2]", "'a,b'"]  # fmt: skip


def test_every_combination_and_the_seeds():
    runs = grid(["train.lr=1,2", "model.name=a,b,c"], seeds=2)
    assert len(runs) == 12 and runs[0] == ["train.lr=1", "model.name=a", "train.seed=0"]
    with pytest.raises(UsageError, match=r"runs\.root"):
        grid(["runs.root=a,b"], None)


@pytest.mark.parametrize("overrides, name", [
    (["model={name: tcn_ssm, params: {width: 8}}"], "r007-model=name_tcn_ssm_params_width_8"),
    (["train.lr=0.001", "model.name=braindecode/EEGNetv4"],
     "r007-lr=0.001-name=braindecode_EEGNetv4"),
    (["x.y=../../etc"], "r007-y=.._.._etc"),
    ([], "r007"),
])  # fmt: skip
def test_run_names_are_plain_directory_names(overrides, name):
    got = member_name(7, overrides)
    assert got == name and MEMBER_NAME.fullmatch(got) and "/" not in got
