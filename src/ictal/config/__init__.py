"""One YAML config: pydantic sections with built-in defaults, each in the module of its
concept, and the whole ``Config`` with its cache key. Everything is importable from here
(``from ictal.config import Config``); docs/configuration.md is generated from the field
docstrings (``ictal config --markdown``)."""

from ictal.config.base import ConfigError, Section
from ictal.config.corpus import (
    CorpusConfig,
    CorpusFormat,
    CorpusPolicy,
    CorpusSource,
    SplitName,
    SplitRule,
)
from ictal.config.execution import RayConfig, SweepConfig
from ictal.config.inference import (
    DEFAULT_POINT,
    EVALUATE_SPLITS,
    EXPORT_PATTERN,
    POINT_PATTERN,
    DetectConfig,
    EvaluateConfig,
    EvaluateSplit,
)
from ictal.config.preprocess import LabelsConfig, SignalConfig
from ictal.config.scoring import ScoringConfig, SzcoreScoring
from ictal.config.storage import CacheConfig, RunsConfig, SinkConfig
from ictal.config.trackers import LoggingConfig, MlflowConfig, WandbConfig
from ictal.config.training import (
    LoaderConfig,
    ModelConfig,
    SamplerConfig,
    TrainConfig,
    WindowsConfig,
)
from ictal.config.tree import canonical_json, diff_semantic, flatten, set_dotted
from ictal.config.whole import (
    CACHE_FORMAT_VERSION,
    PREPROCESSING_VERSION,
    ROLES,
    Config,
    cache_key,
)

__all__ = [
    "CACHE_FORMAT_VERSION", "DEFAULT_POINT", "EVALUATE_SPLITS", "EXPORT_PATTERN", "POINT_PATTERN",
    "PREPROCESSING_VERSION", "ROLES", "CacheConfig", "Config", "ConfigError", "CorpusConfig",
    "CorpusFormat", "CorpusPolicy", "CorpusSource", "DetectConfig", "EvaluateConfig",
    "EvaluateSplit", "LabelsConfig", "LoaderConfig", "LoggingConfig", "MlflowConfig",
    "ModelConfig", "RayConfig", "RunsConfig", "SamplerConfig", "ScoringConfig", "Section",
    "SignalConfig", "SinkConfig", "SplitName", "SplitRule", "SweepConfig", "SzcoreScoring",
    "TrainConfig", "WandbConfig", "WindowsConfig", "cache_key", "canonical_json", "diff_semantic",
    "flatten", "set_dotted",
]  # fmt: skip
