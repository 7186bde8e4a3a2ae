"""A synthetic corpus as a BIDS-EEG dataset in the SzCORE convention, laid out as the
``epilepsy2bids`` converter distributes CHB-MIT, Siena, SeizeIT2 and TUSZ.

Same plans and samples as the TUSZ layout; only the 19 10-20 electrodes (and for some
subjects an ECG among them) are kept, relabelled the way these datasets spell them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edfio

from ictal.corpus.channels import CANONICAL_19
from ictal.corpus.synth.plans import FilePlan
from ictal.corpus.synth.recording import Trace, edf_signal, electrode
from ictal.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

TASK = "szMonitoring"
BIDS_VERSION = "1.8.0"
# TUSZ labels -> SzCORE / HED-SCORE event types, as epilepsy2bids maps them.
EVENT_TYPES: dict[str, str] = {
    "bckg": "bckg", "seiz": "sz", "fnsz": "sz_foc", "gnsz": "sz_gen", "spsz": "sz_foc_a",
    "cpsz": "sz_foc_ia", "absz": "sz_gen_nm", "tnsz": "sz_gen_m_tonic",
    "cnsz": "sz_gen_m_clonic", "tcsz": "sz_gen_m_tonicClonic", "atsz": "sz_gen_m_atonic",
    "mysz": "sz_gen_nm_myoclonic",
}  # fmt: skip
EVENT_COLUMNS = (
    "onset", "duration", "eventType", "confidence", "channels", "dateTime", "recordingDuration",
)  # fmt: skip
TEN_TEN = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}  # 10-10 names of four electrodes
ECG_AFTER = 9  # an ECG channel sits among the EEG ones, after this many
REFERENCE = "Avg"


@dataclass(frozen=True)
class Names:
    """Where one recording goes in the BIDS tree and how its subject's channels are spelled."""

    subject: str  # sub-<label>
    session: str  # ses-<NN>
    run: str  # run-<NN>
    upper: bool  # FP1-Avg rather than Fp1-Avg
    ten_ten: bool  # T7/T8/P7/P8 rather than T3/T4/T5/T6
    ecg: bool  # an ECG channel among the EEG ones

    @property
    def reldir(self) -> str:
        """The recording's folder under the BIDS root."""
        return f"{self.subject}/{self.session}/eeg"

    @property
    def stem(self) -> str:
        """File names without the ``_eeg.edf`` / ``_eeg.json`` / ``_events.tsv`` suffix."""
        return f"{self.subject}_{self.session}_task-{TASK}_{self.run}"


def subject_label(pid: str) -> str:
    """``sub-`` and the patient id, alphanumeric only."""
    return "sub-" + re.sub(r"[^A-Za-z0-9]", "", pid)


def plan_names(files: list[FilePlan]) -> dict[int, Names]:
    """BIDS names per file index: sessions numbered from 00 per subject, runs from 01 per
    session, in date and token order (as epilepsy2bids numbers TUSZ); the channel style
    cycles over the subjects so every spelling appears from four subjects on."""
    rank_of = {pid: i for i, pid in enumerate(sorted({f.patient for f in files}))}
    tokens: dict[tuple[str, str], list[str]] = {}
    for f in files:
        tokens.setdefault((f.patient, f.session), []).append(f.token)
    sessions: dict[str, list[str]] = {}
    for pid, session in sorted(tokens):
        sessions.setdefault(pid, []).append(session)
    out = {}
    for f in files:
        rank = rank_of[f.patient]
        run = sorted(tokens[f.patient, f.session]).index(f.token)
        upper, ten_ten = rank % 2 == 1, rank // 2 % 2 == 1
        out[f.index] = Names(
            subject_label(f.patient), f"ses-{sessions[f.patient].index(f.session):02d}",
            f"run-{run + 1:02d}", upper, ten_ten, upper != ten_ten,
        )  # fmt: skip
    return out


