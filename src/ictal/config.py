"""One YAML config: pydantic models with built-in defaults, overrides, canonical JSON, cache key.

The cache key covers the *semantic* fields only (what changes a byte of the cache); paths
and performance knobs never enter it (docs/design.md, invariant 3). Each field's role is
declared where the field is (``Role``); the cache key, ``--resume`` and ``ictal sweep`` follow it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ictal.corpus.channels import CANONICAL_19
from ictal.errors import UsageError
from ictal.roles import FieldRoles, MachineField, PathField, Role, ShareField

# Bump when preprocessing code changes output bytes for the same config: it enters the key.
PREPROCESSING_VERSION = "ictal-preproc-2"  # 2: FFT rate change and filters, docs/cache.md
CACHE_FORMAT_VERSION = 1


class ConfigError(UsageError, ValueError):
    """A config or override that cannot be used; the message names field, value, what is
    allowed (exit 2)."""


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    default_role: ClassVar[Role] = Role.EXPERIMENT


class CorpusPolicy(Section):
    """How defects in the corpus are treated; semantic because it changes what is cached."""

    default_role = Role.SEMANTIC
    missing_channels: Literal["error", "interpolate"] = "error"
    annotation_overlap: Literal["error", "merge"] = "error"
    annotation_out_of_range: Literal["error", "clip"] = "error"
    duration_tolerance_s: float = Field(1.0, ge=0.0, le=60.0)


CorpusFormat = Literal["auto", "tusz", "bids"]
SplitName = Literal["train", "dev", "eval"]


class SplitRule(Section):
    """A patient-disjoint split for corpora that carry none (BIDS without a ``split`` column
    in participants.tsv): each subject's split follows from a hash of (seed, subject), so
    adding a subject never moves another one. Enters the source digest (the cache key)."""

    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, dev, eval
    seed: int = 0

    @model_validator(mode="after")
    def _check_fractions(self) -> SplitRule:
        if any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1.0) > 1e-6:
            raise ValueError(
                f"fractions (train, dev, eval) must be >= 0 and sum to 1, got {self.fractions}"
            )
        return self


class CorpusSource(Section):
    """One corpus of a mixture: its name (recordings carry it), where it is, its layout and
    which split its recordings go to (``auto``: the corpus's own; ``eval``: all held out)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    root: PathField[str]
    format: CorpusFormat = "auto"
    split: Literal["auto", "train", "dev", "eval"] = "auto"


class CorpusConfig(Section):
    """Where the EDF corpus lives (local path or fsspec URL), its layout (TUSZ or BIDS, found
    from the root when ``auto``), or several corpora as one mixture (``roots``), and how to
    treat its defects."""

    root: PathField[str] = "data/corpus"
    format: CorpusFormat = "auto"
    roots: tuple[CorpusSource, ...] = ()
    split: SplitRule = SplitRule()
    splits: tuple[SplitName, ...] = ("train", "dev", "eval")
    policy: CorpusPolicy = CorpusPolicy()

    @model_validator(mode="after")
    def _check_roots(self) -> CorpusConfig:
        default = CorpusConfig.model_fields
        if self.roots and (
            self.root != default["root"].default or self.format != default["format"].default
        ):
            raise ValueError(
                "set corpus.root (one corpus) or corpus.roots (a mixture), not both; a "
                "mixture gives each corpus its own root and format"
            )
        names = [s.name for s in self.roots]
        if len(set(names)) != len(names):
            raise ValueError(f"corpus.roots names must be unique, got {names}")
        return self


class SignalConfig(Section):
    """Preprocessing applied once at build time; every field is semantic."""

    default_role = Role.SEMANTIC
    channels: tuple[str, ...] = CANONICAL_19
    fs: float = Field(256.0, gt=0.0, le=4096.0)
    montage: Literal["average", "referential", "bipolar", "tcp"] = "average"
    bandpass: tuple[float, float] = (0.5, 120.0)
    notch: float | None = Field(60.0, gt=0.0)
    notch_q: float = Field(30.0, gt=0.0)
    notch_harmonics: bool = False
    filter_order: int = Field(4, ge=1, le=10)
    normalisation: Literal["robust", "zscore", "none"] = "robust"
    clip: float | None = Field(None, gt=0.0)
    dtype: Literal["float16", "float32"] = "float32"

    @model_validator(mode="after")
    def _check_band(self) -> SignalConfig:
        low, high = self.bandpass
        if not 0.0 <= low < high:
            raise ValueError(f"bandpass must satisfy 0 <= low < high, got {self.bandpass}")
        return self


class LabelsConfig(Section):
    """Which annotation files give the labels and the accepted seizure vocabulary."""

    default_role = Role.SEMANTIC
    source: Literal["csv_bi", "csv"] = "csv_bi"
    seizure_codes: tuple[str, ...] = (
        "fnsz", "gnsz", "spsz", "cpsz", "absz", "tnsz", "cnsz", "tcsz", "atsz", "mysz",
    )  # fmt: skip


class CacheConfig(Section):
    """Where caches live (one root; the key subdirectory is derived) and build knobs."""

    root: PathField[str] = "data/cache"
    # Where `ictal publish` puts committed caches and `ictal stage` fetches them (any fsspec
    # URL: s3://bucket/caches, gs://..., a shared path); <remote>/<key16>/ per cache.
    remote: PathField[str | None] = None
    workers: MachineField[int | None] = Field(None, ge=1, le=512)

    executor: MachineField[Literal["process", "serial", "ray"]] = "process"
    max_failed_fraction: float = Field(0.05, ge=0.0, le=1.0)
    retry_failed: bool = False

    @model_validator(mode="after")
    def _local_root(self) -> CacheConfig:
        if "://" in self.root:
            raise ValueError(
                f"cache.root must be a local directory (arrays are memory-mapped), got "
                f"{self.root!r}; put the remote location in cache.remote and run `ictal stage`"
            )
        return self


class RunsConfig(Section):
    """Where run directories are written."""

    root: PathField[str] = "runs"


class WindowsConfig(Section):
    """Virtual training windows; changing them needs no rebuild."""

    length_s: float = Field(60.0, gt=0.0)
    stride_s: float = Field(10.0, gt=0.0)
    full_threshold: float = Field(1.0, gt=0.0, le=1.0)
    # reflect: windows also hang half a window over each end of a recording, mirrored, in
    # training and inference alike (docs/training.md, "Recording edges"); none: the old way.
    edges: Literal["reflect", "none"] = "reflect"


class SamplerConfig(Section):
    """Balanced sampler ratios relative to the number of partial-seizure windows."""

    partial: float = Field(1.0, ge=0.0)
    full: float = Field(0.3, ge=0.0)
    background: float = Field(2.5, ge=0.0)
    # A mixture's corpora by name -> share of every class's draw (docs/corpora.md); empty
    # draws windows uniformly (a corpus's share follows its size). Unnamed corpora weigh 1.
    corpus_weights: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_weights(self) -> SamplerConfig:
        bad = {k: v for k, v in self.corpus_weights.items() if not v >= 0}
        if bad:
            raise ValueError(f"corpus weights must be >= 0, got {bad}")
        return self


class LoaderConfig(Section):
    """Data loader knobs; None means a sensible default from the machine."""

    batch_size: int = Field(32, ge=1, le=65536)
    # threads: reader threads in the training process (a window read is a GIL-free memcpy);
    # processes: torch DataLoader worker processes. num_workers counts either; 0 reads inline.
    backend: Literal["threads", "processes"] = "threads"
    num_workers: ShareField[int | None] = Field(None, ge=0, le=256)
    prefetch_factor: MachineField[int] = Field(4, ge=1, le=64)
    persistent_workers: MachineField[bool] = True
    timeout_s: MachineField[float] = Field(120.0, ge=0.0)


class ModelConfig(Section):
    """Model name from the registry and its keyword parameters."""

    name: str = "conv_bigru"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(Section):
    """Optimisation, checkpointing and monitoring of one training run."""

    epochs: int = Field(10, ge=1)
    steps_per_epoch: int | None = Field(None, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-2, ge=0.0)
    warmup_steps: int = Field(100, ge=0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    seed: int = 0
    device: MachineField[Literal["auto", "cpu", "cuda"]] = "auto"
    amp: bool = True
    checkpoint_every_s: MachineField[float] = Field(600.0, gt=0.0)
    heartbeat_s: MachineField[float] = Field(60.0, gt=0.0)
    max_nonfinite_in_a_row: int = Field(10, ge=1)
    patience: int | None = Field(None, ge=1)
    data_wait_warn: MachineField[float] = Field(0.3, ge=0.0, le=1.0)
    validate_each_epoch: bool = True
    # The run's share of a shared machine (ictal sweep sets them): torch intra-op threads
    # (None: torch's default) and the fraction of the GPU's memory it may take (CUDA only).
    threads: ShareField[int | None] = Field(None, ge=1, le=1024)
    gpu_memory_fraction: ShareField[float | None] = Field(None, gt=0.0, le=1.0)
    # Several ranks (torchrun, --nproc): a rank that does not answer for this long ends the
    # job with an error instead of a hang.
    dist_timeout_s: float = Field(300.0, gt=0.0)


EvaluateSplit = Literal["dev", "eval", "train"]
EVALUATE_SPLITS: tuple[str, ...] = get_args(EvaluateSplit)  # `ictal evaluate --split` choices


class EvaluateConfig(Section):
    """Post-processing and scoring of whole recordings."""

    split: EvaluateSplit = "eval"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    hysteresis_low: float | None = Field(None, ge=0.0, le=1.0)
    min_duration_s: float = Field(2.0, ge=0.0)
    merge_gap_s: float = Field(0.0, ge=0.0)
    max_event_s: float | None = Field(None, gt=0.0)
    targets_fa_per_24h: tuple[float, ...] = (10.0, 5.0, 2.5, 1.0)
    batch_size: int = Field(16, ge=1)


class DetectConfig(Section):
    """``ictal detect``: how its record log is written and how ``--watch`` waits for files."""

    workers: int | None = Field(None, ge=1, le=512)  # None: one per usable CPU
    executor: Literal["process", "serial", "ray"] = "process"
    fsync_s: float = Field(1.0, gt=0.0, le=3600.0)  # group commit of the record log
    segment_mb: float = Field(16.0, gt=0.0, le=4096.0)  # a segment is sealed at this size
    segment_age_s: float = Field(600.0, gt=0.0)  # ... or this age
    settle_s: float = Field(10.0, ge=0.0)  # --watch: a file is complete once its size is stable
    poll_s: float = Field(5.0, gt=0.0)  # --watch: how often the inputs are listed


class RayConfig(Section):
    """The Ray executor of build and detect (``--executor ray``; ``pip install 'ictal[ray]'``)."""

    address: str | None = None  # auto, host:port or ray://host:port; None starts a local Ray
    cpus_per_task: float = Field(1.0, gt=0.0, le=256.0)
    memory_gb_per_task: float | None = Field(None, gt=0.0)
    max_retries: int = Field(3, ge=0, le=100)  # a task whose worker died is run again


class SweepConfig(Section):
    """``ictal sweep``: how runs are admitted on one machine (the budget is given by flags)."""

    ramp_steps: int = Field(20, ge=1)  # a run is measured once past this many steps ...
    poll_s: float = Field(0.5, gt=0.0)  # ... or its first validation; usage polled this often
    memory_floor_gb: float = Field(1.0, ge=0.0)  # no run is admitted under this free memory
    memory_fraction: float = Field(0.8, gt=0.0, le=1.0)  # default memory budget
    gpu_memory_fraction: float = Field(0.9, gt=0.0, le=1.0)  # default GPU memory budget


class SinkConfig(Section):
    """Where long commands push their run directory while they run (any fsspec URL: s3://,
    gs://, a path); None keeps runs local. Credentials come from the environment."""

    url: PathField[str | None] = None
    every_s: MachineField[float] = Field(60.0, gt=0.0, le=86400.0)


class WandbConfig(Section):
    """Where W&B runs go; the key, mode and directory come from the environment
    (``WANDB_API_KEY``, ``WANDB_MODE``, ``WANDB_DIR``), never from a file."""

    project: str = "ictal"
    entity: str | None = None


class MlflowConfig(Section):
    """The MLflow experiment; the tracking server or store is ``MLFLOW_TRACKING_URI``."""

    experiment: str = "ictal"


class LoggingConfig(Section):
    """Experiment trackers fed from the metrics of metrics.jsonl (docs/training.md).
    ``required``: a tracker that cannot start stops the command before training (exit 3);
    false makes that a warning."""

    loggers: tuple[Literal["tensorboard", "wandb", "mlflow"], ...] = ("tensorboard",)
    required: bool = True
    wandb: WandbConfig = WandbConfig()
    mlflow: MlflowConfig = MlflowConfig()

    @model_validator(mode="after")
    def _unique(self) -> LoggingConfig:
        if len(set(self.loggers)) != len(self.loggers):
            raise ValueError(f"loggers must not repeat, got {list(self.loggers)}")
        return self


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


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, no NaN; same object -> same string."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def cache_key(cfg: Config, source_digest: str, version: str = PREPROCESSING_VERSION) -> str:
    """sha256 of the semantic config, the preprocessing version and the source digest."""
    payload = {
        "semantic": cfg.semantic(),
        "preprocessing_version": version,
        "source": source_digest,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set tree[a][b][c] = value for 'a.b.c', creating dicts on the way."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def flatten(tree: dict[str, Any], prefix: str = "", *, keep_empty: bool = True) -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; used to diff configs field by field. An empty mapping is
    a leaf ``{}`` with ``keep_empty``, else it has no entry (tracker parameters)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and (v or not keep_empty):
            out.update(flatten(v, key + ".", keep_empty=keep_empty))
        else:
            out[key] = v
    return out


def diff_semantic(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Fields whose values differ between two semantic dicts: (field, a value, b value)."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]
