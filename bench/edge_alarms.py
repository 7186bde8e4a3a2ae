"""False alarms at recording edges: the old windowing (windows.edges=none) against the mirrored
ends (windows.edges=reflect), both arms trained and evaluated in the same run.

Through the real CLI: `ictal synth --difficulty realistic` twice (the training corpus, and a
held-out one with the next seed), `ictal build` of both (configs/demo.yaml; the caches are the
same for both arms), then per arm, side by side: `ictal train --set windows.edges=ARM`,
`ictal evaluate` on dev, on eval with dev's operating points (as scripts/demo.sh does), and on
every split of the held-out corpus at the same points, so the false-alarm counts mean
something. Pooled over those evaluations, at each OVLP operating point: the false alarms
(hypothesis events overlapping no reference event) and how many lie within EDGE_S of a
recording's start or end, against the share of recording time those edges make up; the
scorer's FA/24h and sensitivity; and the mean probability of background steps by distance
from the nearest edge; and both arms' FA/24h at equal sensitivity (each arm's curve over a
threshold grid, so how dev picked a threshold does not decide the comparison). Targets
(issue 30): the edge share of the false alarms, pooled over the operating points, at most
twice the edges' share of time; the mirrored arm's FA/24h at equal sensitivity nowhere
higher. With --measure-only the runs already in --work are measured again.

Run: .venv/bin/python bench/edge_alarms.py [--patients 30 --hours 30 --seed 11] [--epochs 12]
     [--holdout-patients 24 --holdout-hours 20] [--work DIR] [--keep] [--json FILE]
     [--measure-only]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common import machine_line, table
from difficulty import CONFIG, CommandFailed, point_at, run
from ictal.cache.locate import locate
from ictal.cache.manifest import CacheView, open_cache
from ictal.config_file import load_config
from ictal.events.postprocess import PostProcess, events_from_probs

PATIENTS, HOURS, SEED = 30, 30.0, 11
ARMS = ("none", "reflect")  # windows.edges: the old behaviour first
EDGE_S = 5.0
TARGET_RATIO = 2.0  # edge share of the false alarms <= this x the edges' share of time
SCORER = "ovlp"
SPLITS = ("train", "dev", "eval")
HOLDOUT_PATIENTS, HOLDOUT_HOURS = 24, 20.0
Recording = tuple[np.ndarray, list[tuple[float, float]], float]  # probs, reference, seconds


@dataclass
class Arm:
    """What one arm measured on eval: per target, (threshold, FA, edge FA, FA/24h, sens)."""

    edges: str
    run: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    profile: list[float] = field(default_factory=list)  # mean background probability per
    # second from the nearest edge (0-1 s, .., EDGE_S - 1 to EDGE_S s), then elsewhere
    curve: list[dict[str, float]] = field(default_factory=list)  # per threshold of GRID
    train_s: float = 0.0


GRID = [round(0.02 * k, 2) for k in range(1, 50)]  # thresholds of the matched comparison


def overlaps(ev: tuple[float, float], refs: list[tuple[float, float]]) -> bool:
    """True when the event shares any time with a reference event."""
    return any(ev[0] < b and a < ev[1] for a, b in refs)


def near_edge(ev: tuple[float, float], duration_s: float) -> bool:
    """True when the event comes within EDGE_S of the recording's start or end."""
    return ev[0] < EDGE_S or ev[1] > duration_s - EDGE_S


def edge_time_share(parts: list[tuple[CacheView, str, Path]]) -> float:
    """The share of the measured recording time within EDGE_S of a start or end."""
    durations = [int(r["n_samples"]) / view.fs for view, split, _ in parts
                 for r in view.split(split)]  # fmt: skip
    return sum(min(2 * EDGE_S, d) for d in durations) / sum(durations)


def _recordings(view: CacheView, split: str, eval_dir: Path) -> list[Recording]:
    """Probabilities, reference events and duration of each recording an evaluation scored."""
    out = []
    for r in view.split(split):
        probs = np.load(eval_dir / "probs" / f"{r['id']}.npy")
        refs = [(a / view.fs, b / view.fs) for a, b in r["seizures"]]
        out.append((probs, refs, int(r["n_samples"]) / view.fs))
    return out


