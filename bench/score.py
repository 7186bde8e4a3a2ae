"""`ictal score` throughput and memory, whole process, against a plain timescoring loop.

The issue's workload (`--workload issue`, the default): 5,000 synthetic `.csv_bi` pairs of
about 1 h (55 to 65 min) with about 5 seizures in each reference and about 5 events in each
hypothesis (hits, near misses, false alarms). Each command runs as its own process, start-up,
pairing and reading included, best of `--repeats` (the contenders take turns in each round):

- `ictal score` with all six scorers: pairs per second (target: at least 5,000/s), and the
  same rate against the peer below measured in the same run (at least 0.94x: the issue's
  5,000/s when the peer ran at 5,335/s; the absolute rate moves with the machine);
- `ictal score --scorers szcore` (SzCORE events and samples) against the peer measured in the
  same run: a plain Python loop over `timescoring` (files read with a csv loop, masks built
  by `timescoring.annotations.Annotation`, `EventScoring` with SzCORE's default parameters,
  counts pooled): the ratio must be above 1;
- peak memory (max RSS of the scoring processes) for a tenth of the pairs and for all of
  them: flat in the number of files (within 10 % and 10 MB).

`ictal score` scores 1,000 pairs or more in chunks on as many processes as the machine's
load leaves CPUs idle (this one among them, results put back in order: the same output as
one process); each run decides for itself, so a busy machine gets one process. Each row also
gives the CPU time (user + system, workers included): on a shared machine it moves less
than the wall time. `--workload tusz` is the older mix (10,000 pairs of 5 min to 1 h, 0-4
seizures).

With `--nedc DIR` (an unpacked NEDC `nedc_eeg_eval/v6.0.0` and `--nedc-python` a Python that
runs it), the official tool scores the same lists as one process too: its time, and whether
its pooled SEIZ counts equal Ictal's (TAES to the 0.01 it prints).

Run: PYTHONPATH=src python bench/score.py [--workload issue|tusz] [--pairs N] [--repeats 3]
     [--workdir DIR] [--nedc DIR --nedc-python PYTHON]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_line, table
from ictal.machine import usable_cpus
from ictal.score.scoring import score

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "# version = csv_v1.0.0\n# bname = {b}\n# duration = {d:.2f} secs\n"
    "# montage_file = nedc_eas_default_montage.txt\n#\n"
    "channel,start_time,stop_time,label,confidence\n"
)
TARGET_PAIRS_PER_S = 5000.0
# The same target against the peer measured in the same run: when issue 31 set 5,000 pairs/s,
# the timescoring loop ran at 5,335 pairs/s on the same machine. The rate moves with the
# machine (1.7x between two days here); the ratio is what a machine-independent bench checks.
PEER_WHEN_SET = 5335.0
TARGET_VS_PEER = TARGET_PAIRS_PER_S / PEER_WHEN_SET
SUBJECTS = 50  # recordings belong to 50 patients, as a corpus does (SzCORE pools by subject)


def _rows(duration: float, events: list[tuple[float, float]]) -> str:
    out, cursor = [], 0.0
    for a, b in events:
        if a > cursor:
            out.append(f"TERM,{cursor:.4f},{a:.4f},bckg,1.0000\n")
        out.append(f"TERM,{a:.4f},{b:.4f},seiz,1.0000\n")
        cursor = b
    if cursor < duration:
        out.append(f"TERM,{cursor:.4f},{duration:.4f},bckg,1.0000\n")
    return "".join(out)


def _disjoint(events: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted((max(0.0, a), min(duration, b)) for a, b in events):
        if b - a < 0.5 or (out and a < out[-1][1]):
            continue
        out.append((round(a, 4), round(b, 4)))
    return out


def _write_pair(
    ref_dir: Path,
    hyp_dir: Path,
    k: int,
    duration: float,
    refs: list[tuple[float, float]],
    hyps: list[tuple[float, float]],
) -> None:
    """One pair: the reference in a TUSZ-like tree, the hypothesis flat."""  # fmt: skip
    stem = f"aa{k % SUBJECTS:06d}_s{k // SUBJECTS:03d}_t000"  # SUBJECTS patients, many sessions
    sub = ref_dir / f"p{k % 100:02d}" / "s001"
    sub.mkdir(parents=True, exist_ok=True)
    (sub / f"{stem}.csv_bi").write_text(HEADER.format(b=stem, d=duration) + _rows(duration, refs))
    hyp_dir.mkdir(parents=True, exist_ok=True)
    (hyp_dir / f"{stem}.csv_bi").write_text(
        HEADER.format(b=stem, d=duration) + _rows(duration, hyps)
    )


def make_pairs(root: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """``n`` TUSZ-like pairs (5 min to 1 h, 0-4 seizures) under ``root/ref`` and ``root/hyp``."""
    rng = random.Random(seed)
    ref_dir, hyp_dir = root / "ref", root / "hyp"
    for k in range(n):
        duration = float(rng.choice([300, 600, 900, 1200, 1800, 3600]))
        refs = []
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 4])):
            a = rng.uniform(0, duration - 20)
            refs.append((a, a + rng.uniform(5, 120)))
        refs = _disjoint(refs, duration)
        hyps = []
        for a, b in refs:
            kind = rng.random()
            if kind < 0.5:
                hyps.append((a + rng.uniform(-10, 10), b + rng.uniform(-10, 10)))
            elif kind < 0.6:
                hyps.append((b, b + rng.uniform(1, 10)))  # touching
        for _ in range(rng.choice([0, 0, 1, 3])):
            a = rng.uniform(0, duration - 10)
            hyps.append((a, a + rng.uniform(1, 30)))
        _write_pair(ref_dir, hyp_dir, k, duration, refs, _disjoint(hyps, duration))
    return ref_dir, hyp_dir


def make_issue_pairs(root: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """``n`` pairs of about 1 h with about 5 seizures and 5 hypothesis events each."""
    rng = random.Random(seed)
    ref_dir, hyp_dir = root / "ref", root / "hyp"
    for k in range(n):
        duration = round(rng.uniform(3300, 3900), 2)
        refs = []
        for _ in range(5):
            a = rng.uniform(0, duration - 130)
            refs.append((a, a + rng.uniform(5, 120)))
        refs = _disjoint(refs, duration)
        hyps = []
        for a, b in refs:
            if rng.random() < 0.7:  # a hit, its edges off by up to 10 s
                hyps.append((a + rng.uniform(-10, 10), b + rng.uniform(-10, 10)))
        for _ in range(2):  # false alarms or near misses
            a = rng.uniform(0, duration - 40)
            hyps.append((a, a + rng.uniform(1, 30)))
        _write_pair(ref_dir, hyp_dir, k, duration, refs, _disjoint(hyps, duration))
    return ref_dir, hyp_dir


WORKLOADS = {"issue": (make_issue_pairs, 5_000), "tusz": (make_pairs, 10_000)}

# The peer: what a user without Ictal writes to score SzCORE events over many files.
TIMESCORING_LOOP = """
import csv, sys
from pathlib import Path
from timescoring.annotations import Annotation
from timescoring.scoring import EventScoring

