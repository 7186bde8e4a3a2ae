"""The ``evaluate`` and ``detect`` sections: turning a model's probabilities over whole
recordings into scored events, and the ``ictal detect`` service."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field

from ictal.config.base import Section

EvaluateSplit = Literal["dev", "eval", "train"]
EVALUATE_SPLITS: tuple[str, ...] = get_args(EvaluateSplit)  # `ictal evaluate --split` choices
# An operating point by name: SCORER@BUDGET (the threshold tuned on dev for that scorer within
# BUDGET false alarms per 24 h); an export point may also be a bare SCORER (all its budgets).
DEFAULT_POINT = "ovlp@10"
POINT_PATTERN = r"^[a-z_]+@[0-9]+(\.[0-9]+)?$"
EXPORT_PATTERN = r"^[a-z_]+(@[0-9]+(\.[0-9]+)?)?$"


def _point_name(text: str) -> str:
    if not re.fullmatch(POINT_PATTERN, text):
        raise ValueError("give SCORER@BUDGET, e.g. ovlp@10 (OVLP's dev point for 10 FA/24h)")
    return text


def _export_name(text: str) -> str:
    if not re.fullmatch(EXPORT_PATTERN, text):
        raise ValueError("give SCORER (all its tuned budgets) or SCORER@BUDGET, e.g. ovlp@10")
    return text


PointName = Annotated[str, AfterValidator(_point_name)]
ExportName = Annotated[str, AfterValidator(_export_name)]


class EvaluateConfig(Section):
    """Post-processing and scoring of whole recordings."""

    split: EvaluateSplit = "eval"
    """The split `ictal evaluate` scores."""
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Seizure probability from which a sample is in an event (the default operating point)."""
    hysteresis_low: float | None = Field(None, ge=0.0, le=1.0)
    """An event, once started, lasts while the probability stays at or above this (at most
    `threshold`); null: no hysteresis."""
    min_duration_s: float = Field(2.0, ge=0.0)
    """Events shorter than this many seconds are dropped."""
    merge_gap_s: float = Field(0.0, ge=0.0)
    """Events closer than this many seconds are merged."""
    max_event_s: float | None = Field(None, gt=0.0)
    """Events longer than this many seconds are cut into equal pieces; null: no limit."""
    targets_fa_per_24h: tuple[float, ...] = (10.0, 5.0, 2.5, 1.0)
    """False alarms per 24 h at which operating points are chosen on dev."""
    batch_size: int = Field(16, ge=1)
    """Windows per inference batch."""
    export_points: tuple[ExportName, ...] = ("ovlp",)
    """Points the hypotheses are exported at, each in `hyp/<point>_t<threshold>/`: `SCORER`
    (every budget tuned for it) or `SCORER@BUDGET` (docs/evaluation.md, "Exports")."""


class DetectConfig(Section):
    """``ictal detect``: how its record log is written and how ``--watch`` waits for files."""

    workers: int | None = Field(None, ge=1, le=512)
    """Detection worker processes; null: one per usable CPU, at most one per recording to do
    (one: the command does the work itself)."""
    executor: Literal["process", "serial", "ray"] = "process"
    """How recordings are processed: `process` pool, `serial` or `ray`."""
    operating_point: PointName = DEFAULT_POINT
    """The operating point `detect` and `export` use unless told: `SCORER@BUDGET`, the
    threshold tuned on dev for that budget (fallback rule: docs/detect.md)."""
    fsync_s: float = Field(1.0, gt=0.0, le=3600.0)
    """Seconds between group commits (fsync) of the record log."""
    segment_mb: float = Field(16.0, gt=0.0, le=4096.0)
    """A record-log segment is sealed at this size in MB ..."""
    segment_age_s: float = Field(600.0, gt=0.0)
    """... or at this age in seconds."""
    settle_s: float = Field(10.0, ge=0.0)
    """--watch: a file is complete once its size is stable this many seconds."""
    poll_s: float = Field(5.0, gt=0.0)
    """--watch: seconds between listings of the inputs."""
