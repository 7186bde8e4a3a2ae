"""The sections of a training run: ``windows``, ``sampler``, ``loader``, ``model`` and
``train``. None enters the cache key: changing them needs no rebuild."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ictal.config.base import Section
from ictal.roles import MachineField, ShareField


class WindowsConfig(Section):
    """Virtual training windows; changing them needs no rebuild."""

    length_s: float = Field(60.0, gt=0.0)
    """Window length in seconds."""
    stride_s: float = Field(10.0, gt=0.0)
    """Seconds between the starts of consecutive windows."""
    full_threshold: float = Field(1.0, gt=0.0, le=1.0)
    """Seizure fraction of a window from which it counts as a full-seizure window."""
    edges: Literal["reflect", "none"] = "reflect"
    """`reflect`: a recording is mirrored by half a window at both ends, so its first and last
    seconds sit inside windows, in training and inference alike (docs/training.md, "Recording
    edges"); `none`: the old windowing (ends seen only at a window's edge, tail zero-padded)."""


class SamplerConfig(Section):
    """Balanced sampler ratios relative to the number of partial-seizure windows."""

    partial: float = Field(1.0, ge=0.0)
    """Partial-seizure windows drawn per epoch, as a multiple of their number (the base)."""
    full: float = Field(0.3, ge=0.0)
    """Full-seizure windows drawn per epoch, at most this multiple of the base."""
    background: float = Field(2.5, ge=0.0)
    """Background windows drawn per epoch, at most this multiple of the base."""
    corpus_weights: dict[str, float] = Field(default_factory=dict)
    """A mixture's corpora by name -> share of every class's draw (docs/corpora.md); empty
    draws windows uniformly (a corpus's share follows its size). Unnamed corpora weigh 1."""

    @model_validator(mode="after")
    def _check_weights(self) -> SamplerConfig:
        bad = {k: v for k, v in self.corpus_weights.items() if not v >= 0}
        if bad:
            raise ValueError(f"corpus weights must be >= 0, got {bad}")
        return self


class LoaderConfig(Section):
    """Data loader knobs; None means a sensible default from the machine."""

    batch_size: int = Field(32, ge=1, le=65536)
    """Windows per training step (the global batch with several ranks)."""
    backend: Literal["threads", "processes"] = "threads"
    """`threads`: reader threads in the training process (a window read is a GIL-free
    memcpy); `processes`: torch DataLoader worker processes."""
    num_workers: ShareField[int | None] = Field(None, ge=0, le=256)
    """Reader threads or processes; 0 reads inline; null: from the machine."""
    prefetch_factor: MachineField[int] = Field(4, ge=1, le=64)
    """Batches each reader prepares ahead."""
    persistent_workers: MachineField[bool] = True
    """Keep loader processes alive between epochs (`processes` backend)."""
    timeout_s: MachineField[float] = Field(120.0, ge=0.0)
    """Seconds a batch may take to arrive before the run stops with an error; 0 waits forever."""


class ModelConfig(Section):
    """Model name from the registry and its keyword parameters."""

    name: str = "conv_bigru"
    """A registered model name, an import path `package.module:factory`, an entry point or a
    braindecode model `braindecode/<Class>` (docs/models.md)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Keyword parameters of the model's factory."""


class TrainConfig(Section):
    """Optimisation, checkpointing and monitoring of one training run."""

    epochs: int = Field(10, ge=1)
    """Most epochs to train (early stopping may end sooner: `patience`)."""
    steps_per_epoch: int | None = Field(None, ge=1)
    """Steps per epoch at most; null: as many as the sampler's draw fills."""
    lr: float = Field(1e-3, gt=0.0)
    """Peak learning rate of AdamW (reached after the warm-up, then cosine decay to 0)."""
    weight_decay: float = Field(1e-2, ge=0.0)
    """AdamW weight decay."""
    warmup_fraction: float = Field(0.05, ge=0.0, le=1.0)
    """Linear learning-rate warm-up over this fraction of the run's steps."""
    warmup_steps: int | None = Field(None, ge=0)
    """Warm-up steps, overriding `warmup_fraction`; null: from the fraction. More steps than
    the run has is warned about."""
    grad_clip: float | None = Field(1.0, gt=0.0)
    """Largest gradient norm (clipped above it); null: no clipping."""
    seed: int = 0
    """Seed of the model's initialisation and the sampler's draws."""
    device: MachineField[Literal["auto", "cpu", "cuda"]] = "auto"
    """Where to train: `auto` takes CUDA when there is one."""
    amp: bool = True
    """Mixed precision on CUDA."""
    checkpoint_every_s: MachineField[float] = Field(600.0, gt=0.0)
    """Seconds between checkpoints of `last.pt` within an epoch."""
    heartbeat_s: MachineField[float] = Field(60.0, gt=0.0)
    """Seconds between heartbeats (`heartbeat.json`, what `ictal status` reads)."""
    max_nonfinite_in_a_row: int = Field(10, ge=1)
    """Steps with a non-finite loss in a row before the run stops with an error."""
    patience: int | None = Field(3, ge=1)
    """Early stopping: validations without a gain in dev loss before training stops; null:
    train all `epochs`."""
    data_wait_warn: MachineField[float] = Field(0.3, ge=0.0, le=1.0)
    """Warn when training waits for data more than this fraction of the time."""
    validate_each_epoch: bool = True
    """Validate on dev after each epoch (needed for `best.pt` and early stopping)."""
    threads: ShareField[int | None] = Field(None, ge=1, le=1024)
    """Torch intra-op threads (the run's share of the machine; ictal sweep sets it); null:
    torch's default."""
    gpu_memory_fraction: ShareField[float | None] = Field(None, gt=0.0, le=1.0)
    """Fraction of the GPU's memory the run may take (CUDA only; ictal sweep sets it)."""
    dist_timeout_s: float = Field(300.0, gt=0.0)
    """Several ranks (torchrun, --nproc): seconds a rank may not answer before the job ends
    with an error instead of a hang."""
