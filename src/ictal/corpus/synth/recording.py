"""The signals of one synthetic recording, as a TUSZ header lists them, and its EDF header."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import edfio
import numpy as np

from ictal.corpus.synth import easy
from ictal.corpus.synth.plans import EDF_ELECTRODES, FilePlan, PatientPlan

EegDrawer = Callable[[FilePlan, list[str]], dict[str, np.ndarray]]


@dataclass
class Trace:
    """One signal of a recording: its kind, TUSZ label, values and rate."""

    kind: str  # eeg (EEG-like), ekg, emg, photic or slow (one sample per record)
    label: str
    values: np.ndarray
    fs: int


def _ekg(rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    """QRS-like spikes with T waves at 55-95 beats per minute."""
    x = rng.standard_normal(n).astype(np.float32) * 10
    rr = 60.0 / rng.uniform(55, 95)
    beats = (np.arange(0.3, n / fs, rr) * fs).astype(int)
    qrs = np.exp(-(((np.arange(int(0.1 * fs)) - 0.05 * fs) / (0.01 * fs)) ** 2)).astype(np.float32)
    twave = np.hanning(int(0.2 * fs)).astype(np.float32) * 0.25
    easy.add_bumps(x, beats, qrs, np.full(len(beats), 800.0, np.float32))
    easy.add_bumps(x, beats + int(0.25 * fs), twave, np.full(len(beats), 800.0, np.float32))
    return x


def edf_signal(data: np.ndarray, fs: int, label: str) -> edfio.EdfSignal:
    """A µV signal whose physical range just covers ``data``."""
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


def electrode(label: str) -> str:
    """The electrode of a TUSZ label (``EEG FP1-REF`` -> ``FP1``)."""
    return label.removeprefix("EEG ").rsplit("-", 1)[0]


def traces(plan: FilePlan, seed: int, draw: EegDrawer) -> list[Trace]:
    """Every signal of the recording in TUSZ header order (one generator, a fixed order)."""
    rng = np.random.default_rng([seed, plan.index, 11])
    labels = _labels(plan)
    fs, n = plan.fs, plan.duration * plan.fs
    eeg = draw(plan, [electrode(lab) for k, lab in labels if k == "eeg"])
    out = []
    for kind, label in labels:
        if kind == "eeg":
            out.append(Trace(kind, label, eeg[electrode(label)], fs))
        elif kind == "ekg":
            out.append(Trace(kind, label, _ekg(rng, n, fs), fs))
        elif kind == "emg":
            out.append(Trace(kind, label, rng.standard_normal(n).astype(np.float32) * 8, fs))
        elif kind == "photic":
            out.append(Trace(kind, label, np.zeros(n), fs))
        else:  # IBI / BURSTS / SUPPR: one sample per 1 s record
            out.append(Trace(kind, label, np.round(rng.uniform(0, 50, plan.duration)), 1))
    return out


def _signal(trace: Trace) -> edfio.EdfSignal:
    """The EDF signal of a trace as a TUSZ header has it."""
    if trace.kind == "photic":
        return edfio.EdfSignal(trace.values, trace.fs, label=trace.label, physical_range=(-1, 1))
    if trace.kind == "slow":
        return edfio.EdfSignal(trace.values, trace.fs, label=trace.label, physical_range=(0, 1000))
    return edf_signal(trace.values, trace.fs, trace.label)


def _edf_header(plan: FilePlan, patient: PatientPlan) -> dict[str, Any]:
    """Patient, recording and start time of the EDF header (keyword arguments of ``Edf``)."""
    age = plan.date.year - patient.birth_year
    pat = edfio.Patient(
        code=patient.pid, sex=patient.sex, birthdate=dt.date(patient.birth_year, 1, 1),
        name=patient.pid, additional=[f"Age:{age}"],
    )  # fmt: skip
    return {
        "patient": pat,
        "recording": edfio.Recording(startdate=plan.date),
        "starttime": plan.starttime,
    }


def tusz_edf(plan: FilePlan, patient: PatientPlan, found: list[Trace]) -> edfio.Edf:
    """The recording as TUSZ writes it: every trace, TUSZ labels, plain EDF."""
    signals = [_signal(t) for t in found]
    return edfio.Edf(signals, **_edf_header(plan, patient), data_record_duration=1.0)
