"""The whole config: one field per section, the semantic part, the stored form, the cache key.

The cache key covers the *semantic* fields only (what changes a byte of the cache); paths
and performance knobs never enter it (docs/design.md, invariant 3). Each field's role is
declared where the field is (``Role``); the cache key, ``--resume`` and ``ictal sweep`` follow it.
A new section is a class in its own module and one line here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from ictal.config.base import Section
from ictal.config.corpus import CorpusConfig
from ictal.config.execution import RayConfig, SweepConfig
from ictal.config.inference import DetectConfig, EvaluateConfig
from ictal.config.preprocess import LabelsConfig, SignalConfig
from ictal.config.scoring import ScoringConfig
from ictal.config.storage import CacheConfig, RunsConfig, SinkConfig
from ictal.config.trackers import LoggingConfig
from ictal.config.training import (
    LoaderConfig,
    ModelConfig,
    SamplerConfig,
    TrainConfig,
    WindowsConfig,
)
from ictal.config.tree import canonical_json, set_dotted
from ictal.roles import FieldRoles, Role

# Bump when preprocessing code changes output bytes for the same config: it enters the key.
PREPROCESSING_VERSION = "ictal-preproc-2"  # 2: FFT rate change and filters, docs/cache.md
CACHE_FORMAT_VERSION = 1


class Config(Section):
    """The whole Ictal configuration."""

    corpus: CorpusConfig = CorpusConfig()
    signal: SignalConfig = SignalConfig()
    labels: LabelsConfig = LabelsConfig()
    cache: CacheConfig = CacheConfig()
    runs: RunsConfig = RunsConfig()
    windows: WindowsConfig = WindowsConfig()
    sampler: SamplerConfig = SamplerConfig()
    loader: LoaderConfig = LoaderConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    scoring: ScoringConfig = ScoringConfig()
    detect: DetectConfig = DetectConfig()
    sweep: SweepConfig = SweepConfig()
    ray: RayConfig = RayConfig()
    sink: SinkConfig = SinkConfig()
    logging: LoggingConfig = LoggingConfig()

    def semantic(self) -> dict[str, Any]:
        """The fields that change a byte of the cache (role ``semantic``: signal, labels and
        corpus policy), nested as in the config; the cache key is computed from it."""
        dumped = self.model_dump(mode="json")
        tree: dict[str, Any] = {}
        for name in ROLES.named(Role.SEMANTIC):
            value = dumped
            for part in name.split("."):
                value = value[part]
            set_dotted(tree, name, value)
        return tree

    def stored(self) -> dict[str, Any]:
        """The resolved config as stored in run files and checkpoints: credentials in URLs
        are masked (they belong in the environment, never in a file)."""
        from ictal.io.redact import redact_tree

        return redact_tree(self.model_dump(mode="json"))

    def to_yaml(self) -> str:
        """The resolved config as YAML for run directories (round-trips through load_config;
        credentials masked)."""
        return yaml.safe_dump(self.stored(), sort_keys=False)


ROLES = FieldRoles(Config)  # every field's role, and the rules derived from them


def cache_key(cfg: Config, source_digest: str, version: str = PREPROCESSING_VERSION) -> str:
    """sha256 of the semantic config, the preprocessing version and the source digest."""
    payload = {
        "semantic": cfg.semantic(),
        "preprocessing_version": version,
        "source": source_digest,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