def channel_label(name: str, nm: Names) -> str:
    """``Fp1-Avg``, ``FP1-Avg`` or ``T7-Avg`` for a canonical electrode name."""
    if nm.ten_ten:
        name = TEN_TEN.get(name, name)
    return f"{name.upper() if nm.upper else name}-{REFERENCE}"


def _edf(plan: FilePlan, found: list[Trace], nm: Names) -> edfio.Edf:
    """The 10-20 traces (and maybe the ECG) relabelled, as EDF+C with the patient and
    recording fields anonymised like the converter's."""
    eeg = {electrode(t.label): t for t in found if t.kind == "eeg"}
    signals = [
        edf_signal(eeg[c.upper()].values, plan.fs, channel_label(c, nm))
        for c in CANONICAL_19
        if c.upper() in eeg
    ]
    if nm.ecg:
        ekg = next(t for t in found if t.kind == "ekg")
        signals.insert(min(ECG_AFTER, len(signals)), edf_signal(ekg.values, plan.fs, "ECG"))
    return edfio.Edf(
        signals, patient=edfio.Patient(), recording=edfio.Recording(startdate=plan.date),
        starttime=plan.starttime, data_record_duration=1.0, annotations=(),
    )  # fmt: skip


def _events(plan: FilePlan) -> tuple[str, list[dict[str, Any]]]:
    """(events.tsv text, ground-truth events as the file holds them, to 0.01 s)."""
    start = dt.datetime.combine(plan.date, plan.starttime).strftime("%Y-%m-%d %H:%M:%S")
    total = f"{plan.duration:.2f}"
    rows, truth = [], []
    for ev in sorted(plan.events, key=lambda e: e.start):
        onset, duration = f"{ev.start:.2f}", f"{ev.stop - ev.start:.2f}"
        kind = EVENT_TYPES[ev.label]
        rows.append((onset, duration, kind, "1.00", "n/a", start, total))
        stop = float(f"{float(onset) + float(duration):.2f}")
        truth.append({"start": float(onset), "stop": stop, "label": kind})
    if not rows:
        rows.append(("0.00", total, "bckg", "n/a", "n/a", start, total))
    text = "".join("\t".join(r) + "\n" for r in [EVENT_COLUMNS, *rows])
    return text, truth


def _sidecar(plan: FilePlan, nm: Names, n_eeg: int, line_freq: int) -> dict[str, Any]:
    """The ``_eeg.json`` of one recording with ``n_eeg`` EEG channels."""
    return {
        "TaskName": TASK,
        "TaskDescription": "Synthetic scalp EEG for seizure monitoring (ictal synth).",
        "SamplingFrequency": plan.fs,
        "PowerLineFrequency": line_freq,
        "SoftwareFilters": "n/a",
        "HardwareFilters": "n/a",
        "EEGReference": "Common Average",
        "EEGChannelCount": n_eeg,
        "ECGChannelCount": int(nm.ecg),
        "EEGPlacementScheme": "10-20",
        "RecordingType": "discontinuous",  # as the converter's sidecars say
        "RecordingDuration": float(plan.duration),
        "TUHSplit": plan.split,
        "TUHSubject": plan.patient,
        "TUHSession": plan.session,
    }


def write_recording(
    root: Path,
    plan: FilePlan,
    found: list[Trace],
    nm: Names,
    line_freq: int,
) -> dict[str, Any]:
    """Write one recording's EDF, ``_eeg.json`` and ``_events.tsv``; its ground-truth fields
    as the BIDS reader names them, and those of its TUSZ twin under ``tusz``."""
    edf = _edf(plan, found, nm)
    folder = root / nm.reldir
    atomic_write_bytes(folder / f"{nm.stem}_eeg.edf", edf.to_bytes(), fsync=False)
    side = _sidecar(plan, nm, len(edf.labels) - int(nm.ecg), line_freq)
    atomic_write_json(folder / f"{nm.stem}_eeg.json", side, fsync=False)
    text, events = _events(plan)
    atomic_write_text(folder / f"{nm.stem}_events.tsv", text, fsync=False)
    twin = {
        "edf": f"{plan.reldir}/{plan.stem}.edf", "patient": plan.patient,
        "session": plan.session, "token": plan.token, "montage": plan.montage,
    }  # fmt: skip
    return {
        "edf": f"{nm.reldir}/{nm.stem}_eeg.edf", "patient": nm.subject, "session": nm.session,
        "token": nm.run, "montage": "bids", "signals": list(edf.labels), "events": events,
        "quirk_detail": None, "tusz": twin,
    }  # fmt: skip


