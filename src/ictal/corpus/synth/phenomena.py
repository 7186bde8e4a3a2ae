"""Realistic and hard EEG: seizures with onset patterns, evolution and fields, post-ictal
slowing, artifacts, benign rhythms and sleep, over the patient's own background (µV)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.fft

from ictal.corpus.synth.difficulty import Lookalike, Traits
from ictal.corpus.synth.easy import ALPHA_WEIGHTS, BLINK_WEIGHTS, add_bumps
from ictal.corpus.synth.plans import POSITIONS, EventPlan, FilePlan

# Eye and anterior temporal electrodes some headers carry besides the 10-20 ones.
EXTRA_POSITIONS = {"ROC": (1.6, 2.4), "LOC": (-1.6, 2.4), "T1": (-2.6, 0.7), "T2": (2.6, 0.7)}
SIDES = {"left": -1.0, "right": 1.0}
# Horizontal eye movements: the two sides of the head swing in opposite directions.
EYE_WEIGHTS = {"F7": 1.0, "F8": -1.0, "LOC": 1.3, "ROC": -1.3, "FP1": 0.5, "FP2": -0.5}


class Canvas:
    """The EEG-like traces of one recording being drawn, with each trace's scalp position."""

    def __init__(self, names: Sequence[str], fs: int, n: int) -> None:
        self.names, self.fs, self.n = list(names), fs, n
        known = {**POSITIONS, **EXTRA_POSITIONS}
        self.pos = np.array([known.get(nm, (np.nan, np.nan)) for nm in names], float)
        self.index = {nm: i for i, nm in enumerate(names)}
        self.x = np.zeros((len(names), n), np.float32)

    def field(self, center: tuple[float, float], radius: float) -> np.ndarray:
        """Gaussian weights around ``center``; traces without a position get none."""
        d = np.hypot(self.pos[:, 0] - center[0], self.pos[:, 1] - center[1])
        return np.nan_to_num(np.exp(-((d / radius) ** 2)), nan=0.0)

    def one(self, name: str) -> np.ndarray:
        w = np.zeros(len(self.names))
        if name in self.index:
            w[self.index[name]] = 1.0
        return w

    def span(self, start_s: float, length: int) -> tuple[int, int, int]:
        """(first sample, last sample + 1, samples of the wave that fit) from ``start_s``."""
        a = max(0, round(start_s * self.fs))
        b = min(self.n, a + length)
        return a, b, max(0, b - a)

    def add(self, weights: np.ndarray, start_s: float, wave: np.ndarray) -> None:
        a, b, m = self.span(start_s, len(wave))
        rows = np.flatnonzero(np.abs(weights) > 1e-3)
        if m and len(rows):
            self.x[rows, a:b] += (weights[rows, None] * wave[None, :m]).astype(np.float32)

    def scale(self, weights: np.ndarray, start_s: float, gain: np.ndarray) -> None:
        """Multiply the traces by 1 - weights * (1 - gain): attenuation in a field."""
        a, b, m = self.span(start_s, len(gain))
        rows = np.flatnonzero(weights > 1e-3)
        if m and len(rows):
            loss = weights[rows, None] * (1.0 - gain[None, :m])
            self.x[rows, a:b] *= (1.0 - loss).astype(np.float32)


