"""Synthetic TUSZ-layout corpus: EEG-like EDF files with learnable, evolving seizures.

Tests, demos and benchmarks need a corpus with the real layout, names, rates, extra
signals and header defects, but no patient data; this generates one, deterministic per seed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import edfio
import numpy as np
import scipy.fft

from ictal.corpus.annotations import (
    SEIZURE_CODES,
    TCP_CHANNELS,
    Row,
    format_csv,
    format_csv_bi,
    tiling_rows,
)
from ictal.corpus.channels import CANONICAL_19
from ictal.corpus.edf import (
    HEADER_BYTES,
    N_RECORDS,
    PATIENT,
    START_DATE,
    START_TIME,
    signal_field,
)
from ictal.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

GENERATOR = "ictal-synth"
VERSION = 1
SPLITS = ("train", "dev", "eval")
MONTAGES = ("01_tcp_ar", "02_tcp_le", "03_tcp_ar_a")
RATES = (250, 256, 400, 512)
QUIRKS: tuple[str, ...] = (
    "records_minus_one",
    "truncated",
    "non_ascii_header",
    "zero_start_date",
    "colon_start_time",
    "flat_physical_range",
    "duplicate_labels",
    "missing_fz_pz",
    "unknown_label",
    "overlapping_rows",
    "event_past_end",
    "short_recording",
    "missing_csv_bi",
)
REPAIRED = frozenset(QUIRKS[:5])
CLEAN_QUIRKS = frozenset({"short_recording"})
FOCAL_CODES = frozenset({"fnsz", "spsz", "cpsz"})

# Approximate scalp positions (x: left-right, y: back-front) of the electrodes, TUSZ names.
POSITIONS: dict[str, tuple[float, float]] = {
    "FP1": (-1, 2), "FP2": (1, 2), "F7": (-2, 1), "F3": (-1, 1), "FZ": (0, 1), "F4": (1, 1),
    "F8": (2, 1), "A1": (-3, 0), "T3": (-2, 0), "C3": (-1, 0), "CZ": (0, 0), "C4": (1, 0),
    "T4": (2, 0), "A2": (3, 0), "T5": (-2, -1), "P3": (-1, -1), "PZ": (0, -1), "P4": (1, -1),
    "T6": (2, -1), "O1": (-1, -2), "O2": (1, -2),
}  # fmt: skip
ELECTRODES_19 = tuple(e.upper() for e in CANONICAL_19)  # as TUSZ headers spell them
# EEG electrode order as in TUSZ headers; A1/A2 are dropped for 03_tcp_ar_a.
EDF_ELECTRODES = ("FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8",
                  "T3", "T4", "T5", "T6", "A1", "A2", "FZ", "CZ", "PZ")  # fmt: skip
ALPHA_WEIGHTS = {"O1": 1.0, "O2": 1.0, "P3": 0.6, "P4": 0.6, "PZ": 0.6, "T5": 0.5, "T6": 0.5}
BLINK_WEIGHTS = {"FP1": 1.0, "FP2": 1.0, "F7": 0.4, "F8": 0.4, "ROC": 1.2, "LOC": 1.2}
FOCI = tuple(e for e in ELECTRODES_19 if e not in ("FZ", "PZ"))  # foci appear in TCP pairs


@dataclass
class EventPlan:
    """One generated seizure: interval, type code and per-electrode onset and weight."""

    start: float
    stop: float
    label: str
    onsets: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    lags: dict[str, float] = field(default_factory=dict)  # seconds the discharge lags, per name


@dataclass
class FilePlan:
    """Everything needed to write one recording and its annotation files."""

    index: int
    patient: str
    split: str
    session: str
    date: dt.date
    token: str
    montage: str
    fs: int
    duration: int
    extras: tuple[str, ...]
    starttime: dt.time
    quirk: str | None = None
    force_seizure: bool = False
    events: list[EventPlan] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return f"{self.patient}_{self.session[:4]}_{self.token}"

    @property
    def reldir(self) -> str:
        return f"edf/{self.split}/{self.patient}/{self.session}/{self.montage}"


@dataclass
class PatientPlan:
    """Patient id, split, sex and birth year."""

    pid: str
    split: str
    sex: str
    birth_year: int


def _patient_ids(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct eight-letter lower-case ids in TUSZ style (``aaaa`` + four letters)."""
    ids: set[str] = set()
    while len(ids) < n:
        ids.add("aaaa" + "".join(chr(97 + int(c)) for c in rng.integers(0, 26, 4)))
    return sorted(ids)


