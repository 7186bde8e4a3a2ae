"""``ictal score``'s fast path against the per-pair scorers it replaced, on 2,400 generated
pairs: every count of every scorer, pair by pair, must be the same.

The references below are the implementations ``ictal score`` used before it scored on runs
and in worker processes: OVLP testing each candidate event, EPOCH painting an array of epoch
centres, SzCORE building both masks sample by sample and handing them to ``timescoring``.
The pairs mix NEDC ``.csv_bi`` and SzCORE ``.tsv`` files with sub-second times, touching
events, events on epoch centres, zero-length TSV rows, header-only and missing hypotheses
and files with no seizure at all.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
from timescoring.annotations import Annotation
from timescoring.scoring import EventScoring, SampleScoring

from ictal.cli import run
from ictal.events.counts import EventCounts
from ictal.events.formats import ScoredFile, read_file
from ictal.events.nedc import (
    Timeline,
    _check_pair,
    _epoch_labels,
    _Index,
    _strict,
    build_timeline,
    dpalign,
    epoch_times,
    taes,
)
from ictal.events.szcore import DEFAULT, SzcoreParams, n_samples
from ictal.score.scoring import COUNT_FIELDS, score

PAIRS = 2400  # above the size at which ictal score hands chunks to worker processes
NEDC_HEADER = "# version = csv_v1.0.0\n# bname = {b}\n# duration = {d:.4f} secs\n#\n"
TSV_HEADER = "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n"


# --- the per-pair reference ----------------------------------------------------------------


def old_ovlp(ref: Timeline, hyp: Timeline) -> EventCounts:
    _check_pair(ref, hyp)
    r, h = ref.seizures, hyp.seizures
    hi, ri = _Index(h), _Index(r)
    hits = sum(any(_strict(x, h[j]) for j in hi.overlapping(*x)) for x in r)
    false_alarms = sum(not any(_strict(y, r[i]) for i in ri.overlapping(*y)) for y in h)
    return EventCounts(float(hits), float(len(r) - hits), float(false_alarms), len(r), 0.0)


def old_epoch(ref: Timeline, hyp: Timeline) -> EventCounts:
    _check_pair(ref, hyp)
    times = epoch_times(ref.duration_s)
    r, h = _epoch_labels(ref, times), _epoch_labels(hyp, times)
    hits, n_ref = int(np.count_nonzero(r & h)), int(np.count_nonzero(r))
    false_alarms = int(np.count_nonzero(~r & h))
    return EventCounts(float(hits), float(n_ref - hits), float(false_alarms), n_ref, 0.0)


def old_mask(events, duration_s: float, fs: int) -> np.ndarray:
    mask = np.zeros(n_samples(duration_s, fs), dtype=bool)
    for start, stop in events:
        mask[max(int(start * fs), 0) : max(int(stop * fs), 0)] = True
    return mask


def old_szcore(ref: ScoredFile, hyp: ScoredFile | None, p: SzcoreParams) -> list[EventCounts]:
    hyp_events = () if hyp is None else hyp.seizures
    masks = [
        Annotation(old_mask(e, ref.duration_s, p.fs), p.fs) for e in (ref.seizures, hyp_events)
    ]
    out = []
    for s in (EventScoring(*masks, p.event_parameters()), SampleScoring(*masks, fs=p.fs)):
        tp, ref_true = int(s.tp), int(s.refTrue)
        out.append(EventCounts(float(tp), float(ref_true - tp), float(s.fp), ref_true, 0.0))
    return out


def reference_counts(ref_path: Path, hyp_path: Path | None) -> dict[str, EventCounts]:
    """One pair's counts by the replaced per-pair scorers (a header-only TSV: empty)."""
    ref = read_file(ref_path)
    hyp = read_file(hyp_path) if hyp_path is not None and _has_rows(hyp_path) else None
    hyp_tl = hyp.timeline if hyp is not None else build_timeline([], ref.timeline.duration_s)
    both = old_szcore(ref, hyp, DEFAULT)
    return {"ovlp": old_ovlp(ref.timeline, hyp_tl), "taes": taes(ref.timeline, hyp_tl),
            "epoch": old_epoch(ref.timeline, hyp_tl), "dpalign": dpalign(ref.timeline, hyp_tl),
            "szcore": both[0], "szcore_samples": both[1]}  # fmt: skip


def _has_rows(path: Path) -> bool:
    return not path.name.endswith(".tsv") or len(path.read_text().splitlines()) > 1


# --- the generated pairs -------------------------------------------------------------------


