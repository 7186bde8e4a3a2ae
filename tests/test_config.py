"""Config loading, overrides, errors and the cache key."""

from __future__ import annotations

import random

import pytest
import yaml

from ictal.config import Config, ConfigError, cache_key, canonical_json, diff_semantic, load_config

DIGEST = "0" * 64


def test_defaults_load_with_required_keys():
    cfg = load_config()
    assert cfg.corpus.root and cfg.cache.root and cfg.runs.root
    assert cfg.signal.fs == 256.0 and cfg.signal.montage == "average"
    assert len(cfg.signal.channels) == 19


def test_yaml_then_overrides_apply_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("signal:\n  fs: 200\ncache:\n  root: /x\n")
    cfg = load_config(path, ["signal.fs=128", "signal.fs=512", "signal.notch=50"])
    assert cfg.signal.fs == 512.0
    assert cfg.signal.notch == 50.0
    assert cfg.cache.root == "/x"


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(None, ["signal.bandpass=[1, 40]", "signal.notch=null"])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path)
    assert again == cfg
    assert yaml.safe_load(path.read_text())["signal"]["bandpass"] == [1.0, 40.0]


@pytest.mark.parametrize(
    ("override", "field", "fragment"),
    [
        ("signal.fs=abc", "signal.fs", "valid number"),
        ("signal.bogus=1", "signal.bogus", "unknown key"),
        ("cache.max_failed_fraction=2", "cache.max_failed_fraction", "less than or equal to 1"),
        ("signal.montage=ring", "signal.montage", "'average'"),
        ("nosuchsection.x=1", "nosuchsection", "unknown key"),
    ],
)
def test_bad_values_name_the_field(override, field, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    text = str(err.value)
    assert field in text and fragment in text


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("signal.fs=abc", "signal.fs"),
        ("train.bogus=1", "train.bogus"),
        ("loader.batch_size=0", "loader.batch_size"),
    ],
)
def test_cli_exits_2_naming_the_field(ictal, override, field):
    res = ictal("build", "--set", override)
    assert res.returncode == 2, res.stderr
    assert field in res.stderr


def test_cli_bad_config_file_exits_2(ictal, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("signal:\n  dtype: float64\n")
    res = ictal("verify", "-c", str(path))
    assert res.returncode == 2
    assert "signal.dtype" in res.stderr and "float16" in res.stderr
    missing = ictal("verify", "-c", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def _shuffled(obj):
    """The same mapping with keys inserted in a random order, recursively."""
    if isinstance(obj, dict):
        items = list(obj.items())
        random.shuffle(items)
        return {k: _shuffled(v) for k, v in items}
    return obj


def test_cache_key_ignores_key_order():
    cfg = Config()
    tree = cfg.model_dump(mode="json")
    for _ in range(5):
        again = Config.model_validate(_shuffled(tree))
        assert cache_key(again, DIGEST) == cache_key(cfg, DIGEST)
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


@pytest.mark.parametrize(
    "override",
    [
        "cache.workers=7",
        "cache.executor=serial",
        "cache.root=/elsewhere",
        "corpus.root=s3://bucket/tusz",
        "runs.root=/tmp/runs",
        "loader.batch_size=512",
        "loader.num_workers=3",
        "train.lr=0.1",
        "windows.length_s=30",
        "windows.stride_s=5",
        "sampler.background=4",
        "evaluate.threshold=0.9",
    ],
)
def test_cache_key_unchanged_by_performance_and_paths(override):
    assert cache_key(load_config(None, [override]), DIGEST) == cache_key(Config(), DIGEST)


@pytest.mark.parametrize(
    "override",
    [
        "signal.fs=200",
        "signal.montage=bipolar",
        "signal.bandpass=[1, 40]",
        "signal.notch=50",
        "signal.notch=null",
        "signal.notch_q=10",
        "signal.filter_order=2",
        "signal.normalisation=zscore",
        "signal.clip=20",
        "signal.dtype=float16",
        "signal.channels=[Fp1, F3]",
        "labels.source=csv",
        "labels.seizure_codes=[fnsz]",
        "corpus.policy.missing_channels=interpolate",
        "corpus.policy.annotation_overlap=merge",
    ],
)
def test_cache_key_changes_with_every_semantic_field(override):
    assert cache_key(load_config(None, [override]), DIGEST) != cache_key(Config(), DIGEST)


def test_cache_key_covers_version_and_source():
    cfg = Config()
    assert cache_key(cfg, DIGEST) != cache_key(cfg, "1" * 64)
    assert cache_key(cfg, DIGEST) != cache_key(cfg, DIGEST, version="ictal-preproc-999")


def test_every_semantic_leaf_moves_the_key():
    """Guard: a new semantic field that forgets the key would fail here."""
    base = Config()
    leaves = diff_semantic(base.semantic(), {})
    assert len(leaves) >= 15
    names = {name for name, _, _ in leaves}
    assert "signal.notch" in names and "corpus.policy.missing_channels" in names


def test_remote_cache_root_is_refused_with_the_reason():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["cache.root=s3://bucket/cache"])
    assert "cache.root" in str(err.value) and "local directory" in str(err.value)
