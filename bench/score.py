"""`ictal score` throughput and memory on many small file pairs.

10,000 synthetic `.csv_bi` pairs (TUSZ-like: 5 min to 1 h, 0-4 seizures, hypotheses that hit,
miss, touch and wander), scored by `ictal score` as one process on one core:

- pairs per second for OVLP+TAES, reading and pairing the files included
  (target: above 5,000/s), and for all six scorers (no target: EPOCH and SzCORE sample every
  recording);
- peak memory (max RSS of a fresh process) for 1,000 and for 10,000 pairs: flat in the number
  of files (target: the larger run within 10 % and 10 MB of the smaller one).

With `--nedc DIR` (an unpacked NEDC `nedc_eeg_eval/v6.0.0` and `--nedc-python` a Python that
runs it), the official tool scores the same lists as one process too: its time, and whether
its pooled SEIZ counts equal Ictal's (TAES to the 0.01 it prints).

Run: PYTHONPATH=src python bench/score.py [--pairs 10000] [--repeats 3] [--workdir DIR]
     [--nedc DIR --nedc-python PYTHON]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_line, table
from ictal.score.scoring import score

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "# version = csv_v1.0.0\n# bname = {b}\n# duration = {d:.2f} secs\n"
    "# montage_file = nedc_eas_default_montage.txt\n#\n"
    "channel,start_time,stop_time,label,confidence\n"
)
TARGET_PAIRS_PER_S = 5000.0


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


def make_pairs(root: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """``n`` reference / hypothesis pairs under ``root/ref`` (nested) and ``root/hyp``."""
    rng = random.Random(seed)
    ref_dir, hyp_dir = root / "ref", root / "hyp"
    for k in range(n):
        stem = f"aa{k:06d}_s001_t000"
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
        hyps = _disjoint(hyps, duration)
        sub = ref_dir / f"p{k % 100:02d}" / "s001"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{stem}.csv_bi").write_text(
            HEADER.format(b=stem, d=duration) + _rows(duration, refs)
        )
        hyp_dir.mkdir(parents=True, exist_ok=True)
        (hyp_dir / f"{stem}.csv_bi").write_text(
            HEADER.format(b=stem, d=duration) + _rows(duration, hyps)
        )
    return ref_dir, hyp_dir


def rate(ref: Path, hyp: Path, scorers: str | None, repeats: int) -> tuple[float, int]:
    """Best pairs per second of `score` over ``repeats`` runs, and the number of pairs."""
    best = 0.0
    files = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = score(ref, hyp, scorers=scorers)
        elapsed = time.perf_counter() - t0
        files = result.files
        best = max(best, files / elapsed)
    return best, files


PEAK = (
    "import json, resource, sys; from ictal.score.scoring import score; "
    "r = score(sys.argv[1], sys.argv[2], scorers='ovlp,taes', json_out=None); "
    "print(json.dumps([r.files, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))"
)


def peak_rss_mb(ref: Path, hyp: Path) -> tuple[int, float]:
    """Files scored and the max RSS (MB) of a fresh process scoring them."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(ref), str(hyp)], check=True, capture_output=True,
        text=True, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
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
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--nedc", type=Path, default=None, help="NEDC nedc_eeg_eval/v6.0.0 folder")
    ap.add_argument("--nedc-python", default=sys.executable, help="Python that runs NEDC")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ictal-bench-score-"))
    import logging

    logging.getLogger("ictal").setLevel(logging.WARNING)
    small_n = max(1, args.pairs // 10)
    big = make_pairs(work / "big", args.pairs)
    small = make_pairs(work / "small", small_n)
    fast, n = rate(*big, "ovlp,taes", args.repeats)
    every, _ = rate(*big, None, 1)
    small_files, small_mb = peak_rss_mb(*small)
    big_files, big_mb = peak_rss_mb(*big)
    flat = big_mb <= small_mb * 1.10 and big_mb - small_mb <= 10.0
    rows = [
        ("OVLP+TAES, files read and paired", f"{fast:,.0f} pairs/s",
         f"> {TARGET_PAIRS_PER_S:,.0f}/s", "met" if fast > TARGET_PAIRS_PER_S else "NOT MET"),
        ("all six scorers", f"{every:,.0f} pairs/s", "-", "-"),
        (f"peak RSS, {small_files:,} pairs", f"{small_mb:.1f} MB", "", ""),
        (f"peak RSS, {big_files:,} pairs", f"{big_mb:.1f} MB", "within 10 % and 10 MB",
         "met" if flat else "NOT MET"),
    ]  # fmt: skip
    print(machine_line())
    print(f"{n:,} pairs (best of {args.repeats}); one process, one core")
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
    print(table(["measure", "value", "target", ""], rows))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if fast > TARGET_PAIRS_PER_S and flat and same else 1


if __name__ == "__main__":
    sys.exit(main())