def _events(rng: random.Random, duration: float, n: int) -> list[tuple[float, float]]:
    """Disjoint events: sub-second ones, touching neighbours, some on epoch centres."""
    out: list[tuple[float, float]] = []
    t = 0.0
    for _ in range(n):
        gap = rng.choice([0.0, 0.0, rng.uniform(0, 3), rng.uniform(0, duration / 3)])
        start = rng.choice([t + gap, 0.125 + 0.25 * int((t + gap) * 4)])
        stop = start + rng.choice([rng.uniform(0.05, 0.9), rng.uniform(1, 200), 0.25, 1.0])
        if start < t or stop > duration:
            break
        out.append((start, stop))
        t = stop
    return out


def _csv_bi(path: Path, duration: float, events: list[tuple[float, float]]) -> None:
    rows = "".join(f"TERM,{a:.4f},{b:.4f},seiz,1.0000\n" for a, b in events)
    path.write_text(NEDC_HEADER.format(b=path.stem, d=duration) + rows)


def _tsv(path: Path, duration: float, events, rng: random.Random, header_only: bool) -> None:
    lines = [] if header_only else [f"0.00\t{duration:.2f}\tbckg\tn/a\tn/a\tn/a\t{duration:.2f}"]
    for a, b in events:
        length = 0.0 if rng.random() < 0.1 else b - a  # a zero-length row: skipped
        lines.append(f"{a:.2f}\t{length:.2f}\tsz_foc\tn/a\tn/a\tn/a\t{duration:.2f}")
    path.write_text(TSV_HEADER + "".join(f"{x}\n" for x in lines))


def make_pairs(root: Path, n: int, seed: int = 31) -> tuple[Path, Path]:
    """``n`` pairs: two thirds ``.csv_bi``, a third ``.tsv``; one in 12 without a hypothesis."""
    rng = random.Random(seed)
    ref_dir, hyp_dir = root / "ref", root / "hyp"
    ref_dir.mkdir(parents=True)
    hyp_dir.mkdir()
    for k in range(n):
        tsv = k % 3 == 2
        duration = round(rng.choice([rng.uniform(1, 40), rng.uniform(40, 3600), 600.9]),
                         2 if tsv else 4)  # fmt: skip
        refs = _events(rng, duration, rng.choice([0, 1, 2, 5, 8]))
        hyps = _events(rng, duration, rng.choice([0, 1, 3, 6]))
        stem = f"p{k % 40:03d}_s{k:05d}"
        if tsv:
            _tsv(ref_dir / f"{stem}_events.tsv", duration, refs, rng, False)
            if k % 12 != 11:
                _tsv(hyp_dir / f"{stem}_events.tsv", duration, hyps, rng, rng.random() < 0.05)
        else:
            _csv_bi(ref_dir / f"{stem}.csv_bi", duration, refs)
            if k % 12 != 11:
                _csv_bi(hyp_dir / f"{stem}.csv_bi", duration, hyps)
    return ref_dir, hyp_dir


def _counts(row: dict[str, str], name: str) -> tuple[float, ...]:
    return tuple(float(row[f"{name}_{f}"]) for f in COUNT_FIELDS)


def test_every_count_equals_the_per_pair_scorers(tmp_path: Path) -> None:
    ref_dir, hyp_dir = make_pairs(tmp_path, PAIRS)
    table = tmp_path / "per-file.csv"
    code = run(["score", str(ref_dir), str(hyp_dir), "--missing-hyp", "empty",
                "--per-file", str(table), "--workers", "2"])  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == PAIRS
    differ = []
    for row in rows:
        hyp = Path(row["hyp"]) if row["hyp"] else None
        want = reference_counts(Path(row["ref"]), hyp)
        for name, c in want.items():
            theirs = (c.hits, c.misses, c.false_alarms, float(c.n_ref))
            ours = _counts(row, name)
            if any(abs(a - b) > 1e-6 for a, b in zip(ours, theirs, strict=True)):
                differ.append(f"{row['recording']} {name}: {ours} != {theirs}")
    assert differ == [], f"{len(differ)} counts differ:\n" + "\n".join(differ[:10])
    kinds = {Path(r["ref"]).suffix for r in rows}
    assert kinds == {".csv_bi", ".tsv"} and sum(not r["hyp"] for r in rows) == PAIRS // 12


def test_one_process_and_many_write_the_same_table(tmp_path: Path) -> None:
    ref_dir, hyp_dir = make_pairs(tmp_path, 1200, seed=7)
    tables = []
    for workers in (1, 2):
        table = tmp_path / f"per-file-{workers}.csv"
        result = score(ref_dir, hyp_dir, missing_hyp="empty", per_file=table, workers=workers)
        assert result.files == 1200
        tables.append(table.read_bytes())
    assert tables[0] == tables[1]


