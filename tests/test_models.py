"""Detector and registry: output rate, shapes, gradients to every parameter, clear errors."""

import pytest
import torch
from torch import nn

from ictal.models import available, build_model, register, registry
from ictal.models.detector import (
    output_stride,
    pool_targets,
    split_stride,
)


def check_all_parameters_get_gradients(model: nn.Module, example_input: torch.Tensor) -> None:
    """Raise if a backward pass leaves any trainable parameter without a finite, nonzero grad.

    Catches layers that are built but not wired into ``forward`` (silently untrained).
    """
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(example_input)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out)
    (out * weights).sum().backward()
    missing = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad
        and (p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0)
    ]
    model.zero_grad(set_to_none=True)
    if missing:
        raise AssertionError(f"parameters without a usable gradient: {', '.join(missing)}")


def test_output_is_one_logit_per_second_for_60s_at_256hz():
    model = build_model("conv_bigru", n_channels=19, fs=256)
    assert model.output_stride == 256
    out = model(torch.randn(2, 19, 60 * 256))
    assert out.shape == (2, 60) and out.dtype == torch.float32
    assert model(torch.randn(1, 19, 60 * 256 + 100)).shape == (1, 60)  # floor(W / stride)


def test_other_rates_and_sizes():
    model = build_model(
        "conv_bigru", n_channels=4, fs=250, out_hz=2, width=8, gru_hidden=8, gru_layers=2
    )
    assert model.output_stride == 125
    assert model(torch.randn(3, 4, 1000)).shape == (3, 8)


def test_strides_factor_the_output_stride():
    assert split_stride(256) == [4, 4, 4, 4]
    assert split_stride(250) == [5, 5, 5, 2]
    assert split_stride(512) == [4, 4, 4, 4, 2]
    with pytest.raises(ValueError, match="integer"):
        output_stride(250, 3)
    with pytest.raises(ValueError, match="prime factor 251"):
        split_stride(251)
    with pytest.raises(ValueError, match="multiply"):
        build_model("conv_bigru", n_channels=2, fs=256, strides=[4, 4])


def test_every_parameter_gets_a_gradient():
    model = build_model("conv_bigru", n_channels=19, fs=256, width=8, gru_hidden=8)
    check_all_parameters_get_gradients(model, torch.randn(2, 19, 8 * 256))


def test_gradient_check_catches_an_unwired_layer():
    class Unwired(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(4, 1), nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(AssertionError, match=r"unused\.weight, unused\.bias"):
        check_all_parameters_get_gradients(Unwired(), torch.randn(3, 4))


def test_pool_targets_gives_the_seizure_fraction_per_step():
    y = torch.tensor([[0.0, 0, 1, 1, 1, 1, 1, 0, 1]])
    torch.testing.assert_close(pool_targets(y, 4), torch.tensor([[0.5, 0.75]]))


def test_registry_lists_names_in_errors(monkeypatch):
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))  # keep it local
    assert "conv_bigru" in available()
    with pytest.raises(
        ValueError, match=r"model.name='nope' is not a known model; available: .*conv_bigru"
    ):
        build_model("nope", n_channels=19, fs=256)

    @register("tiny_test_model")
    def tiny(*, n_channels: int, fs: float, hidden: int = 3) -> nn.Module:
        return nn.Conv1d(n_channels, hidden, 1)

    assert build_model("tiny_test_model", n_channels=2, fs=1, hidden=5).out_channels == 5
    with pytest.raises(ValueError, match="already registered"):
        register("tiny_test_model")(lambda **kw: nn.Identity())


@pytest.mark.parametrize("name", ["os:system", "subprocess:run", "antigravity:fly", "x:"])
def test_a_model_name_never_reaches_the_standard_library(name: str) -> None:
    """model.name comes from configs and from checkpoints (untrusted): an import path into
    Python's standard library is refused before anything is imported or called."""
    import sys

    from ictal.config import ConfigError
    from ictal.models.registry import resolve

    before = set(sys.modules)
    with pytest.raises(ConfigError):
        resolve(name)
    assert "antigravity" not in set(sys.modules) - before


# An installed package's callables a checkpoint may name: none is a model factory.
NOT_MODELS = ["torch.hub:load", "fsspec:open_files", "numpy:load", "torch.nn.functional:relu",
              "torch:Tensor", "torch.nn:Module.__init__", "subprocess:run",
              "builtins:exec"]  # fmt: skip


