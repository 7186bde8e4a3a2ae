"""The ``corpus`` section: where the EDF recordings are, their layout, their splits and how
their defects are treated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ictal.config.base import Section
from ictal.roles import PathField, Role

CorpusFormat = Literal["auto", "tusz", "bids"]
SplitName = Literal["train", "dev", "eval"]


class CorpusPolicy(Section):
    """How defects in the corpus are treated; semantic because it changes what is cached."""

    default_role = Role.SEMANTIC
    missing_channels: Literal["error", "interpolate"] = "error"
    """A recording without one of `signal.channels`: refuse it, or interpolate the channel."""
    annotation_overlap: Literal["error", "merge"] = "error"
    """Overlapping seizure rows in an annotation file: refuse the file, or merge them."""
    annotation_out_of_range: Literal["error", "clip"] = "error"
    """Annotation rows past the recording's end: refuse the file, or clip them to it."""
    duration_tolerance_s: float = Field(1.0, ge=0.0, le=60.0)
    """Seconds an annotation may disagree with the EDF's duration before it is a defect."""


class SplitRule(Section):
    """A patient-disjoint split for corpora that carry none (BIDS without a ``split`` column
    in participants.tsv): each subject's split follows from a hash of (seed, subject), so
    adding a subject never moves another one. Enters the source digest (the cache key)."""

    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    """Shares of subjects in train, dev and eval (>= 0, summing to 1)."""
    seed: int = 0
    """Seed of the subject hash; another seed draws another split."""

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
    """The corpus's name (lower case, digits, dashes); recordings and reports carry it."""
    root: PathField[str]
    """Where this corpus is: a local path or an fsspec URL."""
    format: CorpusFormat = "auto"
    """Its layout: `tusz`, `bids`, or `auto` (found from the root)."""
    split: Literal["auto", "train", "dev", "eval"] = "auto"
    """Where its recordings go: `auto` keeps the corpus's own split; a split name sends all."""


class CorpusConfig(Section):
    """Where the EDF corpus lives (local path or fsspec URL), its layout (TUSZ or BIDS, found
    from the root when ``auto``), or several corpora as one mixture (``roots``), and how to
    treat its defects."""

    root: PathField[str] = "data/corpus"
    """The corpus: a local path or an fsspec URL (s3://, gs://...)."""
    format: CorpusFormat = "auto"
    """Its layout: `tusz`, `bids`, or `auto` (found from the root)."""
    roots: tuple[CorpusSource, ...] = ()
    """Several corpora as one mixture, instead of `root` and `format` (docs/corpora.md)."""
    split: SplitRule = SplitRule()
    splits: tuple[SplitName, ...] = ("train", "dev", "eval")
    """The splits that are built and used."""
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
