"""Strict JSON everywhere: one function turns nan and inf into null for scores.json, metrics
lines and heartbeats alike."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ictal.io.jsonable import jsonable
from ictal.runs.metrics import encode


def test_non_finite_floats_become_null_at_any_depth() -> None:
    doc = {"a": math.nan, "b": [1.0, math.inf, (2, -math.inf)], "c": {"d": math.nan}}
    assert jsonable(doc) == {"a": None, "b": [1.0, None, [2, None]], "c": {"d": None}}


def test_numpy_scalars_paths_and_keys_become_plain_json() -> None:
    doc = {1: np.float32(0.5), "n": np.int64(3), "bad": np.float64("nan"), "p": Path("/x")}
    got = jsonable(doc)
    assert got == {"1": 0.5, "n": 3, "bad": None, "p": "/x"}
    assert type(got["n"]) is int and type(got["1"]) is float
    json.dumps(got, allow_nan=False)


def test_plain_values_are_unchanged() -> None:
    doc = {"s": "x", "i": 2, "f": 0.25, "t": True, "none": None}
    assert jsonable(doc) == doc


def test_metrics_lines_are_strict_json() -> None:
    line = encode({"phase": "train", "epoch": 0, "step": 1, "time": 2.0, "loss": math.nan})
    assert json.loads(line) == {"phase": "train", "epoch": 0, "step": 1, "time": 2.0,
                                "loss": None}  # fmt: skip
