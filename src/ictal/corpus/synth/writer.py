"""Writing a synthetic corpus: EDF files, header defects, annotation files and ground truth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal.corpus.annotations import TCP_CHANNELS, Row, format_csv, format_csv_bi, tiling_rows
from ictal.corpus.edf import (
    HEADER_BYTES,
    N_RECORDS,
    PATIENT,
    START_DATE,
    START_TIME,
    signal_field,
)
from ictal.corpus.synth import bids, easy, phenomena
from ictal.corpus.synth.difficulty import (
    PROFILES,
    Lookalike,
    Traits,
    plan_lookalikes,
    plan_seizures,
    plan_traits,
)
from ictal.corpus.synth.options import DIFFICULTIES, FORMATS, LINE_FREQS
from ictal.corpus.synth.plans import (
    CLEAN_QUIRKS,
    ELECTRODES_19,
    GENERATOR,
    REPAIRED,
    SPLITS,
    VERSION,
    FilePlan,
    PatientPlan,
    assign_quirks,
    plan_events,
    plan_files,
    plan_patients,
)
from ictal.corpus.synth.recording import Trace, electrode, traces, tusz_edf
from ictal.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

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
        if lab.startswith("EEG ") and electrode(lab) in ELECTRODES_19
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
        j = labels.index(next(lab for lab in labels if electrode(lab) == "T1"))
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


def _write_tusz(
    root: Path, plan: FilePlan, patient: PatientPlan, found: list[Trace], seed: int
) -> dict[str, Any]:
    """Write one recording (defect applied) and its annotation files; its ground-truth fields."""
    edf = tusz_edf(plan, patient, found)
    data, labels, detail = _apply_header_quirk(
        edf.to_bytes(), plan, list(edf.labels), np.random.default_rng([seed, plan.index, 13])
    )
    folder = root / plan.reldir
    atomic_write_bytes(folder / f"{plan.stem}.edf", data, fsync=False)
    csv_bi, csv = _annotation_texts(plan)
    if csv_bi is not None:
        atomic_write_text(folder / f"{plan.stem}.csv_bi", csv_bi, fsync=False)
    atomic_write_text(folder / f"{plan.stem}.csv", csv, fsync=False)
    return {
        "edf": f"{plan.reldir}/{plan.stem}.edf", "session": plan.session, "token": plan.token,
        "signals": labels, "quirk_detail": detail or None,
        "events": [{"start": e.start, "stop": e.stop, "label": e.label} for e in plan.events],
    }  # fmt: skip


def _check(
    patients: int, hours: float, quirks: float, difficulty: str, fmt: str, line_freq: int
) -> None:
    """Refuse arguments the generator cannot honour, with the reason."""
    if patients < 1 or hours <= 0 or not 0.0 <= quirks <= 1.0:
        raise ValueError("need patients >= 1, hours > 0 and 0 <= quirks <= 1")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if line_freq not in LINE_FREQS:
        raise ValueError(f"line frequency must be one of {', '.join(map(str, LINE_FREQS))} Hz")
    if fmt == "bids" and quirks > 0:
        raise ValueError(
            "quirks are TUSZ-layout defects (header bytes, .csv_bi rows); format bids writes "
            "clean recordings only: drop --quirks, or use --format tusz"
        )


def _command(patients: int, hours: float, seed: int, difficulty: str, line_freq: int) -> str:
    """The command line that writes a BIDS corpus (its dataset description names it)."""
    return (
        f"ictal synth OUT --format bids --patients {patients} --hours {hours} --seed {seed} "
        f"--difficulty {difficulty} --line-freq {line_freq}"
    )


@dataclass(frozen=True)
class _Spec:
    """The arguments of one synthesis, as ``synthesize`` was called."""

    patients: int
    hours: float
    seed: int
    quirks: float
    difficulty: str
    format: str
    line_freq: int


@dataclass
class _Signals:
    """How each file's signals are drawn, and the patient traits and look-alikes that the
    realistic and hard profiles planned (none for easy)."""

    draw: Callable[[FilePlan, list[str]], dict[str, np.ndarray]]
    traits: dict[str, Traits] = field(default_factory=dict)
    lookalikes: dict[int, list[Lookalike]] = field(default_factory=dict)


def synthesize(
    out: str | Path,
    *,
    patients: int,
    hours: float,
    seed: int,
    quirks: float = 0.0,
    difficulty: str = "easy",
    format: str = "tusz",
    line_freq: int = 60,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write a synthetic corpus under ``out``; return (and write) its ground truth.

    ``easy`` is the original generator (same seed, same bytes); ``realistic`` and ``hard`` draw
    seizures, look-alikes and patients from the distributions of their profile. ``format``
    ``tusz`` is the TUSZ layout, ``bids`` the same plans and samples as a BIDS-EEG dataset
    (SzCORE convention); ``line_freq`` is the mains frequency in the signals (Hz)."""
    _check(patients, hours, quirks, difficulty, format, line_freq)
    spec = _Spec(patients, hours, seed, quirks, difficulty, format, line_freq)
    root = Path(out)
    rng = np.random.default_rng(seed)
    pplans = plan_patients(rng, patients)
    files = plan_files(rng, pplans, hours)
    assign_quirks(rng, files, quirks)
    signals = _plan_signals(spec, rng, pplans, files)
    entries = _write_recordings(root, spec, pplans, files, signals, progress)
    truth = _ground_truth(spec, pplans, files, entries, signals.traits)
    if format == "bids":
        bids.write_dataset(root, truth, _command(patients, hours, seed, difficulty, line_freq))
    atomic_write_json(root / "ground_truth.json", truth, fsync=True)
    return truth


