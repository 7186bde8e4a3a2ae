"""`ictal models`: every model built at the config's shape, measured, one row each; a model
that cannot be built is its own row and the listing still exits 0."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import ictal_env, run_ictal
from ictal.models import build_model
from ictal.train.catalog import receptive_field

CONV_MODULE = '''
from torch import nn


class Conv(nn.Module):
    """Two convolutions, kernels 5 and 3: a receptive field of 7 samples."""

    def __init__(self, n_channels, fs, width=4):
        super().__init__()
        self.output_stride = 1
        self.net = nn.Sequential(nn.Conv1d(n_channels, width, 5, padding=2), nn.Tanh(),
                                 nn.Conv1d(width, 1, 3, padding=1))

    def forward(self, x):
        return self.net(x).squeeze(1)
'''


def _models(tmp_path: Path, *sets: str, names: tuple[str, ...] = (), table: bool = False
            ) -> list[dict]:  # fmt: skip
    (tmp_path / "site").mkdir(exist_ok=True)
    (tmp_path / "site" / "catalog_user.py").write_text(CONV_MODULE)
    env = ictal_env()
    env["PYTHONPATH"] += os.pathsep + str(tmp_path / "site")
    args = [*names, *(a for s in sets for a in ("--set", s))]
    res = run_ictal("models", "--json", *args, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    if table:
        shown = run_ictal("models", *args, env=env)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert all(n in shown.stdout for n in names), shown.stdout
    return json.loads(res.stdout)


@pytest.mark.slow
def test_the_default_model_is_measured_at_the_configs_shape(tmp_path):
    rows = {r["name"]: r for r in _models(tmp_path, "windows.length_s=20", "signal.fs=128",
                                          names=("conv_bigru", "tcn_ssm"), table=True)}  # fmt: skip
    row = rows["conv_bigru"]
    model = build_model("conv_bigru", n_channels=19, fs=128)
    assert row["parameters"] == sum(p.numel() for p in model.parameters())
    assert row["output_stride"] == 128 and row["output_hz"] == 1.0
    assert row["whole_window"] and row["receptive_field_s"] == 20.0  # a BiGRU sees it all
    assert row["source"] == "ictal" and row["description"] and row["error"] is None


@pytest.mark.slow
def test_a_convolution_has_the_receptive_field_of_its_kernels(tmp_path):
    rows = {r["name"]: r for r in _models(tmp_path, "model.name=catalog_user:Conv",
                                          names=("catalog_user:Conv",))}  # fmt: skip
    row = rows["catalog_user:Conv"]
    assert row["receptive_field_s"] * 256 == pytest.approx(7) and not row["whole_window"]
    assert row["parameters"] == 19 * 4 * 5 + 4 + 4 * 3 + 1
    assert row["description"].startswith("Two convolutions")
    assert row["source"].startswith("import")


@pytest.mark.slow
def test_a_model_that_cannot_be_built_is_its_row(tmp_path):
    names = ("conv_bigru", "catalog_user:Conv", "nope")
    rows = {r["name"]: r for r in _models(tmp_path, "model.name=catalog_user:Conv",
                                          "model.params={width: 0}", names=names)}  # fmt: skip
    assert rows["conv_bigru"]["parameters"] and rows["conv_bigru"]["error"] is None
    assert "not a known model" in rows["nope"]["error"]
    bad = rows["catalog_user:Conv"]
    assert bad["parameters"] is None and bad["error"], bad


def test_receptive_field_counts_dilations():
    net = nn.Conv1d(2, 1, 3, dilation=4, padding=4)
    net.output_stride = 1  # type: ignore[assignment]
    model = nn.Sequential(net)
    model.output_stride = 1  # type: ignore[assignment]

    class Squeeze(nn.Module):
        output_stride = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return model(x).squeeze(1)

    assert receptive_field(Squeeze(), 2, 101) == (9, False)


@pytest.mark.slow
@pytest.mark.skipif(  # looked up, not imported: the command imports it
    importlib.util.find_spec("braindecode") is None, reason="needs ictal[braindecode]"
)
def test_braindecode_models_are_listed_with_their_exact_reach(tmp_path):
    rows = {r["name"]: r for r in _models(tmp_path, "windows.length_s=10")}
    row = rows["braindecode/EEGNetv4"]
    assert row["source"].startswith("braindecode ") and row["receptive_field_s"] == 5.0
    assert row["output_stride"] == 256 and not row["whole_window"] and row["description"]
    assert {"conv_bigru", "seizure_transformer", "tcn_ssm"} <= set(rows)