def read(path):
    events, duration = [], None
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if row and row[0].startswith("# duration"):
                duration = float(row[0].split("=")[1].split()[0])
            elif row and row[0] == "TERM" and row[3] == "seiz":
                events.append((float(row[1]), float(row[2])))
    return events, duration

params = EventScoring.Parameters(toleranceStart=30, toleranceEnd=60, minOverlap=0,
                                 maxEventDuration=300, minDurationBetweenEvents=90)
tp = fp = ref_true = 0
pairs = 0
for ref in sorted(Path(sys.argv[1]).rglob("*.csv_bi")):
    ref_events, duration = read(ref)
    hyp_events, _ = read(Path(sys.argv[2]) / ref.name)
    n = int(duration)
    s = EventScoring(Annotation(ref_events, 1, n), Annotation(hyp_events, 1, n), params)
    tp, fp, ref_true, pairs = tp + s.tp, fp + s.fp, ref_true + s.refTrue, pairs + 1
print(pairs, tp, fp, ref_true)
"""


def _env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}


def whole_process(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds of one command as its own process, and the CPU seconds (user + system)
    of it and every process it waited for (its workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=_env())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def contenders(ref: Path, hyp: Path, work: Path) -> dict[str, list[str]]:
    """The commands timed against each other, by name."""
    cli = [sys.executable, "-m", "ictal", "score", str(ref), str(hyp)]
    return {
        "all six": [*cli, "--json", str(work / "all.json")],
        "szcore": [*cli, "--scorers", "szcore", "--json", str(work / "szcore.json")],
        "timescoring loop": [sys.executable, "-c", TIMESCORING_LOOP, str(ref), str(hyp)],
    }


def best_runs(commands: dict[str, list[str]], repeats: int) -> dict[str, tuple[float, float]]:
    """Each command's fastest run (wall and CPU seconds); the commands take turns in every
    round, so a busy spell of the machine falls on all of them."""
    best = dict.fromkeys(commands, (math.inf, math.inf))
    for _ in range(repeats):
        for name, cmd in commands.items():
            best[name] = min(best[name], whole_process(cmd))
    return best


PEAK = (
    "import json, resource, sys; from ictal.score.scoring import score; "
    "r = score(sys.argv[1], sys.argv[2], workers=2); "
    "kb = max(resource.getrusage(w).ru_maxrss for w in "
    "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)); "
    "print(json.dumps([r.files, kb]))"
)


def peak_rss_mb(ref: Path, hyp: Path) -> tuple[int, float]:
    """Files scored (all six scorers, two processes) and the max RSS (MB) of the processes
    scoring them."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(ref), str(hyp)], check=True, capture_output=True,
        text=True, env=_env(),
    ).stdout  # fmt: skip
    files, kb = json.loads(out.strip().splitlines()[-1])
    return files, kb / 1024.0