def _split_counts(n: int) -> tuple[int, int, int]:
    """Patient counts per split, about 60/25/15, every split non-empty when n >= 3."""
    if n < 3:
        return (n, 0, 0) if n < 2 else (1, 1, 0)
    dev = max(1, round(0.25 * n))
    ev = max(1, round(0.15 * n))
    return n - dev - ev, dev, ev


def _plan_patients(rng: np.random.Generator, n: int) -> list[PatientPlan]:
    ids = _patient_ids(rng, n)
    order = rng.permutation(n)
    counts = _split_counts(n)
    splits = [s for s, c in zip(SPLITS, counts, strict=True) for _ in range(c)]
    plans = []
    for rank, i in enumerate(order):
        sex = "F" if rng.random() < 0.5 else "M"
        plans.append(PatientPlan(ids[i], splits[rank], sex, int(rng.integers(1930, 2005))))
    return sorted(plans, key=lambda p: p.pid)


def _plan_files(
    rng: np.random.Generator, patients: list[PatientPlan], hours: float
) -> list[FilePlan]:
    """Sessions, tokens, montages, rates and integer durations summing to about ``hours``."""
    total_s = hours * 3600.0
    n_files = max(2 * len(patients), math.ceil(total_s / 750.0))
    per_patient = np.full(len(patients), 2)
    extra = rng.integers(0, len(patients), n_files - per_patient.sum())
    np.add.at(per_patient, extra, 1)
    weights = rng.uniform(0.6, 1.4, n_files)
    durations = np.maximum(60, np.round(weights * total_s / weights.sum())).astype(int)
    files: list[FilePlan] = []
    session_counter = 0
    for p, n_p in zip(patients, per_patient, strict=True):
        n_sessions = int(rng.integers(1, min(3, n_p) + 1))
        tokens = np.bincount(np.arange(n_p) % n_sessions, minlength=n_sessions)
        day = dt.date(int(rng.integers(2003, 2016)), 1, 1) + dt.timedelta(int(rng.integers(365)))
        session_no = 0
        for n_tok in tokens:
            session_no += int(rng.integers(1, 3))
            day += dt.timedelta(int(rng.integers(1, 400)))
            session = f"s{session_no:03d}_{day:%Y_%m_%d}"
            montage = MONTAGES[session_counter % 3]
            session_counter += 1
            fs = int(rng.choice(RATES))
            extras: list[str] = []
            if rng.random() < 0.4:
                extras += [f"{k}" for k in range(26, 31)]
            if rng.random() < 0.4:
                extras.append("EMG")
            clock = int(rng.integers(8 * 3600, 17 * 3600))
            for t in range(n_tok):
                dur = int(durations[len(files)])
                start = dt.time(clock // 3600, clock // 60 % 60, clock % 60)
                files.append(
                    FilePlan(len(files), p.pid, p.split, session, day, f"t{t:03d}", montage,
                             fs, dur, tuple(extras), start)
                )  # fmt: skip
                clock = min(clock + dur + int(rng.integers(5, 120)), 23 * 3600)
    return files


def _assign_quirks(rng: np.random.Generator, files: list[FilePlan], fraction: float) -> None:
    """Give a deterministic ``fraction`` of files one defect each, cycling through QUIRKS."""
    protected = {}
    for f in files:  # one seizure file per split stays clean
        protected.setdefault(f.split, f)
    for f in protected.values():
        f.force_seizure = True
    if fraction <= 0:
        return
    candidates = [f for f in files if not f.force_seizure]
    n = min(len(candidates), max(1, math.floor(fraction * len(files) + 0.5)))
    for i, k in enumerate(rng.permutation(len(candidates))[:n]):
        f = candidates[int(k)]
        f.quirk = QUIRKS[i % len(QUIRKS)]
        if f.quirk == "short_recording":
            f.duration = int(rng.integers(30, 51))
        if f.quirk in ("unknown_label", "overlapping_rows", "event_past_end"):
            f.force_seizure = True


def _event_length(rng: np.random.Generator, code: str, budget: float) -> float:
    if code == "absz":
        return float(rng.uniform(10, 20))
    return float(np.clip(budget * rng.uniform(0.7, 1.3), 10, 180))


def _spread(rng: np.random.Generator, ev: EventPlan) -> None:
    """Per-electrode onsets and weights: from a focus outwards (focal) or everywhere at once."""
    if ev.label in FOCAL_CODES:
        focus = POSITIONS[FOCI[int(rng.integers(len(FOCI)))]]
        radius, delay = rng.uniform(1.2, 2.3), rng.uniform(1.0, 2.5)
        for name, (x, y) in POSITIONS.items():
            dist = math.hypot(x - focus[0], y - focus[1])
            if dist <= radius:
                onset = min(ev.start + dist * delay, ev.stop - 3.0)
                ev.onsets[name] = round(onset, 4)
                ev.weights[name] = 1.0 - 0.5 * dist / radius
    else:
        # Generalized discharges are bilateral but not identical everywhere: fronto-central
        # maximum and tens of milliseconds of lag between regions, as in real spike-wave.
        # (Identical copies on every electrode would vanish under a common average reference.)
        for name, (_x, y) in POSITIONS.items():
            ev.onsets[name] = ev.start
            ev.weights[name] = float(np.clip(0.75 + 0.25 * y + rng.uniform(-0.2, 0.2), 0.2, 1.4))
            ev.lags[name] = round(float(0.02 * (2 - y) + rng.uniform(0.0, 0.03)), 4)


def _plan_events(rng: np.random.Generator, files: list[FilePlan]) -> None:
    """Seizures in about half the files (about 5 % of time overall), codes in rotation."""
    code_i = 0
    for f in files:
        if f.quirk == "short_recording":
            has = rng.random() < 0.5
        else:
            has = f.force_seizure or rng.random() < 0.5
        if not has:
            continue
        budget = 0.1 * f.duration * rng.uniform(0.6, 1.4)
        k = 1 if budget < 60 or f.duration < 240 else int(rng.integers(1, 3))
        seg = f.duration / k
        for j in range(k):
            code = SEIZURE_CODES[code_i % len(SEIZURE_CODES)]
            length = min(_event_length(rng, code, budget / k), seg - 10)
            if length < 8:
                continue
            code_i += 1
            lo = j * seg + 5
            start = lo + rng.uniform(0, seg - 10 - length)
            if f.quirk == "event_past_end" and j == k - 1:
                start = f.duration - length
            ev = EventPlan(round(start, 4), round(start + length, 4), code)
            _spread(rng, ev)
            f.events.append(ev)


# --------------------------------------------------------------------------- signals


def _pink(rng: np.random.Generator, n_ch: int, n: int, fs: int) -> np.ndarray:
    """Unit-RMS 1/f^a noise per channel, shaped in the frequency domain (one batched FFT)."""
    nb = n // 2 + 1
    spec = rng.standard_normal((n_ch, nb, 2), dtype=np.float32).view(np.complex64)[..., 0]
    freqs = np.fft.rfftfreq(n, 1.0 / fs).astype(np.float32)
    shape = np.maximum(freqs, 0.5) ** -0.8 * (freqs / np.sqrt(freqs**2 + 0.25))
    spec *= shape
    x = scipy.fft.irfft(spec, n=n, axis=-1)
    x /= x.std(axis=-1, keepdims=True) + 1e-12
    return x


def _seizure_wave(rng: np.random.Generator, ev: EventPlan, fs: int) -> np.ndarray:
    """Spike-and-wave discharge whose frequency falls over the event (absence: steady 3 Hz)."""
    n = round((ev.stop - ev.start) * fs)
    u = np.arange(n) / max(n - 1, 1)
    if ev.label == "absz":
        freq = np.full(n, rng.uniform(2.8, 3.5))
    else:
        f0, f1 = rng.uniform(5.5, 7.5), rng.uniform(2.5, 3.5)
        freq = f0 + (f1 - f0) * u
    phase = 2 * np.pi * np.cumsum(freq) / fs
    wrapped = np.mod(phase, 2 * np.pi) - np.pi
    wave = (
        0.6 * np.sin(phase) + 0.2 * np.sin(2 * phase + 0.4) + 1.2 * np.exp(-((wrapped / 0.35) ** 2))
    )
    wave -= wave.mean()
    envelope = np.sin(np.pi * u) ** 0.4
    return wave * envelope


def _add_bumps(x: np.ndarray, times: np.ndarray, kernel: np.ndarray, amps: np.ndarray) -> None:
    for t, a in zip(times, amps, strict=True):
        seg = x[t : t + len(kernel)]
        seg += a * kernel[: len(seg)]


def _eeg_signals(plan: FilePlan, names: Sequence[str], seed: int) -> dict[str, np.ndarray]:
    """µV traces for the EEG-like names: background, alpha, blinks, mains, seizures."""
    rng = np.random.default_rng([seed, plan.index, 7])
    fs, n = plan.fs, plan.duration * plan.fs
    t = np.arange(n, dtype=np.float32) / fs
    noise = _pink(rng, len(names) + 1, n, fs)
    common = noise[-1] * np.float32(0.35)
    sigmas = rng.uniform(10, 20, len(names)).astype(np.float32)
    x = noise[:-1] * sigmas[:, None] + common * sigmas[:, None]
    index = {name: i for i, name in enumerate(names)}
    # alpha: waxing and waning 8-12 Hz over posterior channels
    f_alpha = rng.uniform(8.5, 11.5)
    env = np.interp(
        t, np.arange(0, plan.duration + 3, 2.0), rng.uniform(0, 1, plan.duration // 2 + 2)
    )
    alpha = (rng.uniform(12, 25) * env * np.sin(2 * np.pi * f_alpha * t)).astype(np.float32)
    for name, w in ALPHA_WEIGHTS.items():
        if name in index:
            x[index[name]] += w * alpha
    # eye blinks on frontal and eye channels
    kernel = np.hanning(int(0.35 * fs)).astype(np.float32)
    times = np.sort(rng.integers(0, max(1, n - 1), int(0.25 * plan.duration) + 1))
    amps = rng.uniform(80, 200, len(times)).astype(np.float32)
    for name, w in BLINK_WEIGHTS.items():
        if name in index:
            _add_bumps(x[index[name]], times, kernel, w * amps)
    # 60 Hz mains, per-channel amplitude and phase
    a = rng.uniform(0.5, 4.0, len(names)) * rng.uniform(0.3, 1.0)
    ph = rng.uniform(0, 2 * np.pi, len(names))
    s60, c60 = np.sin(2 * np.pi * 60 * t), np.cos(2 * np.pi * 60 * t)
    x += np.outer(a * np.cos(ph), s60).astype(np.float32) + np.outer(a * np.sin(ph), c60).astype(
        np.float32
    )
    # seizures: rhythmic discharge, per-electrode onset (spread) and 2 s ramp
    for ev in plan.events:
        wave = _seizure_wave(rng, ev, fs) * rng.uniform(90, 150)
        i0 = round(ev.start * fs)
        for name, onset in ev.onsets.items():
            if name not in index:
                continue
            lag = round(ev.lags.get(name, 0.0) * fs)
            seg = wave[: max(0, min(len(wave) - lag, n - i0 - lag))]
            ramp = np.clip((np.arange(len(seg)) / fs - (onset - ev.start)) / 2.0, 0, 1)
            j0 = i0 + lag
            x[index[name], j0 : j0 + len(seg)] += (ev.weights[name] * ramp * seg).astype(np.float32)
    return {name: x[i] for i, name in enumerate(names)}


def _ekg(rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    """QRS-like spikes with T waves at 55-95 beats per minute."""
    x = rng.standard_normal(n).astype(np.float32) * 10
    rr = 60.0 / rng.uniform(55, 95)
    beats = (np.arange(0.3, n / fs, rr) * fs).astype(int)
    qrs = np.exp(-(((np.arange(int(0.1 * fs)) - 0.05 * fs) / (0.01 * fs)) ** 2)).astype(np.float32)
    twave = np.hanning(int(0.2 * fs)).astype(np.float32) * 0.25
    _add_bumps(x, beats, qrs, np.full(len(beats), 800.0, np.float32))
    _add_bumps(x, beats + int(0.25 * fs), twave, np.full(len(beats), 800.0, np.float32))
    return x


def _edf_signal(data: np.ndarray, fs: int, label: str) -> edfio.EdfSignal:
    bound = float(math.ceil(float(np.max(np.abs(data)))) + 1)
    return edfio.EdfSignal(
        data.astype(np.float64), fs, label=label, physical_dimension="uV",
        physical_range=(-bound, bound),
    )  # fmt: skip


def _labels(plan: FilePlan) -> list[tuple[str, str]]:
    """(kind, name) of every signal in header order; kind ``eeg`` for EEG-like traces."""
    suffix = "LE" if plan.montage == "02_tcp_le" else "REF"
    out = []
    for e in EDF_ELECTRODES:
        if plan.montage == "03_tcp_ar_a" and e in ("A1", "A2"):
            continue
        if plan.quirk == "missing_fz_pz" and e in ("FZ", "PZ"):
            continue
        out.append(("eeg", f"EEG {e}-{suffix}"))
    out += [("eeg", f"EEG ROC-{suffix}"), ("eeg", f"EEG LOC-{suffix}")]
    out.append(("ekg", f"EEG EKG1-{suffix}"))
    out += [("eeg", f"EEG T1-{suffix}"), ("eeg", f"EEG T2-{suffix}")]
    out += [("eeg", f"EEG {k}-{suffix}") for k in plan.extras if k.isdigit()]
    if "EMG" in plan.extras:
        out.append(("emg", "EMG-REF"))
    out += [("photic", "PHOTIC-REF"), ("slow", "IBI"), ("slow", "BURSTS"), ("slow", "SUPPR")]
    return out


def _electrode(label: str) -> str:
    return label.removeprefix("EEG ").rsplit("-", 1)[0]


def _build_edf(plan: FilePlan, patient: PatientPlan, seed: int) -> edfio.Edf:
    rng = np.random.default_rng([seed, plan.index, 11])
    labels = _labels(plan)
    fs, n = plan.fs, plan.duration * plan.fs
    eeg = _eeg_signals(plan, [_electrode(lab) for k, lab in labels if k == "eeg"], seed)
    signals = []
    for kind, label in labels:
        if kind == "eeg":
            signals.append(_edf_signal(eeg[_electrode(label)], fs, label))
        elif kind == "ekg":
            signals.append(_edf_signal(_ekg(rng, n, fs), fs, label))
        elif kind == "emg":
            signals.append(_edf_signal(rng.standard_normal(n).astype(np.float32) * 8, fs, label))
        elif kind == "photic":
            signals.append(edfio.EdfSignal(np.zeros(n), fs, label=label, physical_range=(-1, 1)))
        else:  # IBI / BURSTS / SUPPR: one sample per 1 s record
            values = np.round(rng.uniform(0, 50, plan.duration))
            signals.append(edfio.EdfSignal(values, 1, label=label, physical_range=(0, 1000)))
    age = plan.date.year - patient.birth_year
    pat = edfio.Patient(
        code=patient.pid, sex=patient.sex, birthdate=dt.date(patient.birth_year, 1, 1),
        name=patient.pid, additional=[f"Age:{age}"],
    )  # fmt: skip
    return edfio.Edf(
        signals, patient=pat, recording=edfio.Recording(startdate=plan.date),
        starttime=plan.starttime, data_record_duration=1.0,
    )  # fmt: skip


# --------------------------------------------------------------------------- defects


def _field(value: str | bytes, width: int) -> bytes:
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if len(raw) > width:
        raise ValueError(f"header value {raw!r} wider than {width} bytes")
    return raw.ljust(width, b" ")


def _span(field: tuple[int, int]) -> slice:
    """The bytes of a header field given as (offset, width)."""
    return slice(field[0], field[0] + field[1])


def _apply_header_quirk(
    data: bytes, plan: FilePlan, labels: list[str], rng: np.random.Generator
) -> tuple[bytes, list[str], str]:
    """Patch one header defect into written EDF bytes; return bytes, labels, a description."""
    buf = bytearray(data)
    ns = len(labels)
    q = plan.quirk
    eeg19 = [
        i
        for i, lab in enumerate(labels)
        if lab.startswith("EEG ") and _electrode(lab) in ELECTRODES_19
    ]
    if q == "records_minus_one":
        buf[_span(N_RECORDS)] = _field("-1", N_RECORDS[1])
        return bytes(buf), labels, "header field 'number of data records' (bytes 236-244) = -1"
    if q == "truncated":
        header = int(buf[_span(HEADER_BYTES)])
        record = (len(buf) - header) // plan.duration
        cut = header + (plan.duration - 1) * record + record // 2
        note = f"cut at byte {cut} of {len(buf)}, inside data record {plan.duration} (1-based)"
        return bytes(buf[:cut]), labels, note
    if q == "non_ascii_header":
        text = buf[_span(PATIENT)].decode("ascii").rstrip() + " Montr\xe9al"
        buf[_span(PATIENT)] = _field(text, PATIENT[1])
        return bytes(buf), labels, "latin-1 byte 0xE9 ('é') in the patient field (bytes 8-88)"
    if q == "zero_start_date":
        buf[_span(START_DATE)] = b"00.00.00"
        return bytes(buf), labels, "start date field (bytes 168-176) = 00.00.00"
    if q == "colon_start_time":
        buf[_span(START_TIME)] = plan.starttime.strftime("%H:%M:%S").encode()
        return bytes(buf), labels, "start time field (bytes 176-184) uses colons"
    if q == "flat_physical_range":
        i = eeg19[int(rng.integers(len(eeg19)))]
        lo = _span(signal_field(ns, "physical_min", i))
        hi = _span(signal_field(ns, "physical_max", i))
        buf[hi] = buf[lo]
        value = buf[lo].decode().strip()
        return (
            bytes(buf),
            labels,
            f"signal {i} {labels[i]!r}: physical max = physical min = {value}",
        )
    if q == "duplicate_labels":
        i = eeg19[int(rng.integers(len(eeg19)))]
        j = labels.index(next(lab for lab in labels if _electrode(lab) == "T1"))
        label = signal_field(ns, "label", j)
        buf[_span(label)] = _field(labels[i], label[1])
        labels = [*labels[:j], labels[i], *labels[j + 1 :]]
        return bytes(buf), labels, f"signal {j} relabelled {labels[i]!r}, same as signal {i}"
    return bytes(buf), labels, ""


# --------------------------------------------------------------------------- annotations


def _annotation_texts(plan: FilePlan) -> tuple[str | None, str]:
    """(.csv_bi text or None when absent, .csv text), annotation quirks applied."""
    d = float(plan.duration)
    q = plan.quirk
    stop_of = {id(ev): ev.stop for ev in plan.events}
    if q == "event_past_end":
        stop_of[id(plan.events[-1])] = d + 10.0
    label_of = {id(ev): ev.label for ev in plan.events}
    if q == "unknown_label":
        label_of[id(plan.events[0])] = "xxsz"
    drop = ("A1-T3", "T4-A2") if plan.montage == "03_tcp_ar_a" else ()
    channels = [c for c in TCP_CHANNELS if c not in drop]
    rows: list[Row] = []
    for ch in channels:
        a, b = ch.split("-")
        intervals = []
        for ev in plan.events:
            onsets = [ev.onsets[e] for e in (a, b) if e in ev.onsets]
            if onsets:
                intervals.append((min(onsets), stop_of[id(ev)], label_of[id(ev)]))
        rows += tiling_rows(ch, max([d, *[iv[1] for iv in intervals]]), intervals)
    csv = format_csv(plan.stem, d, rows)
    if q == "missing_csv_bi":
        return None, csv
    seizures = [(ev.start, stop_of[id(ev)]) for ev in plan.events]
    if q in ("unknown_label", "overlapping_rows", "event_past_end"):
        term = tiling_rows(
            "TERM", max([d, *[s[1] for s in seizures]]), [(s, e, "seiz") for s, e in seizures]
        )
        term = [r for r in term if r.start < d]
        fixed = []
        for r in term:
            if (
                q == "unknown_label"
                and r.label == "seiz"
                and not any(x.label == "xxsz" for x in fixed)
            ):
                r = Row(r.channel, r.start, r.stop, "xxsz", r.confidence)
            if (
                q == "overlapping_rows"
                and r.label == "seiz"
                and fixed
                and fixed[-1].label == "bckg"
            ):
                r = Row(r.channel, max(0.0, r.start - 5.0), r.stop, r.label, r.confidence)
            fixed.append(r)
        return format_csv(plan.stem, d, fixed), csv
    return format_csv_bi(plan.stem, d, seizures), csv


# --------------------------------------------------------------------------- driver


def _expected(quirk: str | None) -> str:
    if quirk is None or quirk in CLEAN_QUIRKS:
        return "clean"
    return "repaired" if quirk in REPAIRED else "unusable"


def _totals(entries: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for split in (*SPLITS, "all"):
        sel = [e for e in entries if split in ("all", e["split"])]
        events = [ev for e in sel for ev in e["events"]]
        out[split] = {
            "files": len(sel),
            "patients": len({e["patient"] for e in sel}),
            "sessions": len({(e["patient"], e["session"]) for e in sel}),
            "hours": round(sum(e["duration_s"] for e in sel) / 3600.0, 6),
            "seizure_events": len(events),
            "seizure_seconds": round(sum(ev["stop"] - ev["start"] for ev in events), 4),
        }
    return out


def synthesize(
    out: str | Path, *, patients: int, hours: float, seed: int, quirks: float = 0.0
) -> dict[str, Any]:
    """Write a synthetic TUSZ-layout corpus under ``out``; return (and write) its ground truth."""
    if patients < 1 or hours <= 0 or not 0.0 <= quirks <= 1.0:
        raise ValueError("need patients >= 1, hours > 0 and 0 <= quirks <= 1")
    root = Path(out)
    rng = np.random.default_rng(seed)
    pplans = _plan_patients(rng, patients)
    files = _plan_files(rng, pplans, hours)
    _assign_quirks(rng, files, quirks)
    _plan_events(rng, files)
    by_id = {p.pid: p for p in pplans}
    entries = []
    for plan in files:
        edf = _build_edf(plan, by_id[plan.patient], seed)
        labels = list(edf.labels)
        data, labels, detail = _apply_header_quirk(
            edf.to_bytes(), plan, labels, np.random.default_rng([seed, plan.index, 13])
        )
        folder = root / plan.reldir
        atomic_write_bytes(folder / f"{plan.stem}.edf", data, fsync=False)
        csv_bi, csv = _annotation_texts(plan)
        if csv_bi is not None:
            atomic_write_text(folder / f"{plan.stem}.csv_bi", csv_bi, fsync=False)
        atomic_write_text(folder / f"{plan.stem}.csv", csv, fsync=False)
        readable = plan.duration - 1 if plan.quirk == "truncated" else plan.duration
        entries.append({
            "edf": f"{plan.reldir}/{plan.stem}.edf", "patient": plan.patient,
            "session": plan.session, "token": plan.token, "split": plan.split,
            "montage": plan.montage, "fs": plan.fs, "duration_s": readable,
            "original_duration_s": plan.duration, "signals": labels,
            "events": [{"start": e.start, "stop": e.stop, "label": e.label} for e in plan.events],
            "quirk": plan.quirk, "quirk_detail": detail or None, "expected": _expected(plan.quirk),
        })  # fmt: skip
    first_age = {}
    for plan in files:
        first_age.setdefault(plan.patient, plan.date.year - by_id[plan.patient].birth_year)
    truth = {
        "generator": GENERATOR,
        "version": VERSION,
        "seed": seed,
        "args": {"patients": patients, "hours": hours, "quirks": quirks},
        "patients": {
            p.pid: {"split": p.split, "sex": p.sex, "age": first_age[p.pid]} for p in pplans
        },
        "files": sorted(entries, key=lambda e: e["edf"]),
        "totals": _totals(entries),
    }
    atomic_write_json(root / "ground_truth.json", truth, fsync=True)
    return truth