def _profile(recs: list[Recording], fs_out: float) -> list[float]:
    """Mean probability of background steps per second from the nearest edge, then beyond."""
    bins = int(EDGE_S)
    sums, counts = np.zeros(bins + 1), np.zeros(bins + 1)
    for probs, refs, duration in recs:
        t = (np.arange(len(probs)) + 0.5) / fs_out
        background = np.ones(len(probs), dtype=bool)
        for a, b in refs:
            background &= (t < a) | (t >= b)
        which = np.minimum(np.minimum(t, duration - t), bins).astype(int)[background]
        sums += np.bincount(which, probs[background], minlength=bins + 1)
        counts += np.bincount(which, minlength=bins + 1)
    return [float(x) for x in sums / np.maximum(counts, 1)]


def _counts(recs: list[Recording], fs_out: float, post: PostProcess) -> dict[str, float]:
    """Pooled false alarms (all, near an edge), FA/24h and any-overlap sensitivity."""
    fa = edge = hits = n_ref = 0
    seconds = 0.0
    for probs, refs, duration in recs:
        events = events_from_probs(probs, fs_out, post)
        for ev in events:
            if not overlaps(ev, refs):
                fa += 1
                edge += near_edge(ev, duration)
        hits += sum(any(overlaps(ev, [r]) for ev in events) for r in refs)
        n_ref += len(refs)
        seconds += duration
    return {"fa": fa, "edge_fa": edge, "fa_per_24h": 86400.0 * fa / seconds,
            "sensitivity": hits / max(n_ref, 1)}  # fmt: skip


def matched(curve: list[dict[str, float]], sens: float) -> float:
    """The lowest FA/24h on ``curve`` at a sensitivity of at least ``sens``."""
    reach = [c["fa_per_24h"] for c in curve if c["sensitivity"] >= sens - 1e-12]
    return min(reach) if reach else float("nan")


def measure_arm(arm: Arm, parts: list[tuple[CacheView, str, Path]]) -> None:
    """False alarms (all and near an edge) at each OVLP operating point, pooled over the
    evaluations ``parts`` (view, split, directory), with the scorer's pooled FA/24h and
    sensitivity; and the probability profile at the edges."""
    docs = [json.loads((d / "scores.json").read_text(encoding="utf-8")) for _, _, d in parts]
    fs_out = float(docs[0]["inference"]["fs_out"])
    pp = docs[0]["operating_points"]["postprocess"]
    recs = [rec for view, split, d in parts for rec in _recordings(view, split, d)]
    arm.profile = _profile(recs, fs_out)
    arm.curve = [_counts(recs, fs_out, PostProcess(**(pp | {"threshold": t}))) | {"threshold": t}
                 for t in GRID]  # fmt: skip
    for row in docs[0]["operating_points"]["points"][SCORER]:
        target, threshold = float(row["target_fa_per_24h"]), row["threshold"]
        if threshold is None:
            arm.rows.append({"target": target, "threshold": None})
            continue
        post = PostProcess(**(pp | {"threshold": float(threshold)}))
        fa = edge = 0
        for probs, refs, duration in recs:
            for ev in events_from_probs(probs, fs_out, post):
                if not overlaps(ev, refs):
                    fa += 1
                    edge += near_edge(ev, duration)
        counts = [point_at(doc, SCORER, target)["counts"] for doc in docs]  # same thresholds
        total = {k: sum(float(c[k]) for c in counts)
                 for k in ("false_alarms", "duration_s", "hits", "n_ref")}  # fmt: skip
        arm.rows.append({"target": target, "threshold": float(threshold), "fa": fa,
                         "edge_fa": edge, "scorer_fa": total["false_alarms"],
                         "fa_per_24h": 86400.0 * total["false_alarms"] / total["duration_s"],
                         "sensitivity": total["hits"] / max(total["n_ref"], 1.0)})  # fmt: skip


def evaluate_holdout(arm: Arm, hold_args: list[str], logs: Path, t0: float) -> None:
    """Evaluate the arm's best checkpoint on every split of the held-out corpus at the
    operating points chosen on its own dev split."""
    run_dir = Path(arm.run)
    best = run_dir / "checkpoints" / "best.pt"
    ops = run_dir / "eval-best-dev" / "operating_points.json"
    for split in SPLITS:
        run(["evaluate", str(best), "--split", split, "--operating-points", str(ops),
             "--out", str(run_dir / f"holdout-{split}"), *hold_args],
            logs, f"{arm.edges} holdout {split}", t0)  # fmt: skip


