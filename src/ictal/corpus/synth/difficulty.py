"""Difficulties of a synthetic corpus: what realistic and hard corpora draw patients, seizures
and look-alikes from (easy is the original single seizure template without look-alikes)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ictal.corpus.synth.plans import FOCAL_CODES, FOCI, POSITIONS, EventPlan, FilePlan, PatientPlan

PATTERNS = ("rhythmic", "fast_onset", "spike_wave", "attenuation")
LOOKALIKES = (
    "muscle", "chewing", "electrode_pop", "drift", "eye_movement", "drowsy_theta",
    "rhythmic_temporal", "slow_alpha_variant", "sleep",
)  # fmt: skip
RHYTHMIC_LOOKALIKES = frozenset({"drowsy_theta", "rhythmic_temporal", "slow_alpha_variant"})
# How often each seizure type occurs, roughly as in TUSZ (focal far the most common).
CODE_WEIGHTS = {
    "fnsz": 0.45, "gnsz": 0.22, "cpsz": 0.10, "absz": 0.05, "tnsz": 0.05, "tcsz": 0.04,
    "spsz": 0.04, "cnsz": 0.02, "mysz": 0.015, "atsz": 0.015,
}  # fmt: skip
SHORT_CODES = {"absz": (4.0, 20.0), "mysz": (2.0, 8.0), "atsz": (3.0, 12.0)}  # s, fixed spans
GAP_S = 20.0  # least background between a seizure's post-ictal end and the next seizure


@dataclass(frozen=True)
class Profile:
    """The distributions of one difficulty (amplitudes relative to the patient's background)."""

    amplitude: tuple[float, float]  # median and log-sd of seizure amplitude / background RMS
    focal: float  # fraction of patients whose seizures are focal
    focal_radius: tuple[float, float]  # field radius at onset and at full spread (electrodes)
    secondary_spread: float  # fraction of focal seizures that spread to both sides
    duration: tuple[float, float]  # median seconds and log-sd (TUSZ: seconds to many minutes)
    duration_range: tuple[float, float]
    seizure_files: float  # fraction of recordings with seizures
    seizures_per_file: tuple[float, float]  # range of a patient's mean count per seizure file
    postictal: float  # fraction of seizures followed by post-ictal slowing
    lookalikes_per_hour: float
    lookalike_weights: dict[str, float]
    lookalike_amplitude: tuple[float, float]  # median and log-sd of rhythmic look-alikes
    long_lookalikes: float  # fraction of rhythmic look-alikes lasting as long as seizures
    lookalike_sharpness: float  # positive sharp transients on rhythmic look-alikes
    sleep_files: float  # fraction of recordings with a stretch of sleep
    background_uv: tuple[float, float]  # range of the patients' background RMS
    session_jitter: float  # sessions of one patient differ by up to this fraction


PROFILES: dict[str, Profile] = {
    "realistic": Profile(
        amplitude=(2.3, 0.55), focal=0.6, focal_radius=(1.2, 2.2), secondary_spread=0.3,
        duration=(40.0, 0.8), duration_range=(5.0, 420.0), seizure_files=0.6,
        seizures_per_file=(1.5, 5.0), postictal=0.7, lookalikes_per_hour=30.0,
        lookalike_weights={
            "muscle": 3, "chewing": 1.5, "electrode_pop": 2, "drift": 1, "eye_movement": 2,
            "drowsy_theta": 2, "rhythmic_temporal": 1, "slow_alpha_variant": 0.5,
        },
        lookalike_amplitude=(1.6, 0.4), long_lookalikes=0.2, lookalike_sharpness=0.0,
        sleep_files=0.3,
        background_uv=(8.0, 30.0), session_jitter=0.15,
    ),
    "hard": Profile(
        amplitude=(1.25, 0.5), focal=0.75, focal_radius=(1.0, 1.8), secondary_spread=0.15,
        duration=(30.0, 0.9), duration_range=(4.0, 420.0), seizure_files=0.6,
        seizures_per_file=(1.5, 5.0), postictal=0.5, lookalikes_per_hour=60.0,
        lookalike_weights={
            "muscle": 3, "chewing": 2, "electrode_pop": 2, "drift": 1, "eye_movement": 2,
            "drowsy_theta": 4, "rhythmic_temporal": 3, "slow_alpha_variant": 1,
        },
        lookalike_amplitude=(2.3, 0.4), long_lookalikes=0.5, lookalike_sharpness=0.8,
        sleep_files=0.5,
        background_uv=(5.0, 40.0), session_jitter=0.25,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Traits:
    """What makes one patient's recordings theirs: background, alpha, artifacts, seizures."""

    background_uv: float
    exponent: float  # background spectrum ~ 1/f^exponent
    alpha_hz: float
    alpha_uv: float
    artifact_rate: float  # multiplies the profile's look-alike rate
    seizure_rate: float  # mean seizures per seizure file
    codes: tuple[str, ...]  # this patient's seizure types
    pattern: str  # the onset pattern most of their seizures take
    focus: str  # where their focal seizures start
    amplitude: float  # their seizures are this much louder (or quieter) than the profile's

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Lookalike:
    """A placed seizure-like or artifact event outside seizures (never annotated)."""

    kind: str
    start: float
    stop: float
    amplitude: float  # relative to the patient's background RMS
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "stop": self.stop,
                "amplitude": round(self.amplitude, 4), **self.params}  # fmt: skip


def _lognormal(rng: np.random.Generator, median: float, sd: float) -> float:
    return float(median * math.exp(sd * rng.standard_normal()))


def plan_traits(
    rng: np.random.Generator, patients: list[PatientPlan], profile: Profile
) -> dict[str, Traits]:
    """One set of traits per patient, drawn in patient order."""
    codes = list(CODE_WEIGHTS)
    weights = np.array(list(CODE_WEIGHTS.values()))
    focal_w = np.where([c in FOCAL_CODES for c in codes], weights, 0.0)
    general_w = weights - focal_w
    out = {}
    lo, hi = profile.background_uv
    for p in patients:
        bg = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        w = focal_w if rng.random() < profile.focal else general_w
        primary = codes[int(rng.choice(len(codes), p=w / w.sum()))]
        mine = (primary,)
        if rng.random() < 0.3:  # a second seizure type, of either kind
            second = codes[int(rng.choice(len(codes), p=weights / weights.sum()))]
            mine = tuple(dict.fromkeys((primary, second)))
        out[p.pid] = Traits(
            background_uv=bg, exponent=float(rng.uniform(0.6, 1.3)),
            alpha_hz=float(rng.uniform(8.0, 12.0)), alpha_uv=bg * float(rng.uniform(0.3, 1.5)),
            artifact_rate=_lognormal(rng, 1.0, 0.5),
            seizure_rate=float(rng.uniform(*profile.seizures_per_file)), codes=mine,
            pattern=str(rng.choice(("rhythmic", "fast_onset", "attenuation"))),
            focus=FOCI[int(rng.integers(len(FOCI)))], amplitude=_lognormal(rng, 1.0, 0.25),
        )  # fmt: skip
    return out


def _pattern(rng: np.random.Generator, code: str, traits: Traits) -> str:
    if code in ("absz", "mysz"):
        return "spike_wave"
    if code == "atsz":
        return "attenuation"
    if code == "tnsz":
        return "fast_onset"
    if code == "gnsz" and rng.random() < 0.4:
        return "spike_wave"
    return traits.pattern if rng.random() < 0.7 else str(rng.choice(PATTERNS[:2] + PATTERNS[3:]))


def _duration(rng: np.random.Generator, code: str, profile: Profile) -> float:
    if code in SHORT_CODES:
        return float(rng.uniform(*SHORT_CODES[code]))
    lo, hi = profile.duration_range
    return float(np.clip(_lognormal(rng, *profile.duration), lo, hi))


def _seizure(
    rng: np.random.Generator, code: str, length: float, traits: Traits, profile: Profile
) -> dict[str, Any]:
    """The drawn parameters of one seizure (its interval is placed afterwards)."""
    focal = code in FOCAL_CODES
    r0, r1 = profile.focal_radius
    spread = focal and rng.random() < profile.secondary_spread
    focus = traits.focus if rng.random() < 0.8 else FOCI[int(rng.integers(len(FOCI)))]
    return {
        "pattern": _pattern(rng, code, traits),
        "amplitude": round(traits.amplitude * _lognormal(rng, *profile.amplitude), 4),
        "focal": focal,
        "focus": focus if focal else None,
        "radius": [round(r0 * float(rng.uniform(0.8, 1.2)), 3),
                   round(8.0 if spread else r1 * float(rng.uniform(0.8, 1.2)), 3)],
        "postictal_s": round(float(rng.uniform(10, min(120, 20 + 2 * length))), 2)
        if rng.random() < profile.postictal and code not in ("absz", "mysz") else 0.0,
    }  # fmt: skip


def _onsets(ev: EventPlan) -> None:
    """Per-electrode onset (the field reaches it) and weight, for the per-channel annotations."""
    p = ev.params
    names = list(POSITIONS)
    if not p["focal"]:
        for name in names:
            ev.onsets[name], ev.weights[name] = ev.start, 1.0
        return
    fx, fy = POSITIONS[p["focus"]]
    r0, r1 = p["radius"]
    reach = min(r1, 4.0)
    spread_s = 0.4 * (ev.stop - ev.start)
    for name in names:
        d = math.hypot(POSITIONS[name][0] - fx, POSITIONS[name][1] - fy)
        if d > reach:
            continue
        frac = max(0.0, (d - r0) / max(reach - r0, 1e-6))
        ev.onsets[name] = round(min(ev.start + frac * spread_s, ev.stop - 1.0), 4)
        ev.weights[name] = round(math.exp(-((d / reach) ** 2)), 4)


def _place(
    rng: np.random.Generator, lengths: list[float], tails: list[float], duration: float
) -> list[float]:
    """Starts for back-to-back intervals (length + tail + gap) with random slack between them."""
    need = [a + b + GAP_S for a, b in zip(lengths, tails, strict=True)]
    slack = duration - 10.0 - sum(need) + GAP_S
    cuts = np.sort(rng.uniform(0, max(slack, 0.0), len(lengths)))
    starts, t = [], 5.0
    prev_cut = 0.0
    for cut, n in zip(cuts, need, strict=True):
        t += float(cut - prev_cut)
        starts.append(t)
        t += n
        prev_cut = float(cut)
    return starts


def plan_seizures(
    rng: np.random.Generator, files: list[FilePlan], traits: dict[str, Traits], profile: Profile
) -> None:
    """Seizures per file from the patient's rate, types, pattern and the profile's spreads."""
    for f in files:
        tr = traits[f.patient]
        if not (f.force_seizure or rng.random() < profile.seizure_files):
            continue
        count = 1 + int(rng.poisson(max(tr.seizure_rate - 1.0, 0.0)))
        drawn = []
        for _ in range(count):
            code = tr.codes[int(rng.integers(len(tr.codes)))]
            length = _duration(rng, code, profile)
            drawn.append((code, length, _seizure(rng, code, length, tr, profile)))
        room = f.duration - 10.0
        while drawn and sum(x[1] + x[2]["postictal_s"] + GAP_S for x in drawn) - GAP_S > room:
            if len(drawn) == 1:  # one seizure too long for the file: shorten it
                code, length, params = drawn[0]
                length = min(length, 0.6 * room)
                params["postictal_s"] = round(min(params["postictal_s"], 0.3 * room), 2)
                drawn = [(code, length, params)] if length >= 3.0 else []
                break
            drawn.pop()
        starts = _place(
            rng, [x[1] for x in drawn], [x[2]["postictal_s"] for x in drawn], f.duration
        )
        for (code, length, params), start in zip(drawn, starts, strict=True):
            ev = EventPlan(round(start, 4), round(start + length, 4), code, params=params)
            _onsets(ev)
            f.events.append(ev)
        if f.quirk == "event_past_end" and f.events:
            last = f.events[-1]
            last.start, last.stop = round(f.duration - (last.stop - last.start), 4), f.duration
            _onsets(last)


LOOKALIKE_SPANS = {  # seconds (lo, hi) of each kind when it is not one of the long ones
    "muscle": (1.0, 15.0), "chewing": (4.0, 30.0), "electrode_pop": (1.0, 20.0),
    "drift": (10.0, 90.0), "eye_movement": (3.0, 20.0), "drowsy_theta": (5.0, 40.0),
    "rhythmic_temporal": (4.0, 30.0), "slow_alpha_variant": (5.0, 30.0),
}  # fmt: skip


def plan_lookalikes(
    rng: np.random.Generator, f: FilePlan, tr: Traits, profile: Profile
) -> list[Lookalike]:
    """Artifacts and benign rhythms at the patient's rate, outside seizures; maybe some sleep."""
    kinds = list(profile.lookalike_weights)
    w = np.array([profile.lookalike_weights[k] for k in kinds], float)
    busy = [(ev.start - 3.0, ev.stop + 3.0) for ev in f.events]
    out: list[Lookalike] = []
    if rng.random() < profile.sleep_files and f.duration >= 120:
        length = f.duration * float(rng.uniform(0.3, 0.9))
        start = float(rng.uniform(0, f.duration - length))
        out.append(Lookalike("sleep", round(start, 4), round(start + length, 4), 1.0))
    n = int(rng.poisson(profile.lookalikes_per_hour * tr.artifact_rate * f.duration / 3600.0))
    for _ in range(n):
        kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
        if kind in RHYTHMIC_LOOKALIKES and rng.random() < profile.long_lookalikes:
            length = _duration(rng, "fnsz", profile)
        else:
            length = float(rng.uniform(*LOOKALIKE_SPANS[kind]))
        length = min(length, 0.5 * f.duration)
        for _attempt in range(20):
            start = float(rng.uniform(0, f.duration - length))
            if all(start + length <= a or start >= b for a, b in busy):
                break
        else:
            continue
        amp = _lognormal(rng, *profile.lookalike_amplitude)
        params: dict[str, Any] = {}
        if kind in ("electrode_pop", "drift"):
            params["channel"] = FOCI[int(rng.integers(len(FOCI)))]
        elif kind in ("muscle", "rhythmic_temporal"):
            params["side"] = "left" if rng.random() < 0.5 else "right"
        if kind in RHYTHMIC_LOOKALIKES and profile.lookalike_sharpness:
            params["sharpness"] = round(profile.lookalike_sharpness * float(rng.uniform(0.5, 1)), 3)
        out.append(Lookalike(kind, round(start, 4), round(start + length, 4), amp, params))
    return sorted(out, key=lambda lk: (lk.start, lk.kind))
