"""The ``signal`` and ``labels`` sections: what the cache build does to every recording and
its annotations. Every field is semantic: it enters the cache key."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ictal.config.base import Section
from ictal.corpus.channels import CANONICAL_19
from ictal.roles import Role


class SignalConfig(Section):
    """Preprocessing applied once at build time; every field is semantic."""

    default_role = Role.SEMANTIC
    channels: tuple[str, ...] = CANONICAL_19
    """The EEG channels kept, in this order (10-20 names)."""
    fs: float = Field(256.0, gt=0.0, le=4096.0)
    """The sampling rate every recording is resampled to, in Hz."""
    montage: Literal["average", "referential", "bipolar", "tcp"] = "average"
    """The montage: `average` reference, `referential`, `bipolar` or `tcp`."""
    bandpass: tuple[float, float] = (0.5, 120.0)
    """Band-pass edges, low and high, in Hz."""
    notch: float | None = Field(60.0, gt=0.0)
    """Mains notch frequency in Hz; null for none."""
    notch_q: float = Field(30.0, gt=0.0)
    """Quality factor of the notch (higher is narrower)."""
    notch_harmonics: bool = False
    """Also notch the harmonics of `notch` below the Nyquist frequency."""
    filter_order: int = Field(4, ge=1, le=10)
    """Order of the Butterworth band-pass."""
    normalisation: Literal["robust", "zscore", "none"] = "robust"
    """Per-channel scaling: `robust` (median/IQR), `zscore` or `none`."""
    clip: float | None = Field(None, gt=0.0)
    """Clip normalised samples to +-this value; null for no clipping."""
    dtype: Literal["float16", "float32"] = "float32"
    """How samples are stored in the cache."""

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
    """TUSZ annotation files read: `csv_bi` (one seizure track) or `csv` (per channel)."""
    seizure_codes: tuple[str, ...] = (
        "fnsz", "gnsz", "spsz", "cpsz", "absz", "tnsz", "cnsz", "tcsz", "atsz", "mysz",
    )  # fmt: skip
    """Annotation labels that count as seizure; any other label is background."""