SECTIONS = {"dpalign": "DP ALIGNMENT", "epoch": "EPOCH", "ovlp": "OVERLAP", "taes": "TAES"}


def nedc_summary(text: str) -> dict[str, dict[str, float]]:
    """SEIZ targets, hits, misses and false alarms per scorer from NEDC's summary.txt."""
    out: dict[str, dict[str, float]] = {}
    for name, title in SECTIONS.items():
        block = text.split(f"NEDC {title} SCORING SUMMARY", 1)[1]
        seiz = block.split("LABEL: SEIZ", 1)[1].split("LABEL:", 1)[0]
        values = {}
        for key, field in (("Targets", "n_ref"), ("Hits", "hits"), ("Misses", "misses"),
                           ("False Alarms", "false_alarms")):  # fmt: skip
            line = next(x for x in seiz.splitlines() if x.strip().startswith(f"{key}:"))
            values[field] = float(line.split(":", 1)[1].split()[0])
        out[name] = values
    return out


def run_nedc(nedc: Path, python: str, ref: Path, hyp: Path, work: Path) -> tuple[float, dict]:
    """The official tool over the same pairs (list files in one order): seconds and counts."""
    refs = sorted(ref.rglob("*.csv_bi"), key=lambda p: p.name)
    hyps = [hyp / p.name for p in refs]
    (work / "ref.list").write_text("".join(f"{p}\n" for p in refs))
    (work / "hyp.list").write_text("".join(f"{p}\n" for p in hyps))
    out = work / "nedc-out"
    shutil.rmtree(out, ignore_errors=True)
    env = {"NEDC_NFC": str(nedc), "PYTHONPATH": str(nedc / "lib"), "PATH": "/usr/bin:/bin"}
    cmd = [python, str(nedc / "bin" / "nedc_eeg_eval"), "-p",
           str(nedc / "docs" / "params" / "nedc_eeg_eval_params_v00.toml"), "-o", str(out),
           str(work / "ref.list"), str(work / "hyp.list")]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return time.perf_counter() - t0, nedc_summary((out / "summary.txt").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="issue")
    ap.add_argument("--pairs", type=int, default=None, help="default: the workload's")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--nedc", type=Path, default=None, help="NEDC nedc_eeg_eval/v6.0.0 folder")
    ap.add_argument("--nedc-python", default=sys.executable, help="Python that runs NEDC")
    args = ap.parse_args()
    make, default_n = WORKLOADS[args.workload]
    n = args.pairs or default_n
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ictal-bench-score-"))
    big = make(work / "big", n)
    small = make(work / "small", max(1, n // 5))
    runs = best_runs(contenders(*big, work), args.repeats)
    small_files, small_mb = peak_rss_mb(*small)
    big_files, big_mb = peak_rss_mb(*big)
    flat = big_mb <= small_mb * 1.10 and big_mb - small_mb <= 10.0
    every, sz, peer = (n / runs[k][0] for k in ("all six", "szcore", "timescoring loop"))
    cpu = {k: f"{v[1]:.2f} CPU s" for k, v in runs.items()}
    rows = [
        ("ictal score, all six scorers", f"{every:,.0f} pairs/s", cpu["all six"],
         f">= {TARGET_PAIRS_PER_S:,.0f}/s", "met" if every >= TARGET_PAIRS_PER_S else "NOT MET"),
        ("  the same against the loop", f"{every / peer:.2f}x", "",
         f">= {TARGET_VS_PEER:.2f}x", "met" if every / peer >= TARGET_VS_PEER else "NOT MET"),
        ("ictal score --scorers szcore", f"{sz:,.0f} pairs/s", cpu["szcore"],
         f"{sz / peer:.2f}x the loop", "met" if sz > peer else "NOT MET"),
        ("timescoring loop (peer, events only)", f"{peer:,.0f} pairs/s",
         cpu["timescoring loop"], "", ""),
        (f"peak RSS, {small_files:,} pairs", f"{small_mb:.1f} MB", "", "", ""),
        (f"peak RSS, {big_files:,} pairs", f"{big_mb:.1f} MB", "", "within 10 % and 10 MB",
         "met" if flat else "NOT MET"),
    ]  # fmt: skip
    print(machine_line())
    print(f"{n:,} pairs ({args.workload} workload), whole process each, best of {args.repeats}; "
          f"ictal score: up to {usable_cpus()} processes, as many as the load leaves CPUs idle "
          "(results in order, the same output as one process); CPU time: user + system of "
          "the process and its workers")  # fmt: skip
    same = True
    if args.nedc is not None:
        t0 = time.perf_counter()
        ours = score(*big).totals
        ours_s = time.perf_counter() - t0
        seconds, theirs = run_nedc(args.nedc, args.nedc_python, *big, work)
        for name, counts in theirs.items():
            for field, value in counts.items():
                tol = 0.006 if name == "taes" and field != "n_ref" else 0.0
                same = same and abs(getattr(ours[name], field) - value) <= tol
        rows.append(
            (
                "NEDC v6.0.0 tool, four scorers",
                f"{n / seconds:,.0f} pairs/s",
                "",
                f"Ictal {n / ours_s:,.0f}/s",
                "same counts" if same else "COUNTS DIFFER",
            )
        )
        for name in SECTIONS:
            c, t = ours[name], theirs[name]
            print(
                f"{name}: Ictal {c.n_ref} targets, {c.hits:.2f} hits, {c.misses:.2f} misses, "
                f"{c.false_alarms:.2f} FAs; NEDC {t['n_ref']:.0f}, {t['hits']:.2f}, "
                f"{t['misses']:.2f}, {t['false_alarms']:.2f}"
            )
    print(table(["measure", "value (wall)", "its CPU time", "target", ""], rows, first=38))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    met = every >= TARGET_PAIRS_PER_S and sz > peer
    return 0 if met and flat and same else 1


if __name__ == "__main__":
    sys.exit(main())
