"""The ``logging`` section: experiment trackers fed from a run's metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ictal.config.base import Section


class WandbConfig(Section):
    """Where W&B runs go; the key, mode and directory come from the environment
    (``WANDB_API_KEY``, ``WANDB_MODE``, ``WANDB_DIR``), never from a file."""

    project: str = "ictal"
    """W&B project."""
    entity: str | None = None
    """W&B entity (team or user); null: the key's default."""


class MlflowConfig(Section):
    """The MLflow experiment; the tracking server or store is ``MLFLOW_TRACKING_URI``."""

    experiment: str = "ictal"
    """MLflow experiment name."""


class LoggingConfig(Section):
    """Experiment trackers fed from the metrics of metrics.jsonl (docs/training.md).
    ``required``: a tracker that cannot start stops the command before training (exit 3);
    false makes that a warning."""

    loggers: tuple[Literal["tensorboard", "wandb", "mlflow"], ...] = ("tensorboard",)
    """Trackers fed: any of `tensorboard`, `wandb`, `mlflow`."""
    required: bool = True
    """A tracker that cannot start stops the command before training (exit 3); false warns."""
    wandb: WandbConfig = WandbConfig()
    mlflow: MlflowConfig = MlflowConfig()

    @model_validator(mode="after")
    def _unique(self) -> LoggingConfig:
        if len(set(self.loggers)) != len(self.loggers):
            raise ValueError(f"loggers must not repeat, got {list(self.loggers)}")
        return self
