"""The band-pass and mains notch design: one SOS cascade (Butterworth band-pass, notches).

``signal/spectral.py`` applies its squared magnitude with zero phase, as a forward-backward
pass would (cut-offs at -6 dB, the order doubled).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.signal import butter, iirnotch, tf2sos

# Highest usable band edge as a fraction of fs: a Butterworth edge at or near Nyquist is
# not realisable, so a configured high edge above 0.45 * fs (e.g. 120 Hz at 250 Hz) is
# clamped to 0.45 * fs, keeping a 10 % transition band below Nyquist.
HIGH_EDGE_FRACTION = 0.45


def effective_band(fs: float, bandpass: tuple[float, float]) -> tuple[float, float]:
    """The (low, high) edges actually used at rate `fs`: high clamped to 0.45 * fs."""
    low, high = float(bandpass[0]), min(float(bandpass[1]), HIGH_EDGE_FRACTION * fs)
    if not 0.0 <= low < high:
        raise ValueError(f"band {bandpass} Hz is empty at fs={fs} Hz (high edge clamped to {high})")
    return low, high


def notch_frequencies(fs: float, notch: float | None, harmonics: bool = False) -> tuple[float, ...]:
    """Mains frequencies to notch below Nyquist; none if `notch` is None or >= fs / 2."""
    if notch is None:
        return ()
    count = max(0, math.ceil(fs / 2 / notch) - 1) if harmonics else int(notch < fs / 2)
    return tuple(notch * k for k in range(1, count + 1))


@lru_cache(maxsize=64)
def design_sos(
    fs: float,
    bandpass: tuple[float, float],
    notch: float | None,
    notch_q: float = 30.0,
    notch_harmonics: bool = False,
    order: int = 4,
) -> np.ndarray:
    """Read-only float32 SOS cascade: Butterworth band-pass (low-pass if low == 0) + notches.

    Cached per (fs, parameters) because every recording at one rate uses the same design.
    """
    low, high = effective_band(fs, bandpass)
    if low > 0.0:
        sections = [butter(order, [low, high], btype="bandpass", fs=fs, output="sos")]
    else:
        sections = [butter(order, high, btype="lowpass", fs=fs, output="sos")]
    for f0 in notch_frequencies(fs, notch, notch_harmonics):
        b, a = iirnotch(f0, notch_q, fs=fs)
        sections.append(tf2sos(b, a))
    sos = np.vstack(sections).astype(np.float32)
    sos.flags.writeable = False
    return sos
