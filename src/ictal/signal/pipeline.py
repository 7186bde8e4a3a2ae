"""One recording from source samples to cache-ready array: rate change and filters, montage,
normalisation.

The rate change and the zero-phase band-pass and notch are one product in the frequency
domain (``signal/spectral.py``). Every step is float32, single-threaded and deterministic:
the same input gives the same output bytes in any process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ictal.corpus.channels import CANONICAL_19
from ictal.signal.montage import apply_montage, montage_channels
from ictal.signal.normalise import clip, normalise
from ictal.signal.spectral import filter_resample

if TYPE_CHECKING:
    from ictal.config import SignalConfig

FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class Preprocessed:
    """A preprocessed recording: time-major data plus what the cache records about it."""

    data: np.ndarray  # (n_samples_out, n_channels), C-contiguous, float16 or float32
    fs: float
    channels: tuple[str, ...]
    stats: dict[str, list[float]]  # per-channel "center" and "scale" of the normalisation
    counts: dict[str, int]  # "clipped_values", "flat_channels"


def at_line_frequency(sig: SignalConfig, mains: float | None) -> SignalConfig:
    """The signal config with its notch at the recording's power-line frequency when one is
    known (a BIDS sidecar's PowerLineFrequency: 50 Hz in Europe, 60 Hz in America) and the
    config has a notch at all; `sig` itself otherwise."""
    if mains is None or sig.notch is None or mains == sig.notch:
        return sig
    return sig.model_copy(update={"notch": mains})


def preprocess(
    x: np.ndarray, fs_in: float, sig: SignalConfig, *, pairs: bool = False
) -> Preprocessed:
    """Turn channel-major (19, n) µV samples at `fs_in` into a cache-ready recording; with
    `pairs`, the rows are already the pairs of the bipolar ``signal.montage`` (a file stored
    bipolar), so no montage is derived (filters are linear: the same result).

    Raises ValueError for input that cannot be preprocessed faithfully: wrong shape,
    non-finite samples, or values outside float16 range when storing float16 unclipped.
    """
    channels = tuple(getattr(sig, "channels", CANONICAL_19))
    if channels != CANONICAL_19:
        raise ValueError(f"signal.channels must be the 19 canonical electrodes, got {channels}")
    rows = len(montage_channels(sig.montage)) if pairs else len(CANONICAL_19)
    if x.ndim != 2 or x.shape[0] != rows:
        raise ValueError(f"expected channel-major ({rows}, n_samples) data, got shape {x.shape}")
    if x.shape[1] < 2:
        raise ValueError(f"recording too short to filter: {x.shape[1]} samples")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("input contains NaN or infinite samples")

    y = filter_resample(
        x,
        fs_in,
        sig.fs,
        bandpass=tuple(sig.bandpass),
        notch=sig.notch,
        notch_q=sig.notch_q,
        notch_harmonics=sig.notch_harmonics,
        order=sig.filter_order,
    )
    if pairs:
        names = montage_channels(sig.montage)
    else:
        y, names = apply_montage(y, sig.montage)
    y, stats = normalise(y, sig.normalisation, inplace=True)
    clipped = clip(y, sig.clip) if sig.clip is not None else 0

    dtype = np.dtype(sig.dtype)
    if dtype == np.float16:
        over = int(np.count_nonzero(y > FLOAT16_MAX)) + int(np.count_nonzero(y < -FLOAT16_MAX))
        if over:
            raise ValueError(
                f"{over} values exceed the float16 range after normalisation; "
                "set signal.clip or signal.dtype=float32"
            )
    data = y.T.astype(dtype, order="C")  # one copy: transpose to time-major and cast
    return Preprocessed(
        data=data,
        fs=float(sig.fs),
        channels=names,
        stats=stats.as_dict(),
        counts={"clipped_values": clipped, "flat_channels": len(stats.flat_channels)},
    )