@pytest.mark.parametrize("name", NOT_MODELS)
def test_even_trusted_code_must_be_a_model_factory(name: str) -> None:
    """With every trust given, a function that is not marked, a class that is no nn.Module,
    a dunder or the standard library is refused before it is called."""
    from ictal.models.registry import NotAModel, resolve
    from ictal.models.trust import ModelTrust

    with pytest.raises(NotAModel):
        resolve(name, ModelTrust(any_code=True, any_version=True))


@pytest.mark.slow
def test_an_import_path_is_imported_only_when_trusted(tmp_path, monkeypatch) -> None:
    """A module that acts when imported: a checkpoint naming it is refused (exit 3) before
    the import; the user naming it, or --trust-model-code, lets it load; a marked function
    and an nn.Module subclass are factories, an unmarked function is not."""
    import sys

    from ictal.models.registry import NotAModel, find, resolve
    from ictal.models.trust import ModelTrust, UntrustedModelCode

    (tmp_path / "acts_on_import.py").write_text(
        "import ictal.models\nfrom torch import nn\nIMPORTED = True\n"
        "class Net(nn.Module):\n    pass\n"
        "@ictal.models.factory\ndef marked(n_channels, fs):\n    return Net()\n"
        "def plain(n_channels, fs):\n    return Net()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for attr in ("Net", "marked", "plain"):
        name = f"acts_on_import:{attr}"
        assert find(name).source.kind == "import" and "acts_on_import" not in sys.modules
        with pytest.raises(UntrustedModelCode, match="--trust-model-code") as refused:
            resolve(name, ModelTrust(named="conv_bigru"), "checkpoint x.pt")
        assert refused.value.exit_code == 3 and "acts_on_import" not in sys.modules
    try:
        assert resolve("acts_on_import:Net", ModelTrust(named="acts_on_import:Net"))[0]
        assert resolve("acts_on_import:marked", ModelTrust(any_code=True))[0]
        with pytest.raises(NotAModel, match=r"@ictal\.models\.factory"):
            resolve("acts_on_import:plain", ModelTrust(any_code=True))
    finally:
        sys.modules.pop("acts_on_import", None)


@pytest.mark.parametrize("name", ["a:b:c", "x:", ":y", ".rel:f", "a..b:f", "a:__class__",
                                  "pkg:f; rm -rf", "import:f"])  # fmt: skip
def test_an_import_path_that_is_no_path_is_refused_as_text(name: str) -> None:
    from ictal.config import ConfigError
    from ictal.models.registry import resolve
    from ictal.models.trust import ModelTrust

    with pytest.raises(ConfigError):
        resolve(name, ModelTrust(any_code=True))


def test_conv_bigru_bounds_what_untrusted_params_ask_of_it() -> None:
    """Sizes and rates from a checkpoint's params are bounded before anything is built; a
    large prime output stride factors at once instead of counting to it."""
    from ictal.config import ConfigError

    for params in ({"width": 10**9}, {"gru_layers": 10**6}, {"strides": [1] * 1000},
                   {"out_hz": 1e-300}, {"out_hz": 0.0}, {"width": "8"}):  # fmt: skip
        with pytest.raises(ConfigError):
            build_model("conv_bigru", n_channels=19, fs=256, **params)
    with pytest.raises(ValueError, match="prime factor 1000003"):
        split_stride(1000003)


def test_construct_takes_any_parameter_name_but_the_datas_shape() -> None:
    from ictal.config import ConfigError
    from ictal.models.registry import construct

    def builder(n_channels: int, fs: float, name: str = "") -> nn.Module:
        return nn.Identity()

    assert isinstance(construct(builder, "m", 2, 1.0, {"name": "x"}), nn.Identity)
    for params in ({"fs": 1}, {"n_channels": 3}, [1, 2]):
        with pytest.raises(ConfigError):
            construct(builder, "m", 2, 1.0, params)  # type: ignore[arg-type]


def test_a_detect_task_trusts_nothing_unless_told() -> None:
    """A worker's task carries the coordinator's decision; made without one it trusts only
    registered models and entry points."""
    from ictal.detect.task import Task
    from ictal.models.trust import ModelTrust

    fields = {f: None for f in Task.__dataclass_fields__ if f not in ("batch_size",
              "save_probs", "trust")}  # fmt: skip
    assert Task(**fields).trust == ModelTrust()  # type: ignore[arg-type]
    assert not ModelTrust().allows("x:y") and ModelTrust(named="x:y").allows("x:y")