def _events_json() -> dict[str, Any]:
    """Top-level description of the ``_events.tsv`` columns."""
    levels = {
        "bckg": "Background: no seizure in this epoch.",
        **{v: f"Seizure (TUSZ label {k})." for k, v in EVENT_TYPES.items() if k != "bckg"},
    }
    return {
        "onset": {"Description": "Start of the event from the recording start.", "Units": "s"},
        "duration": {"Description": "Duration of the event.", "Units": "s"},
        "eventType": {"Description": "SzCORE / HED-SCORE event type.", "Levels": levels},
        "confidence": {"Description": "Confidence in the label, 0-1 (n/a for background)."},
        "channels": {"Description": "Channels the event appears on (n/a: not given)."},
        "dateTime": {"Description": "Start date and time of the recording (YYYY-MM-DD hh:mm:ss)."},
        "recordingDuration": {"Description": "Duration of the recording.", "Units": "s"},
    }


PARTICIPANTS_JSON: dict[str, Any] = {
    "participant_id": {"Description": "Unique identifier of the participant."},
    "age": {"Description": "Age at the first recording.", "Units": "years"},
    "sex": {"Description": "Sex of the participant.", "Levels": {"m": "male", "f": "female"}},
    "split": {
        "Description": "Data split of the participant.",
        "Levels": {"train": "training", "dev": "development", "eval": "evaluation"},
    },
}

README = """\
# Synthetic seizure-monitoring EEG (ictal synth)

A synthetic corpus written by `ictal synth --format bids`, laid out as the SzCORE BIDS-EEG
datasets (CHB-MIT, Siena, SeizeIT2, TUSZ) are: one EDF per run with its `_eeg.json` and
`_events.tsv` (HED-SCORE event types, `bckg` over a recording without seizures).

The signal values are those of the same seed's TUSZ-layout corpus (`--format tusz`), not
re-referenced: only the 19 10-20 electrodes are kept and relabelled (`Fp1-Avg`, `FP1-Avg`,
10-10 names `T7`/`T8`/`P7`/`P8` for some subjects, an `ECG` channel among them for others).
`ground_truth.json` (listed in `.bidsignore`) says what every file holds.
"""


def write_dataset(root: Path, truth: dict[str, Any], command: str) -> None:
    """Write the dataset-level files: description, README, participants, events.json."""
    description = {
        "Name": "ictal synthetic seizure-monitoring EEG",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "GeneratedBy": [
            {"Name": "ictal synth", "Version": str(truth["version"]), "Description": command}
        ],
    }
    atomic_write_json(root / "dataset_description.json", description, fsync=False)
    atomic_write_text(root / "README", README, fsync=False)
    atomic_write_text(root / ".bidsignore", "ground_truth.json\n", fsync=False)
    lines = ["participant_id\tage\tsex\tsplit"]
    for subject, p in sorted(truth["patients"].items()):
        lines.append(f"{subject}\t{p['age']}\t{p['sex'].lower()}\t{p['split']}")
    atomic_write_text(root / "participants.tsv", "\n".join(lines) + "\n", fsync=False)
    atomic_write_json(root / "participants.json", PARTICIPANTS_JSON, fsync=False)
    atomic_write_json(root / "events.json", _events_json(), fsync=False)