def train_and_evaluate(arm: Arm, cfg_args: list[str], runs: Path, logs: Path, t0: float) -> Path:
    """Train one arm, evaluate it on dev then on eval at dev's points; its eval directory."""
    arm_runs = runs / arm.edges  # each arm its own runs root: the runs cannot be confused
    sets = ["--set", f"windows.edges={arm.edges}", "--set", f"runs.root={arm_runs}"]
    arm.train_s = run(["train", *cfg_args, *sets], logs, f"{arm.edges} train", t0)
    best = latest_best(arm_runs)
    run_dir = best.parent.parent
    arm.run = str(run_dir)
    ev = [*cfg_args, *sets]
    run(["evaluate", str(best), "--split", "dev", *ev], logs, f"{arm.edges} eval dev", t0)
    ops = run_dir / "eval-best-dev" / "operating_points.json"
    run(["evaluate", str(best), "--split", "eval", "--operating-points", str(ops), *ev],
        logs, f"{arm.edges} eval eval", t0)  # fmt: skip
    return run_dir / "eval-best-eval"


def latest_best(arm_runs: Path) -> Path:
    """The best checkpoint of the newest run under an arm's runs root."""
    found = sorted(arm_runs.glob("*/checkpoints/best.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CommandFailed(["ictal", "train"], 0, f"no best.pt under {arm_runs}")
    return found[-1]


def _share(edge: int, fa: int) -> str:
    return f"{edge}/{fa} = {100 * edge / fa:.0f} %" if fa else "0/0"


def report(arms: list[Arm], time_share: float) -> bool:
    """Print the per-point table, the mean probabilities and the target check; True if met."""
    print(f"\nOVLP operating points chosen on dev; edge = within {EDGE_S:g} s of a recording's "
          f"start or end ({100 * time_share:.2f} % of the measured time)")  # fmt: skip
    rows = []
    for arm in arms:
        for r in arm.rows:
            if r["threshold"] is None:
                rows.append([f"{arm.edges} @ {r['target']:g} FA/24h", "-", "-", "-", "-"])
                continue
            rows.append([f"{arm.edges} @ {r['target']:g} FA/24h", f"{r['threshold']:.3f}",
                         _share(r["edge_fa"], r["fa"]), f"{r['fa_per_24h']:.1f}",
                         f"{r['sensitivity']:.3f}"])  # fmt: skip
    heads = ["arm @ dev target", "threshold", "edge FA / all FA", "FA/24h", "sensitivity"]
    print(table(heads, rows))
    print("\nmean probability of background output steps (no seizure), by distance from the "
          "nearest edge of the recording")  # fmt: skip
    heads = ["arm", *(f"{k}-{k + 1} s" for k in range(int(EDGE_S))), f">= {EDGE_S:g} s"]
    print(table(heads, [[a.edges, *(f"{x:.3f}" for x in a.profile)] for a in arms], first=10))
    met = print_matched(arms)
    print(
        f"\ntarget: edge share of false alarms (pooled over the points) <= "
        f"{TARGET_RATIO:g} x {100 * time_share:.2f} % = {100 * TARGET_RATIO * time_share:.1f} %"
    )
    for arm in arms:
        fa = sum(r.get("fa", 0) for r in arm.rows)
        edge = sum(r.get("edge_fa", 0) for r in arm.rows)
        ok = fa == 0 or edge / fa <= TARGET_RATIO * time_share
        met = met and ok if arm.edges == "reflect" else met
        print(f"  {arm.edges:8s} {_share(edge, fa):>18s}  {'met' if ok else 'NOT MET'}")
    return met


def print_matched(arms: list[Arm]) -> bool:
    """Both arms' curves compared at equal sensitivity, free of how dev picked a threshold;
    True when the mirrored arm's FA/24h is nowhere higher."""
    none, reflect = arms
    print("\nat equal sensitivity (any-overlap, pooled; thresholds 0.02-0.98 in steps of 0.02): "
          "the lowest FA/24h of each arm reaching it")  # fmt: skip
    rows, ok = [], True
    for r in none.rows:
        if r["threshold"] is None:
            continue
        c = next(c for c in none.curve if abs(c["threshold"] - r["threshold"]) < 1e-9)
        sens = c["sensitivity"]
        old, new = matched(none.curve, sens), matched(reflect.curve, sens)
        ok = ok and new <= old
        rows.append([f"none @ {r['target']:g} FA/24h (t={r['threshold']:.2f})", f"{sens:.3f}",
                     f"{old:.1f}", f"{new:.1f}"])  # fmt: skip
    print(table(["sensitivity of", "sensitivity", "none FA/24h", "reflect FA/24h"], rows))
    print(f"target: reflect's FA/24h at equal sensitivity not higher: {'met' if ok else 'NOT MET'}")
    return ok


def measured_parts(
    arm: Arm, view: CacheView, holdout: CacheView | None
) -> list[tuple[CacheView, str, Path]]:
    """The evaluations an arm is measured on: eval of its corpus, every split of the holdout."""
    run_dir = Path(arm.run)
    parts = [(view, "eval", run_dir / "eval-best-eval")]
    if holdout is not None:
        parts += [(holdout, split, run_dir / f"holdout-{split}") for split in SPLITS]
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=PATIENTS)
    ap.add_argument("--hours", type=float, default=HOURS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--epochs", type=int, default=12, help="train.epochs of each arm")
    ap.add_argument("--holdout-patients", type=int, default=HOLDOUT_PATIENTS)
    ap.add_argument("--holdout-hours", type=float, default=HOLDOUT_HOURS,
                    help="a second corpus (seed + 1), every split evaluated; 0: none")  # fmt: skip
    ap.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--measure-only", action="store_true", help="measure the runs in --work")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ictal-edges-"))
    corpus, cache, runs, logs = (work / n for n in ("corpus", "cache", "runs", "logs"))
    sets = [f"corpus.root={corpus}", f"cache.root={cache}", f"runs.root={runs}",
            f"train.epochs={args.epochs}"]  # fmt: skip
    hold = [f"corpus.root={work / 'holdout'}", f"cache.root={work / 'holdout-cache'}",
            f"runs.root={runs}"]  # fmt: skip
    cfg_args = ["-c", str(CONFIG)] + [a for s in sets for a in ("--set", s)]
    hold_args = ["-c", str(CONFIG)] + [a for s in hold for a in ("--set", s)]
    t0 = time.perf_counter()
    print(machine_line())
    arms = [Arm(edges) for edges in ARMS]
    try:
        if not args.measure_only:
            prepare(args, corpus, work / "holdout", cfg_args, hold_args, logs, t0)
            with ThreadPoolExecutor(len(arms)) as pool:
                list(pool.map(lambda a: train_and_evaluate(a, cfg_args, runs, logs, t0), arms))
                if args.holdout_hours > 0:
                    list(pool.map(lambda a: evaluate_holdout(a, hold_args, logs, t0), arms))
        view = open_cache(locate(load_config(CONFIG, sets)).path)
        holdout = open_cache(locate(load_config(CONFIG, hold)).path) if args.holdout_hours else None
        for arm in arms:
            arm.run = str(latest_best(runs / arm.edges).parent.parent)
            measure_arm(arm, measured_parts(arm, view, holdout))
    except CommandFailed as exc:
        sys.exit(f"{exc}\n{exc.tail}")
    report_all(arms, measured_parts(arms[0], view, holdout), args)
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def prepare(args: argparse.Namespace, corpus: Path, holdout: Path, cfg_args: list[str],
            hold_args: list[str], logs: Path, t0: float) -> None:  # fmt: skip
    """Synthesize (unless there) and build the training corpus and the held-out one."""
    pairs = [(corpus, args.patients, args.hours, args.seed, cfg_args)]
    if args.holdout_hours > 0:
        pairs.append((holdout, args.holdout_patients, args.holdout_hours, args.seed + 1, hold_args))
    for root, patients, hours, seed, cfg in pairs:
        if not root.exists():
            synth = ["synth", str(root), "--patients", str(patients), "--hours", f"{hours:g}",
                     "--seed", str(seed), "--difficulty", "realistic"]  # fmt: skip
            run(synth, logs, f"synth {root.name}", t0)
        run(["build", *cfg], logs, f"build {root.name}", t0)


def report_all(
    arms: list[Arm], parts: list[tuple[CacheView, str, Path]], args: argparse.Namespace
) -> None:
    """The corpus line, the tables and the target line; the JSON file when asked."""
    rows = [r for view, split, _ in parts for r in view.split(split)]
    hours = sum(int(r["n_samples"]) / view.fs for view, split, _ in parts
                for r in view.split(split)) / 3600  # fmt: skip
    seizures = sum(len(r["seizures"]) for r in rows)
    print(f"\ntrained on: {args.patients} patients, {args.hours:g} h, seed {args.seed}, "
          f"realistic, {args.epochs} epochs of 40 steps per arm; measured on: eval of that "
          f"corpus and every split of a held-out one ({args.holdout_patients} patients, "
          f"{args.holdout_hours:g} h, seed {args.seed + 1}): {len(rows)} recordings, "
          f"{hours:.1f} h, {seizures} seizures")  # fmt: skip
    met = report(arms, edge_time_share(parts))
    if args.json:
        args.json.write_text(json.dumps([a.__dict__ for a in arms], indent=1), encoding="utf-8")
    print(f"\nreflect arm: target {'met' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