def _random_params(rng: random.Random) -> SzcoreParams:
    return SzcoreParams(
        fs=rng.choice([1, 1, 2, 3, 4, 10, 256]),
        tolerance_start_s=rng.choice([30.0, 0.0, 5.0, 0.35]),
        tolerance_end_s=rng.choice([60.0, 0.0, 12.5, 0.05]),
        min_overlap=rng.choice([0.0, 0.0, 0.2, 0.5]),
        max_event_s=rng.choice([300.0, 120.0, 0.3, 1.0, 7.0]),
        merge_gap_s=rng.choice([90.0, 20.0, 0.0, 0.5]),
    )


def _loose_events(rng: random.Random, duration: float) -> list[tuple[float, float]]:
    """Events as any caller may hand them: overlapping, touching, outside the recording,
    of zero length."""
    out = []
    for _ in range(rng.choice([0, 1, 2, 5, 9])):
        start = rng.choice([rng.uniform(-2, duration + 2), round(rng.uniform(0, duration), 1)])
        out.append((start, start + rng.choice([0.0, rng.uniform(0, 2), rng.uniform(0, 99), 1.0])))
    if out and rng.random() < 0.3:
        out.append((out[-1][1], out[-1][1] + rng.uniform(0, 5)))
    return out


def test_szcore_on_runs_equals_timescoring_for_any_parameters() -> None:
    """Rates, tolerances, overlaps, splits and merges as configurable, on loose events."""
    from ictal.events.szcore import score_pair

    rng = random.Random(5)
    differ = []
    for _ in range(1500):
        p = _random_params(rng)
        duration = rng.uniform(0.5, 60) if p.fs > 10 else rng.choice([rng.uniform(1, 700), 3600.0])
        ref, hyp = _loose_events(rng, duration), _loose_events(rng, duration)
        ours = score_pair(ref, hyp, duration, p)
        masks = [Annotation(old_mask(e, duration, p.fs), p.fs) for e in (ref, hyp)]
        theirs = (EventScoring(*masks, p.event_parameters()), SampleScoring(*masks, fs=p.fs))
        for c, s in zip(ours, theirs, strict=True):
            if (c.hits, c.n_ref, c.false_alarms, c.duration_s) != (
                s.tp,
                s.refTrue,
                s.fp,
                s.numSamples / s.fs,
            ):
                differ.append(f"{ref} {hyp} {duration} {p}")
    assert differ == [], f"{len(differ)} differ:\n" + "\n".join(differ[:5])


def test_idle_cpus_takes_the_load_off_the_usable_cpus(monkeypatch) -> None:
    """A busy machine gets one scoring process, an idle one a process per CPU; busy is the
    lesser of the lagging load average and what is runnable now."""
    from ictal import machine

    monkeypatch.setattr(machine, "usable_cpus", lambda: 4)
    cases = [  # load average, runnable now (None: no /proc), processes
        (0.0, None, 4), (0.4, None, 4), (1.2, None, 3), (3.6, None, 1), (40.0, None, 1),
        (3.9, 0, 4),  # the job before just ended: the average still shows it
        (0.1, 6, 4),  # a passing burst: the average says the machine is idle
        (2.0, 2, 2), (8.0, 9, 1),
    ]  # fmt: skip
    for load, now, want in cases:
        monkeypatch.setattr(machine.os, "getloadavg", lambda load=load: (load, load, load))
        monkeypatch.setattr(machine, "runnable_now", lambda now=now: now)
        assert machine.idle_cpus() == want, (load, now)


def test_runnable_now_reads_the_fourth_field_of_loadavg(tmp_path) -> None:
    from ictal.machine import runnable_now

    f = tmp_path / "loadavg"
    for text, want in (("0.52 0.81 1.30 3/611 4242\n", 2), ("0.00 0.00 0.00 1/90 7\n", 0),
                       ("0.1 0.1 0.1 0/90 7", 0), ("garbage", None), ("", None),
                       ("1 2 3 x/9 1", None)):  # fmt: skip
        f.write_text(text)
        assert runnable_now(str(f)) == want, text
    assert runnable_now(str(tmp_path / "absent")) is None


def test_unusable_files_among_many_are_all_named_in_order(tmp_path: Path, capsys) -> None:
    """Worker processes report the files they cannot score as one process does: every one,
    in the pairs' order, exit 2, and no table written."""
    ref_dir, hyp_dir = make_pairs(tmp_path, 1200, seed=3)
    bad = sorted(hyp_dir.glob("*.csv_bi"))[::500]
    for path in bad:
        path.write_text(path.read_text().replace("seiz,1.0000", "seiz,one", 1) + "TERM,x\n")
    table = tmp_path / "per-file.csv"
    code = run(["score", str(ref_dir), str(hyp_dir), "--missing-hyp", "empty",
                "--per-file", str(table), "--workers", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and not table.exists()
    assert f"{len(bad)} of 1200 pairs cannot be scored" in err
    named = [line.split(":")[0] for line in err.splitlines() if line.startswith(str(hyp_dir))]
    assert named == [str(p) for p in bad]