def band_noise(rng: np.random.Generator, n: int, fs: int, lo: float, hi: float) -> np.ndarray:
    """Unit-RMS Gaussian noise with its power between ``lo`` and ``hi`` Hz."""
    n_fft = scipy.fft.next_fast_len(max(n, 8), real=True)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    spec = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    spec *= (freqs >= lo) & (freqs <= min(hi, 0.45 * fs))
    x = scipy.fft.irfft(spec, n=n_fft)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def ramps(n: int, fs: int, rise_s: float, fall_s: float | None = None) -> np.ndarray:
    """1 inside, raised-cosine rise and fall at the ends."""
    env = np.ones(n)
    rise = min(int(rise_s * fs), n // 2)
    fall = min(int((rise_s if fall_s is None else fall_s) * fs), n // 2)
    if rise:
        env[:rise] = 0.5 - 0.5 * np.cos(np.pi * np.arange(rise) / rise)
    if fall:
        env[n - fall :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, fall + 1) / fall)
    return env


def wander(rng: np.random.Generator, n: int, fs: int, period_s: float, depth: float) -> np.ndarray:
    """1 + a slow random modulation of about ``depth`` (waxing and waning)."""
    knots = rng.uniform(-1.0, 1.0, int(n / fs / period_s) + 2)
    return 1.0 + depth * np.interp(np.arange(n) / (fs * period_s), np.arange(len(knots)), knots)


def _background(rng: np.random.Generator, canvas: Canvas, tr: Traits, level: float) -> None:
    """1/f^a noise per trace plus a shared part, each trace at about ``level`` µV RMS."""
    n_ch, n, fs = len(canvas.names), canvas.n, canvas.fs
    nb = n // 2 + 1
    spec = rng.standard_normal((n_ch + 1, nb, 2), dtype=np.float32).view(np.complex64)[..., 0]
    freqs = np.fft.rfftfreq(n, 1.0 / fs).astype(np.float32)
    spec *= np.maximum(freqs, 0.5) ** -tr.exponent * (freqs / np.sqrt(freqs**2 + 0.25))
    noise = scipy.fft.irfft(spec, n=n, axis=-1)
    noise /= noise.std(axis=-1, keepdims=True) + 1e-12
    sigmas = level * rng.uniform(0.8, 1.2, n_ch).astype(np.float32) / math.hypot(1.0, 0.35)
    canvas.x += (noise[:-1] + np.float32(0.35) * noise[-1]) * sigmas[:, None]


def discharge(rng: np.random.Generator, pattern: str, n: int, fs: int) -> np.ndarray:
    """One seizure's rhythm over ``n`` samples, peak-envelope RMS 1: frequency and sharpness
    evolve (spike-and-wave stays near 3 Hz); fast onset starts with low-voltage beta."""
    u = np.arange(n) / max(n - 1, 1)
    if pattern == "spike_wave":
        freq = rng.uniform(2.5, 4.0) * (1.0 - rng.uniform(0.0, 0.2) * u)
        sharp = np.full(n, rng.uniform(0.7, 1.0))
        env = ramps(n, fs, 0.3)
    else:
        f0, f1 = rng.uniform(4.5, 8.0), rng.uniform(1.8, 3.5)
        freq = f1 + (f0 - f1) * (1.0 - u) ** rng.uniform(1.0, 2.0)
        env = np.clip(u / rng.uniform(0.15, 0.4), 0.1, 1.0) ** 1.5 * ramps(n, fs, 0.0, 0.1 * n / fs)
        sharp = 0.1 + 0.8 * np.clip(u / 0.6, 0.0, 1.0)
        k = min(int(rng.uniform(2.0, 8.0) * fs), n // 3)
        if pattern == "fast_onset":
            freq[:k] = np.linspace(rng.uniform(14.0, 24.0), f0, k)
            env[:k], sharp[:k] = 0.35, 0.0
        elif pattern == "attenuation":  # the background is suppressed there (see _seizure)
            env[:k] *= np.linspace(0.0, 0.3, k)
    freq = freq * np.exp(0.05 * (wander(rng, n, fs, 1.5, 1.0) - 1.0))
    phase = 2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi)
    wrapped = np.mod(phase, 2 * np.pi) - np.pi
    spike = np.exp(-((wrapped / 0.3) ** 2)) - 0.3 * math.sqrt(math.pi) / (2 * math.pi)
    wave = np.sin(phase) + 0.3 * sharp * np.sin(2 * phase + 0.5) + 1.4 * sharp * spike
    wave /= np.sqrt(np.mean(wave**2)) + 1e-12
    return wave * env * wander(rng, n, fs, 3.0, 0.25)


def _seizure(rng: np.random.Generator, canvas: Canvas, ev: EventPlan, level: float) -> None:
    """The discharge in its evolving field, then post-ictal slowing and suppression."""
    fs, p = canvas.fs, ev.params
    n = round((ev.stop - ev.start) * fs)
    amp = p["amplitude"] * level
    wave = discharge(rng, p["pattern"], n, fs) * amp
    if p["focal"]:
        center = POSITIONS[p["focus"]]
        r0, r1 = p["radius"]
        d = np.hypot(canvas.pos[:, 0] - center[0], canvas.pos[:, 1] - center[1])
        step = max(1, fs // 4)  # the field grows smoothly; drawn every quarter second
        grid = np.arange(0, n + step, step)
        radius = r0 + (r1 - r0) * np.clip(grid / max(0.4 * n, 1), 0.0, 1.0)
        coarse = np.nan_to_num(np.exp(-((d[:, None] / radius[None, :]) ** 2)), nan=0.0)
        rows = np.flatnonzero(coarse.max(axis=1) > 1e-3)
        a, b, m = canvas.span(ev.start, n)
        for r in rows:
            w = np.interp(np.arange(m), grid, coarse[r])
            canvas.x[r, a:b] += (w * wave[:m]).astype(np.float32)
        final = coarse[:, -1]
    else:  # bilateral, fronto-central maximum, tens of ms of lag between regions
        y = np.nan_to_num(canvas.pos[:, 1], nan=-9.0)
        final = np.where(
            y > -9, np.clip(0.75 + 0.12 * y + rng.uniform(-0.2, 0.2, len(y)), 0.2, 1.4), 0
        )
        lags = np.round((0.02 * (2 - y) + rng.uniform(0, 0.03, len(y))) * fs).astype(int)
        for r in np.flatnonzero(final):
            canvas.add(canvas.one(canvas.names[r]) * final[r], ev.start + lags[r] / fs, wave)
    if p["pattern"] == "attenuation":
        k = int(rng.uniform(2.0, 6.0) * fs)
        canvas.scale(final, ev.start, 1.0 - 0.8 * ramps(min(k, n), fs, 0.5))
    if ev.label == "tcsz":  # the tonic phase drowns in muscle
        muscle = band_noise(rng, n // 2, fs, 20.0, 100.0) * ramps(n // 2, fs, 1.0) * 2.5 * level
        canvas.add(canvas.field((-2, 0.5), 1.5) + canvas.field((2, 0.5), 1.5), ev.start, muscle)
    if p["postictal_s"] > 0:
        m = round(p["postictal_s"] * fs)
        decay = np.exp(-np.arange(m) / (fs * p["postictal_s"] / 3.0))
        canvas.scale(final, ev.stop, 1.0 - 0.5 * decay)
        slow = band_noise(rng, m, fs, 0.5, 3.0) * decay * ramps(m, fs, 1.0)
        canvas.add(final, ev.stop, slow * amp * rng.uniform(0.4, 0.8))


def _sleep(rng: np.random.Generator, canvas: Canvas, lk: Lookalike, level: float) -> None:
    """Slow waves, spindles, vertex waves and K-complexes over the stretch of sleep."""
    fs = canvas.fs
    n = round((lk.stop - lk.start) * fs)
    slow = band_noise(rng, n, fs, 0.5, 2.0) * ramps(n, fs, 10.0) * level * rng.uniform(2, 4)
    canvas.add(canvas.field((0, 1.2), 2.5), lk.start, slow)
    t = lk.start + rng.uniform(0, 5)
    while t < lk.stop - 2:
        m = int(rng.uniform(0.5, 1.5) * fs)
        tt = np.arange(m) / fs
        spindle = np.sin(2 * np.pi * rng.uniform(12, 14) * tt) * np.hanning(m)
        canvas.add(canvas.field((0, 0), 1.5), t, spindle * level * rng.uniform(1.5, 3))
        t += rng.uniform(4, 15)
    t = lk.start + rng.uniform(0, 10)
    while t < lk.stop - 2:
        tt = np.arange(int(0.4 * fs)) / fs - 0.2
        vertex = -tt / 0.05 * np.exp(-((tt / 0.05) ** 2))
        canvas.add(canvas.field((0, 0), 1.0), t, vertex * level * rng.uniform(3, 6))
        if rng.random() < 0.3:
            tt = np.arange(int(1.2 * fs)) / fs
            k = -np.exp(-(((tt - 0.2) / 0.12) ** 2)) + 0.6 * np.exp(-(((tt - 0.6) / 0.2) ** 2))
            canvas.add(canvas.field((0, 0.8), 2.0), t + 0.5, k * level * rng.uniform(4, 8))
        t += rng.uniform(5, 20)


def _rhythm(
    rng: np.random.Generator, n: int, fs: int, freq: float, notch: float, sharp: float
) -> np.ndarray:
    """A steady rhythm (no evolution, unlike a seizure), waxing and waning, unit peak RMS.
    ``sharp`` adds a sharp transient to each cycle of the polarity opposite to a seizure's
    spikes, as benign positive sharp transients have: band powers and line length cannot
    tell the two apart, the waveform can."""
    freq_t = freq * np.exp(0.01 * (wander(rng, n, fs, 2.0, 1.0) - 1.0))
    phase = 2 * np.pi * np.cumsum(freq_t) / fs + rng.uniform(0, 2 * np.pi)
    wrapped = np.mod(phase, 2 * np.pi) - np.pi
    spike = np.exp(-((wrapped / 0.3) ** 2)) - 0.3 * math.sqrt(math.pi) / (2 * math.pi)
    wave = np.sin(phase) + notch * np.sin(2 * phase + 0.6) - 1.4 * sharp * spike
    wave /= np.sqrt(np.mean(wave**2)) + 1e-12
    return wave * ramps(n, fs, 1.0) * wander(rng, n, fs, 2.5, 0.3)


def _lookalike(
    rng: np.random.Generator, canvas: Canvas, lk: Lookalike, tr: Traits, level: float
) -> None:
    fs = canvas.fs
    n = round((lk.stop - lk.start) * fs)
    amp = lk.amplitude * level
    side = SIDES.get(lk.params.get("side", "left"), -1.0)
    sharp = float(lk.params.get("sharpness", 0.0))
    if lk.kind == "sleep":
        _sleep(rng, canvas, lk, level)
    elif lk.kind == "muscle":
        wave = band_noise(rng, n, fs, 20.0, 100.0) * ramps(n, fs, 0.3) * amp * 1.5
        canvas.add(canvas.field((2 * side, 0.3), 1.3), lk.start, wave)
    elif lk.kind == "chewing":
        t = np.arange(n) / fs
        bursts = np.clip(np.sin(2 * np.pi * rng.uniform(1.0, 1.8) * t) * 3 - 1.5, 0, 1)
        wave = band_noise(rng, n, fs, 20.0, 100.0) * bursts * ramps(n, fs, 0.5) * amp * 2
        canvas.add(canvas.field((-2, 0.3), 1.3) + canvas.field((2, 0.3), 1.3), lk.start, wave)
    elif lk.kind == "electrode_pop":
        wave = np.zeros(n)
        tau = rng.uniform(0.05, 0.4) * fs
        for at in rng.integers(0, max(n - 1, 1), int(rng.integers(1, 6))):
            wave[at:] += rng.choice((-1, 1)) * np.exp(-np.arange(n - at) / tau)
        canvas.add(canvas.one(lk.params["channel"]), lk.start, wave * amp * rng.uniform(3, 8))
    elif lk.kind == "drift":
        wave = band_noise(rng, n, fs, 0.05, 0.5) * ramps(n, fs, 2.0) * amp * 4
        canvas.add(canvas.one(lk.params["channel"]), lk.start, wave)
    elif lk.kind == "eye_movement":
        dwell = np.cumsum(rng.uniform(0.3, 1.5, int(n / fs / 0.3) + 2) * fs).astype(int)
        level_t = np.repeat(rng.choice((-1.0, 1.0), len(dwell)), np.diff(dwell, prepend=0))[:n]
        k = max(1, int(0.05 * fs))
        wave = np.convolve(level_t, np.ones(k) / k, mode="same") * ramps(n, fs, 0.3) * amp * 3
        w = np.array([EYE_WEIGHTS.get(nm, 0.0) for nm in canvas.names])
        canvas.add(w, lk.start, wave)
    elif lk.kind == "drowsy_theta":
        wave = _rhythm(rng, n, fs, rng.uniform(3.5, 7.5), 0.1, sharp) * amp
        canvas.add(
            canvas.field((0, 0.5), 2.2) * rng.uniform(0.7, 1.3, len(canvas.names)), lk.start, wave
        )
    elif lk.kind == "rhythmic_temporal":
        wave = _rhythm(rng, n, fs, rng.uniform(4.0, 7.5), 0.4, sharp) * amp
        canvas.add(canvas.field((2 * side, -0.2), 1.3), lk.start, wave)
    elif lk.kind == "slow_alpha_variant":
        wave = _rhythm(rng, n, fs, tr.alpha_hz / 2, 0.45, sharp) * amp
        canvas.add(canvas.field((0, -2), 1.5), lk.start, wave)


def _gate(n: int, fs: int, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """1 outside the spans, 0 inside, with 2 s ramps (alpha and blinks stop there). The ends
    hold their value: a recording starts and stops mid-activity, so alpha must not fade out
    there (smoothing with zeros beyond the ends did, a seizure-like cue at every edge)."""
    gate = np.ones(n)
    for a, b in spans:
        i, j = max(0, round(a * fs)), min(n, round(b * fs))
        gate[i:j] = 0.0
    k = 2 * fs
    if n <= k:
        return gate
    held = np.pad(gate, k, mode="edge")  # the same sums as mode="same" inside, ends held
    return np.convolve(held, np.ones(k) / k, mode="full")[k + (k - 1) // 2 : k + (k - 1) // 2 + n]


def eeg_signals(
    plan: FilePlan,
    names: Sequence[str],
    seed: int,
    tr: Traits,
    lookalikes: list[Lookalike],
    jitter: float,
    line_freq: int = 60,
) -> dict[str, np.ndarray]:
    """µV traces for the EEG-like names of a realistic or hard recording; sessions of one
    patient differ in level by up to ``jitter``; mains at ``line_freq`` Hz."""
    rng = np.random.default_rng([seed, plan.index, 19])
    fs, n = plan.fs, plan.duration * plan.fs
    canvas = Canvas(names, fs, n)
    session = np.random.default_rng([seed, 29, *f"{plan.patient}/{plan.session}".encode()])
    level = tr.background_uv * float(session.uniform(1 - jitter, 1 + jitter))
    _background(rng, canvas, tr, level)
    quiet = [(ev.start, ev.stop + ev.params.get("postictal_s", 0.0)) for ev in plan.events]
    sleep = [(lk.start, lk.stop) for lk in lookalikes if lk.kind == "sleep"]
    t = np.arange(n) / fs
    alpha_env = wander(rng, n, fs, 2.0, 0.6).clip(0) * _gate(n, fs, quiet + sleep)
    alpha = tr.alpha_uv * alpha_env * np.sin(2 * np.pi * tr.alpha_hz * t)
    canvas.add(np.array([ALPHA_WEIGHTS.get(nm, 0.0) for nm in names]), 0.0, alpha)
    awake = _gate(n, fs, sleep)
    kernel = np.hanning(int(0.35 * fs)).astype(np.float32)
    times = np.sort(rng.integers(0, max(1, n - 1), int(0.2 * tr.artifact_rate * plan.duration) + 1))
    times = times[awake[times] > 0.5]
    amps = rng.uniform(60, 200, len(times)).astype(np.float32)
    for name, w in BLINK_WEIGHTS.items():
        if name in canvas.index:
            add_bumps(canvas.x[canvas.index[name]], times, kernel, w * amps)
    a = rng.uniform(0.5, 4.0, len(names)) * rng.uniform(0.3, 1.0)
    ph = rng.uniform(0, 2 * np.pi, len(names))
    mains = np.outer(a * np.cos(ph), np.sin(2 * np.pi * line_freq * t))
    mains += np.outer(a * np.sin(ph), np.cos(2 * np.pi * line_freq * t))
    canvas.x += mains.astype(np.float32)
    for ev in plan.events:
        _seizure(rng, canvas, ev, level)
    for lk in lookalikes:
        _lookalike(rng, canvas, lk, tr, level)
    return {name: canvas.x[i] for i, name in enumerate(names)}
