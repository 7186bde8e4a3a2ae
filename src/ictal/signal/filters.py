"""Zero-phase band-pass and mains notch in one forward-backward SOS pass (float32).

Band-pass and notch sections are concatenated into one SOS cascade so the data is read
twice (forward, backward) rather than once per filter; filtfilt makes the phase zero,
squares the magnitude response (cut-offs at -6 dB) and doubles the order.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.signal import butter, iirnotch, sosfiltfilt, tf2sos

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


def _padlen(n: int, fs: float, low: float, n_sections: int) -> int:
    """Odd-extension length: scipy's default or three periods of the low edge if longer, so
    the high-pass start-up transient decays inside the padding rather than the recording."""
    default = 3 * (2 * n_sections + 1)
    wanted = max(default, math.ceil(3.0 * fs / low)) if low > 0.0 else default
    return max(0, min(wanted, n - 1))


def zero_phase_filter(
    x: np.ndarray,
    fs: float,
    bandpass: tuple[float, float] = (0.5, 120.0),
    notch: float | None = 60.0,
    notch_q: float = 30.0,
    notch_harmonics: bool = False,
    order: int = 4,
    axis: int = -1,
) -> np.ndarray:
    """Band-pass and notch `x` along `axis` (time) with zero phase; float32 in, float32 out."""
    x = np.asarray(x, dtype=np.float32)
    band = (float(bandpass[0]), float(bandpass[1]))
    notch_f = None if notch is None else float(notch)
    sos = design_sos(float(fs), band, notch_f, float(notch_q), bool(notch_harmonics), int(order))
    padlen = _padlen(x.shape[axis], fs, band[0], len(sos))
    # A float32 SOS keeps scipy in float32 (a float64 SOS would promote and return float64);
    # the cached design is read-only and scipy's kernel wants a writable buffer: copy it.
    return sosfiltfilt(sos.copy(), x, axis=axis, padtype="odd", padlen=padlen)
