"""The plan of a synthetic corpus: patients, splits, sessions, files, defects and (easy) seizures.

Everything here is drawn from one seeded generator in a fixed order, so a seed names a corpus.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ictal.corpus.annotations import SEIZURE_CODES
from ictal.corpus.channels import CANONICAL_19

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
    params: dict[str, Any] = field(default_factory=dict)  # realistic/hard: how it was drawn


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


def plan_patients(rng: np.random.Generator, n: int) -> list[PatientPlan]:
    ids = _patient_ids(rng, n)
    order = rng.permutation(n)
    counts = _split_counts(n)
    splits = [s for s, c in zip(SPLITS, counts, strict=True) for _ in range(c)]
    plans = []
    for rank, i in enumerate(order):
        sex = "F" if rng.random() < 0.5 else "M"
        plans.append(PatientPlan(ids[i], splits[rank], sex, int(rng.integers(1930, 2005))))
    return sorted(plans, key=lambda p: p.pid)


def plan_files(
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


def assign_quirks(rng: np.random.Generator, files: list[FilePlan], fraction: float) -> None:
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


def plan_events(rng: np.random.Generator, files: list[FilePlan]) -> None:
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
