"""The ``scoring`` section: how scorers score (SzCORE's parameters and pooling; NEDC's are
fixed by v6.0.0), for ``ictal evaluate`` and ``ictal score``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ictal.config.base import Section


class SzcoreScoring(Section):
    """SzCORE scoring; the defaults are those of SzCORE's own evaluator (szcore-evaluation
    0.0.7, timescoring's ``EventScoring.Parameters``)."""

    fs: int = Field(1, ge=1, le=1000)
    """Hz of the masks events are cut into (truncating, as the evaluator does)."""
    tolerance_start_s: float = Field(30.0, ge=0.0)
    """Seconds a detection may start before a reference event and still overlap it."""
    tolerance_end_s: float = Field(60.0, ge=0.0)
    """Seconds a detection may end after a reference event and still overlap it."""
    min_overlap: float = Field(0.0, ge=0.0, lt=1.0)
    """Minimum fraction of a reference event a detection must overlap."""
    max_event_s: float = Field(300.0, gt=0.0)
    """Events longer than this many seconds are split."""
    merge_gap_s: float = Field(90.0, ge=0.0)
    """Events closer than this many seconds are merged."""
    pooling: Literal["recording", "subject"] = "recording"
    """`recording`: counts summed over files; `subject`: rates averaged per subject (the
    SzCORE framework's default)."""


class ScoringConfig(Section):
    """How scorers score: SzCORE's parameters and pooling (NEDC's are fixed by v6.0.0)."""

    szcore: SzcoreScoring = SzcoreScoring()
    """SzCORE's parameters (docs/evaluation.md, "SzCORE rules")."""