def _plan_signals(
    spec: _Spec, rng: np.random.Generator, pplans: list[PatientPlan], files: list[FilePlan]
) -> _Signals:
    """Plan every file's seizures (and, beyond easy, patient traits and look-alikes from the
    profile's own generator), and the drawing of their signals."""
    seed, line_freq = spec.seed, spec.line_freq
    if spec.difficulty == "easy":
        plan_events(rng, files)

        def draw_easy(plan: FilePlan, names: list[str]) -> dict[str, np.ndarray]:
            return easy.eeg_signals(plan, names, seed, line_freq)

        return _Signals(draw_easy)
    profile = PROFILES[spec.difficulty]
    drng = np.random.default_rng([seed, 17])
    traits = plan_traits(drng, pplans, profile)
    plan_seizures(drng, files, traits, profile)
    lookalikes = {f.index: plan_lookalikes(drng, f, traits[f.patient], profile) for f in files}

    def draw(plan: FilePlan, names: list[str]) -> dict[str, np.ndarray]:
        return phenomena.eeg_signals(
            plan, names, seed, traits[plan.patient], lookalikes[plan.index],
            profile.session_jitter, line_freq,
        )  # fmt: skip

    return _Signals(draw, traits, lookalikes)


def _write_recordings(
    root: Path,
    spec: _Spec,
    pplans: list[PatientPlan],
    files: list[FilePlan],
    signals: _Signals,
    progress: Callable[[int, int], None] | None,
) -> list[dict[str, Any]]:
    """Write every recording in the layout of ``spec.format``; their ground-truth entries."""
    by_id = {p.pid: p for p in pplans}
    bids_names = bids.plan_names(files) if spec.format == "bids" else {}
    entries = []
    for done, plan in enumerate(files):
        if progress is not None:
            progress(done, len(files))
        found = traces(plan, spec.seed, signals.draw)
        if spec.format == "bids":
            written = bids.write_recording(
                root, plan, found, bids_names[plan.index], spec.line_freq
            )
        else:
            written = _write_tusz(root, plan, by_id[plan.patient], found, spec.seed)
        entries.append(_entry(plan, written, spec, signals))
    if progress is not None:
        progress(len(files), len(files))
    return entries


def _entry(
    plan: FilePlan, written: dict[str, Any], spec: _Spec, signals: _Signals
) -> dict[str, Any]:
    """The ground truth of one written recording: what a reader should find in it."""
    readable = plan.duration - 1 if plan.quirk == "truncated" else plan.duration
    entry = {
        "patient": plan.patient, "split": plan.split, "montage": plan.montage,
        "fs": plan.fs, "duration_s": readable, "original_duration_s": plan.duration,
        "quirk": plan.quirk, "expected": _expected(plan.quirk), **written,
    }  # fmt: skip
    if spec.difficulty != "easy":  # how each seizure was drawn, and what else was placed
        entry["seizures"] = [
            {"start": e.start, "stop": e.stop, "label": e.label, **e.params} for e in plan.events
        ]
        entry["lookalikes"] = [lk.as_dict() for lk in signals.lookalikes[plan.index]]
    return entry


def _ground_truth(
    spec: _Spec,
    pplans: list[PatientPlan],
    files: list[FilePlan],
    entries: list[dict[str, Any]],
    traits: dict[str, Traits],
) -> dict[str, Any]:
    """The corpus's ground truth: generator, arguments, patients, files and totals."""
    by_id = {p.pid: p for p in pplans}
    first_age = {}
    for plan in files:
        first_age.setdefault(plan.patient, plan.date.year - by_id[plan.patient].birth_year)
    key = bids.subject_label if spec.format == "bids" else str  # patients as a reader names them
    truth = {
        "generator": GENERATOR,
        "version": VERSION,
        "seed": spec.seed,
        "args": {"patients": spec.patients, "hours": spec.hours, "quirks": spec.quirks},
        "patients": {
            key(p.pid): {"split": p.split, "sex": p.sex, "age": first_age[p.pid]} for p in pplans
        },
        "files": sorted(entries, key=lambda e: e["edf"]),
        "totals": _totals(entries),
    }
    if spec.difficulty != "easy":  # easy's ground truth stays byte-identical
        truth["difficulty"] = spec.difficulty
        truth["args"]["difficulty"] = spec.difficulty
        for pid, tr in traits.items():
            truth["patients"][key(pid)]["traits"] = tr.as_dict()
    if spec.line_freq != 60:  # so does the default mains frequency's
        truth["line_freq"] = truth["args"]["line_freq"] = spec.line_freq
    if spec.format == "bids":
        truth["format"] = truth["args"]["format"] = spec.format
    return truth
