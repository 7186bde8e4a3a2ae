"""The rate change and the zero-phase band-pass and notch as one product in the frequency
domain, a few channels at a time (float32, deterministic, one thread).

A forward-backward SOS pass (``sosfiltfilt``) applies the squared magnitude ``|H(f)|^2`` of the
band-pass and notch design with zero phase; here that same ``|H|^2`` multiplies each
channel's spectrum, and the rate change is the spectrum cut (or zero-extended) at the new
Nyquist. One FFT forward and one back replace a polyphase resampler and two IIR passes; the
edges are odd-extended first, as ``sosfiltfilt`` pads them, so its start-up transient decays
outside the recording.
"""

from __future__ import annotations

import math

import numpy as np

from ictal.signal.filters import effective_band, squared_response
from ictal.signal.pocketfft import irfft_rows, next_fast_len, rfft_rows
from ictal.signal.resample import resample_ratio, resampled_length

# Channels transformed together: pocketfft runs several rows at once in SIMD lanes (8 float32
# rows is the fastest here, about 3x one row at a time) while memory stays a few rows wide.
CHANNEL_BLOCK = 8


def _pad_for(n: int, fs_in: float, low: float, down: int) -> int:
    """Odd-extension length at the input rate: three periods of the low band edge (as the
    SOS path pads), a multiple of ``down`` so the output starts on a sample, at most n - 1."""
    wanted = math.ceil(3.0 * fs_in / low) if low > 0.0 else 64
    wanted = down * math.ceil(wanted / down)
    room = down * ((n - 1) // down)
    return max(0, min(wanted, room))


def _fill(buf: np.ndarray, row: np.ndarray, pad: int) -> None:
    """Row into ``buf`` at ``pad``: odd extension before it and after it (about its end
    samples), and the end value held beyond the reach of the extension."""
    n = row.shape[0]
    buf[pad : pad + n] = row
    if pad:
        buf[:pad] = 2.0 * row[0] - row[pad:0:-1]
    tail = buf.shape[0] - pad - n
    reach = min(tail, n - 1)
    if reach:
        buf[pad + n : pad + n + reach] = 2.0 * row[-1] - row[-2 : -2 - reach : -1]
    if tail > reach:
        buf[pad + n + reach :] = buf[pad + n + reach - 1] if reach else row[-1]


def filter_resample(
    x: np.ndarray,
    fs_in: float,
    fs_out: float,
    *,
    bandpass: tuple[float, float] = (0.5, 120.0),
    notch: float | None = 60.0,
    notch_q: float = 30.0,
    notch_harmonics: bool = False,
    order: int = 4,
) -> np.ndarray:
    """Channel-major float32 ``(c, n)`` at ``fs_in`` -> ``(c, resampled_length)`` at ``fs_out``,
    band-passed and notched with zero phase (``filters.squared_response`` at
    ``fs_out``), C-contiguous float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"expected channel-major (channels, n >= 2) data, got {x.shape}")
    up, down = resample_ratio(fs_in, fs_out)
    n = x.shape[1]
    n_out = resampled_length(n, fs_in, fs_out)
    band = (float(bandpass[0]), float(bandpass[1]))
    low, _ = effective_band(fs_out, band)
    pad = _pad_for(n, fs_in, low, down)
    blocks = next_fast_len(-(-(n + 2 * pad) // down))
    n_fft_in, n_fft_out = blocks * down, blocks * up
    bins = min(n_fft_in, n_fft_out) // 2 + 1
    freqs = np.arange(bins) * (fs_out / n_fft_out)
    gain = squared_response(freqs, float(fs_out), band, None if notch is None else float(notch),
                            float(notch_q), bool(notch_harmonics), int(order))  # fmt: skip
    gain *= n_fft_out / n_fft_in
    if n_fft_out > n_fft_in and n_fft_in % 2 == 0:
        gain[-1] *= 0.5  # the input's Nyquist bin is shared by both halves of the new band
    gain32 = gain.astype(np.float32)
    start = pad // down * up
    rows = x.shape[0]
    out = np.empty((rows, n_out), dtype=np.float32)
    block = min(CHANNEL_BLOCK, rows)
    buf = np.empty((block, n_fft_in), dtype=np.float32)
    spectrum = np.zeros((block, n_fft_out // 2 + 1), dtype=np.complex64)
    for first in range(0, rows, block):
        k = min(block, rows - first)
        for i in range(k):
            _fill(buf[i], x[first + i], pad)
        full = rfft_rows(buf[:k])
        np.multiply(full[:, :bins], gain32, out=spectrum[:k, :bins])
        y = irfft_rows(spectrum[:k], n_fft_out)
        out[first : first + k] = y[:, start : start + n_out]
    return out
