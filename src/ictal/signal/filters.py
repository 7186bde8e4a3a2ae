"""The band-pass and mains notch: Butterworth band-pass and notches as configured, and the
squared magnitude response ``signal/spectral.py`` applies with zero phase, as a
forward-backward pass would (cut-offs at -6 dB, the order doubled).
"""

from __future__ import annotations

import math

import numpy as np

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


def _section(b: tuple[float, float, float], a: tuple[float, float, float],
             c1: np.ndarray, c2: np.ndarray) -> np.ndarray:  # fmt: skip
    """``|B(z) / A(z)|^2`` of one biquad on the unit circle, from cos w and cos 2w: for
    ``|b0 + b1 z + b2 z^2|^2 = b0^2 + b1^2 + b2^2 + 2 (b0 b1 + b1 b2) cos w + 2 b0 b2 cos 2w``."""
    num = (b[0] ** 2 + b[1] ** 2 + b[2] ** 2) + 2.0 * (b[0] * b[1] + b[1] * b[2]) * c1
    den = (a[0] ** 2 + a[1] ** 2 + a[2] ** 2) + 2.0 * (a[0] * a[1] + a[1] * a[2]) * c1
    return (num + 2.0 * b[0] * b[2] * c2) / (den + 2.0 * a[0] * a[2] * c2)


def squared_response(
    freqs: np.ndarray,
    fs: float,
    bandpass: tuple[float, float],
    notch: float | None,
    notch_q: float = 30.0,
    notch_harmonics: bool = False,
    order: int = 4,
) -> np.ndarray:
    """``|H(f)|^2`` (float64) of the digital Butterworth band-pass (low-pass when the low edge
    is 0) and the mains notches at ``freqs`` Hz: what a forward-backward pass applies.

    Closed forms of the designs ``scipy.signal.butter(order, band, fs=fs)`` and
    ``iirnotch(f0, notch_q, fs=fs)`` make (edges pre-warped, bilinear transform), so a worker
    never imports ``scipy.signal`` (a third of a second per process); the tests check them
    against scipy's own designs.
    """
    low, high = effective_band(fs, bandpass)
    w = math.pi * np.asarray(freqs, dtype=np.float64) / fs  # half the digital frequency
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = 4.0 * np.tan(w)  # the analog frequency the bilinear transform maps it to
        hi = 4.0 * math.tan(math.pi * high / fs)
        if low > 0.0:
            lo = 4.0 * math.tan(math.pi * low / fs)
            ratio = (omega * omega - lo * hi) / ((hi - lo) * omega)
        else:
            ratio = omega / hi
        out = 1.0 / (1.0 + ratio ** (2 * order))
    out[~np.isfinite(out)] = 0.0  # at 0 Hz for a band-pass: the ratio is infinite
    c1, c2 = np.cos(2.0 * w), np.cos(4.0 * w)
    for f0 in notch_frequencies(fs, notch, notch_harmonics):
        w0 = 2.0 * math.pi * f0 / fs
        gain = 1.0 / (1.0 + math.tan(w0 / notch_q / 2.0))
        b = (gain, -2.0 * gain * math.cos(w0), gain)
        a = (1.0, -2.0 * gain * math.cos(w0), 2.0 * gain - 1.0)
        out *= _section(b, a, c1, c2)
    return out
