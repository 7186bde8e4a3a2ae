"""Config loading, overrides, errors and the cache key."""

from __future__ import annotations

import hashlib
import random

import pytest
import yaml

from ictal.config import (
    PREPROCESSING_VERSION,
    ROLES,
    Config,
    ConfigError,
    Section,
    cache_key,
    canonical_json,
    diff_semantic,
    flatten,
)
from ictal.config_file import load_config
from ictal.roles import MachineField, PathField, Role, field_roles

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


# ------------------------------------------------------------------------------ field roles


def _semantic_by_hand(cfg: Config) -> dict:
    """``Config.semantic`` as it was written before roles were declared on the fields."""
    return {
        "signal": cfg.signal.model_dump(mode="json"),
        "labels": cfg.labels.model_dump(mode="json"),
        "corpus": {"policy": cfg.corpus.policy.model_dump(mode="json")},
    }


def _key_by_hand(cfg: Config, digest: str) -> str:
    payload = {
        "semantic": _semantic_by_hand(cfg),
        "preprocessing_version": PREPROCESSING_VERSION,
        "source": digest,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["signal.fs=200", "signal.notch=null", "signal.channels=[Fp1, F3]"],
        ["signal.bandpass=[1, 40]", "signal.clip=20", "signal.dtype=float16"],
        ["labels.seizure_codes=[fnsz]", "corpus.policy.annotation_overlap=merge"],
        ["corpus.policy.duration_tolerance_s=2.5", "cache.root=/x", "train.lr=0.1"],
        ["corpus.roots=[{name: a, root: /a}, {name: b, root: /b}]", "corpus.split.seed=3"],
        ["model.params={depth: 3}", "sampler.corpus_weights={a: 2}", "sink.url=s3://b/r"],
    ],
)
def test_declared_semantic_fields_give_the_same_key_as_before(overrides):
    cfg = load_config(None, overrides)
    assert cfg.semantic() == _semantic_by_hand(cfg)
    for digest in (DIGEST, "ab" * 32):
        assert cache_key(cfg, digest) == _key_by_hand(cfg, digest)


def test_every_field_has_exactly_one_role():
    roles = field_roles(Config)
    assert all(isinstance(role, Role) for role in roles.values())
    # Every key resume and the trackers see is a field or lies in one (a dict's entries).
    for key in flatten(Config().model_dump(mode="json")):
        assert ROLES.of(key) is not None, key
    assert {k for k, r in roles.items() if r is Role.SEMANTIC} == set(
        flatten(_semantic_by_hand(Config()))
    )
    assert {k for k, r in roles.items() if r is Role.PATH} == {
        "corpus.root",
        "corpus.roots[].root",
        "cache.root",
        "cache.remote",
        "runs.root",
        "sink.url",
    }
    assert (
        ROLES.of("train.lr") is Role.EXPERIMENT
        and ROLES.of("model.params.depth") is Role.EXPERIMENT
    )
    assert ROLES.of("signal") is None and ROLES.of("nosuch.key") is None


def test_a_field_cannot_declare_two_roles():
    class Twice(Section):
        x: MachineField[PathField[int]] = 1

    class Whole(Section):
        inner: PathField[Twice] = Twice.model_construct()

    with pytest.raises(TypeError, match="2 roles"):
        field_roles(Twice)
    with pytest.raises(TypeError, match="is a section"):
        field_roles(Whole)


def test_new_fields_default_to_their_sections_role():
    class Knobs(Section):
        plain: int = 0
        where: PathField[str] = "."

    class Preprocessing(Section):
        default_role = Role.SEMANTIC
        gain: float = 1.0
        where: PathField[str] = "."

    assert field_roles(Knobs) == {"plain": Role.EXPERIMENT, "where": Role.PATH}
    assert field_roles(Preprocessing) == {"gain": Role.SEMANTIC, "where": Role.PATH}


# The hand-written list of runs/resume.py that ROLES.resume_fields() replaces.
MACHINE_FIELDS_BEFORE = (
    "corpus.root",
    "cache.root",
    "cache.workers",
    "cache.executor",
    "runs.root",
    "loader.num_workers",
    "loader.prefetch_factor",
    "loader.persistent_workers",
    "loader.timeout_s",
    "train.device",
    "train.checkpoint_every_s",
    "train.heartbeat_s",
    "train.data_wait_warn",
    "sink.url",
    "sink.every_s",
    "train.threads",
    "train.gpu_memory_fraction",
)


def test_resume_fields_are_the_machine_fields_as_before():
    # cache.remote was missing from the hand-written list: a path, it follows the machine too
    assert ROLES.resume_fields() == frozenset(MACHINE_FIELDS_BEFORE) | {"cache.remote"}


@pytest.mark.parametrize(
    "key",
    [
        "runs.root",
        "train.threads",
        "loader.num_workers",
        "train.gpu_memory_fraction",
        "corpus.root",
        "cache.root",
        "cache.remote",
        "sink.url",
        "runs",  # a whole section holding a path
        "sink",
    ],
)
def test_sweep_may_not_vary_paths_or_a_runs_share(key):
    assert not ROLES.sweep_may_vary(key)


@pytest.mark.parametrize(
    "key",
    [
        "train.lr",
        "train.seed",
        "model.name",
        "model.params.hidden",  # inside a dict-valued field
        "windows.length_s",
        "signal.fs",
        "loader.prefetch_factor",  # a machine knob the sweep does not set
        "corpus.roots",  # the mixture itself is an experiment
        "sampler",
    ],
)
def test_sweep_may_vary_experiment_and_other_fields(key):
    assert ROLES.sweep_may_vary(key)


def _flat_before(tree: dict, prefix: str = "") -> dict:
    """runs/trackers.py's copy before it used ``flatten``: empty mappings vanish."""
    out: dict = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_before(value, name + "."))
        else:
            out[name] = value
    return out


def test_flatten_keeps_or_drops_empty_mappings():
    tree = {"a": {"b": 1, "c": {}, "d": {"e": {}}}, "f": [1, {}], "g": {}}
    assert flatten(tree) == {"a.b": 1, "a.c": {}, "a.d.e": {}, "f": [1, {}], "g": {}}
    assert flatten(tree, keep_empty=False) == _flat_before(tree) == {"a.b": 1, "f": [1, {}]}
    stored = load_config(None, ["model.params={depth: 3}", "sink.url=s3://k:s@b/r"]).stored()
    assert flatten(stored, keep_empty=False) == _flat_before(stored)
    assert flatten(Config().stored(), keep_empty=False) == _flat_before(Config().stored())
