"""How hard each synthetic-corpus difficulty is: a simple feature detector and the demo model.

Per difficulty, through the real CLI: `ictal synth`, then `ictal build` with configs/demo.yaml.
Simple detector (no torch): the cached recordings cut into non-overlapping 10 s windows
(seizure when more than half is seizure), log line length and log band powers per channel
summarised across channels, class-balanced L2 logistic regression fit on train. Default model
(unless --skip-model): `ictal train`, `ictal evaluate` on dev, then on eval with dev's operating
points, as scripts/demo.sh does. Reported on eval: window AUROC of both detectors on the same
windows, the model's sample AUROC and OVLP sensitivity at 10 FA/24h, and difficulty targets
(met or NOT MET; reported, not asserted). Eval has few seizures: the numbers are noisy.

Run: .venv/bin/python bench/difficulty.py [--difficulties easy,realistic,hard] [--skip-model]
     [--patients 24 --hours 14 --seed 7] [--json FILE] [--work DIR] [--keep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal as sps
from scipy.optimize import minimize
from scipy.special import expit

from common import machine_line, table
from ictal.auroc import HistogramAuroc
from ictal.cache.locate import locate
from ictal.cache.manifest import CacheView, open_cache
from ictal.config_file import load_config
from ictal.data.windows import WindowIndex, index_recordings

PATIENTS = 24
HOURS = 18.0
SEED = 7
DIFFICULTIES = ("easy", "realistic", "hard")
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "demo.yaml"

WINDOW_S = 10.0
SEIZURE_FRACTION = 0.5  # a window is seizure when strictly more than this is seizure
BANDS = ((0.5, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 70.0))
WELCH_S = 2.0  # Welch segment: 0.5 Hz resolution, 9 half-overlapping segments per window
L2 = 1e-3  # on standardised features, with the class weights summing to 1
AUROC_BINS = 100_000  # window AUROC: fine bins, so near-saturated scores rarely tie
TARGET_FA = 10.0
PROGRESS_S = 60.0  # a running command prints its elapsed time this often

TARGET_EASY_SIMPLE = 0.97
TARGET_REALISTIC_SENS = (0.60, 0.90)
TARGET_HARD_SIMPLE = 0.85
TARGET_HARD_MARGIN = 0.05


class CommandFailed(Exception):
    """An ictal command exited non-zero: its command line, exit code and stderr tail."""

    def __init__(self, argv: list[str], code: int, tail: str) -> None:
        super().__init__(f"{shlex.join(argv)} exited {code}")
        self.argv, self.code, self.tail = argv, code, tail


@dataclass
class Result:
    """Everything measured for one difficulty (None where not measured)."""

    difficulty: str
    eval_recordings: int = 0
    eval_seizures: int = 0
    eval_windows: int = 0
    eval_seizure_windows: int = 0
    train_windows: int = 0
    train_seizure_windows: int = 0
    simple_window_auroc: float | None = None
    model_window_auroc: float | None = None
    model_sample_auroc: float | None = None
    ovlp_at_10: dict[str, Any] | None = None  # threshold and counts of the 10 FA/24h point
    run: str | None = None
    steps_s: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


# --- the simple detector --------------------------------------------------------------


def window_index(rows: list[dict[str, Any]], fs: float) -> WindowIndex:
    """Non-overlapping WINDOW_S windows of cache rows, with their seizure fractions."""
    return index_recordings(rows, fs, WINDOW_S, WINDOW_S)


def window_features(x: np.ndarray, fs: float) -> np.ndarray:
    """Windows (k, samples, channels) -> (k, 18): log line length and log band powers per
    channel, each summarised across channels by mean, max and std."""
    x = np.asarray(x, dtype=np.float32)
    per_channel = [np.abs(np.diff(x, axis=1)).mean(axis=1)]  # (k, channels)
    f, p = sps.welch(x, fs=fs, nperseg=round(WELCH_S * fs), axis=1)  # p: (k, freqs, channels)
    df = f[1] - f[0]
    for lo, hi in BANDS:
        band = (f >= lo) & (f < hi)
        per_channel.append(p[:, band, :].sum(axis=1) * df)
    logs = np.log(np.stack(per_channel, axis=1) + 1e-10)  # (k, 6, channels)
    return np.concatenate([logs.mean(axis=2), logs.max(axis=2), logs.std(axis=2)], axis=1)


def split_features(view: CacheView, split: str) -> tuple[np.ndarray, np.ndarray, WindowIndex]:
    """Features and labels (1 = seizure) of every window of a split, with its window index."""
    rows = view.split(split)
    index = window_index(rows, view.fs)
    w = index.window
    feats = []
    for r, row in enumerate(rows):
        k = int((index.rec == r).sum())
        if k == 0:
            continue
        arr = np.load(view.array_path(row), mmap_mode="r", allow_pickle=False)
        feats.append(window_features(arr[: k * w].reshape(k, w, arr.shape[1]), view.fs))
        del arr
    x = np.concatenate(feats) if feats else np.zeros((0, 3 * (1 + len(BANDS))))
    return x, (index.seizure_fraction > SEIZURE_FRACTION).astype(np.float64), index


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    """Class-balanced L2 logistic regression by L-BFGS-B; returns weights with the bias last."""
    n_pos = float(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError("the training windows must hold both classes")
    sw = np.where(y > 0, 0.5 / n_pos, 0.5 / (len(y) - n_pos))  # each class weighs 1/2

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        loss = float(np.sum(sw * (np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * w @ w)
        g = sw * (expit(z) - y)
        return loss, np.concatenate([x.T @ g + l2 * w, [g.sum()]])

    res = minimize(loss_grad, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    return res.x


def window_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of windows with Ictal's own histogram AUROC (scores are probabilities)."""
    auroc = HistogramAuroc(bins=AUROC_BINS)
    auroc.update(labels, np.clip(scores, 0.0, 1.0))
    return auroc.value()


def simple_detector(view: CacheView, res: Result) -> np.ndarray:
    """Fit on train, score eval; fills the window counts and AUROC, returns eval labels."""
    x_tr, y_tr, _ = split_features(view, "train")
    x_ev, y_ev, _ = split_features(view, "eval")
    mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0)
    sd[sd < 1e-12] = 1.0
    theta = fit_logistic((x_tr - mu) / sd, y_tr)
    scores = expit((x_ev - mu) / sd @ theta[:-1] + theta[-1])
    res.train_windows, res.train_seizure_windows = len(y_tr), int(y_tr.sum())
    res.eval_windows, res.eval_seizure_windows = len(y_ev), int(y_ev.sum())
    res.simple_window_auroc = window_auroc(y_ev, scores)
    return y_ev


# --- the default model's outputs on the same windows -----------------------------------


def window_means(probs: np.ndarray, stride: int, window: int, k: int) -> np.ndarray:
    """Mean probability of each of the first ``k`` windows of ``window`` samples, from
    per-step probabilities whose step i starts at sample i * stride."""
    which = np.arange(len(probs)) * stride // window
    keep = which < k
    total = np.bincount(which[keep], weights=probs[keep], minlength=k)
    count = np.bincount(which[keep], minlength=k)
    return total / np.maximum(count, 1)


def model_window_scores(view: CacheView, eval_dir: Path, stride: int) -> np.ndarray:
    """The model's eval window scores, in the order of `split_features(view, "eval")`."""
    rows = view.split("eval")
    index = window_index(rows, view.fs)
    out = []
    for r, row in enumerate(rows):
        k = int((index.rec == r).sum())
        if k:
            probs = np.load(eval_dir / "probs" / f"{row['id']}.npy", allow_pickle=False)
            out.append(window_means(probs.astype(np.float64), stride, index.window, k))
    return np.concatenate(out) if out else np.zeros(0)


def point_at(scores: dict[str, Any], scorer: str, target: float) -> dict[str, Any] | None:
    """The operating point of ``scorer`` whose target is ``target`` FA/24h, if any."""
    for p in scores["operating_points"]["points"].get(scorer, []):
        if math.isclose(float(p["target_fa_per_24h"]), target):
            return p
    return None


# --- running the commands ---------------------------------------------------------------


def run(argv: list[str], logs: Path, label: str, t0: float) -> float:
    """Run `ictal ARGV` to completion (output to log files), printing progress; its seconds."""
    cmd = [sys.executable, "-m", "ictal", *argv]
    shown = ["ictal", *argv]
    logs.mkdir(parents=True, exist_ok=True)
    stem = logs / label.replace(" ", "-").replace("/", "-")
    print(f"[{time.perf_counter() - t0:7.1f} s] {label}: {shlex.join(shown)}", flush=True)
    t = time.perf_counter()
    with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, stdin=subprocess.DEVNULL)
        while True:
            try:
                code = proc.wait(timeout=PROGRESS_S)
                break
            except subprocess.TimeoutExpired:
                print(f"[{time.perf_counter() - t0:7.1f} s] {label}: running, "
                      f"{time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    took = time.perf_counter() - t
    if code != 0:
        tail = Path(f"{stem}.err").read_text(errors="replace")[-3000:]
        raise CommandFailed(shown, code, tail)
    print(f"[{time.perf_counter() - t0:7.1f} s] {label}: done in {took:.1f} s", flush=True)
    return took


def synth_has_difficulty() -> bool:
    """True when this ictal's `synth` takes --difficulty (the option is being added)."""
    out = subprocess.run([sys.executable, "-m", "ictal", "synth", "--help"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "200",
                         "NO_COLOR": "1"})  # fmt: skip
    return "--difficulty" in out.stdout


def measure(difficulty: str, work: Path, args: argparse.Namespace, t0: float) -> Result:
    """Synth, build, the simple detector and (unless skipped) the default model."""
    res = Result(difficulty)
    start = time.perf_counter()
    base = work / difficulty
    corpus, cache, runs, logs = base / "corpus", base / "cache", base / "runs", base / "logs"
    sets = [f"corpus.root={corpus}", f"cache.root={cache}", f"runs.root={runs}"]
    cfg_args = ["-c", str(CONFIG)] + [a for s in sets for a in ("--set", s)]
    synth = ["synth", str(corpus), "--patients", str(args.patients), "--hours", f"{args.hours:g}",
             "--seed", str(args.seed)]  # fmt: skip
    if difficulty != "easy":  # easy is the default; older ictals have no --difficulty
        synth += ["--difficulty", difficulty]
    res.steps_s["synth"] = run(synth, logs, f"{difficulty} synth", t0)
    res.steps_s["build"] = run(["build", *cfg_args], logs, f"{difficulty} build", t0)

    view = open_cache(locate(load_config(CONFIG, sets)).path)
    rows = view.split("eval")
    res.eval_recordings = len(rows)
    res.eval_seizures = sum(len(r["seizures"]) for r in rows)
    print(f"[{time.perf_counter() - t0:7.1f} s] {difficulty} simple detector: features, fit",
          flush=True)  # fmt: skip
    t = time.perf_counter()
    y_ev = simple_detector(view, res)
    res.steps_s["simple"] = time.perf_counter() - t
    print(
        f"[{time.perf_counter() - t0:7.1f} s] {difficulty} simple detector: window AUROC "
        f"{res.simple_window_auroc:.4f} ({res.eval_windows} eval windows, "
        f"{res.eval_seizure_windows} seizure) in {res.steps_s['simple']:.1f} s",
        flush=True,
    )

    if not args.skip_model:
        res.steps_s["train"] = run(["train", *cfg_args], logs, f"{difficulty} train", t0)
        done = sorted(runs.glob("*/checkpoints/best.pt"), key=lambda p: p.stat().st_mtime)
        if not done:
            raise CommandFailed(["ictal", "train", *cfg_args], 0, f"no best.pt under {runs}")
        best = done[-1]
        run_dir = best.parent.parent
        res.run = str(run_dir)
        res.steps_s["evaluate dev"] = run(
            ["evaluate", str(best), "--split", "dev", *cfg_args], logs, f"{difficulty} eval dev", t0
        )
        ops = run_dir / "eval-best-dev" / "operating_points.json"
        res.steps_s["evaluate eval"] = run(
            ["evaluate", str(best), "--split", "eval", "--operating-points", str(ops), *cfg_args],
            logs, f"{difficulty} eval eval", t0,
        )  # fmt: skip
        eval_dir = run_dir / "eval-best-eval"
        scores = json.loads((eval_dir / "scores.json").read_text(encoding="utf-8"))
        res.model_sample_auroc = scores["auroc"]
        res.ovlp_at_10 = point_at(scores, "ovlp", TARGET_FA)
        stride = int(scores["inference"]["output_stride"])
        model = model_window_scores(view, eval_dir, stride)
        res.model_window_auroc = window_auroc(y_ev, model)
    res.wall_s = time.perf_counter() - start
    return res


# --- the tables ---------------------------------------------------------------------------


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def ovlp_cells(res: Result) -> tuple[str, str, str]:
    """Sensitivity, FA/24h and hits/n_ref of the 10 FA/24h OVLP point, as text."""
    if res.run is None:  # the model did not run
        return "-", "-", "-"
    if res.ovlp_at_10 is None:  # evaluate.targets_fa_per_24h has no 10
        return "no point", "-", "-"
    c = res.ovlp_at_10.get("counts")
    if not c:  # no threshold reached the target on dev
        return "none", "-", "-"
    return _f(c.get("sensitivity")), _f(c.get("fa_per_24h"), 2), f"{c['hits']:g}/{c['n_ref']}"


def results_table(results: list[Result]) -> str:
    """One row per difficulty."""
    rows = []
    for r in results:
        sens, fa, hits = ovlp_cells(r)
        rows.append([r.difficulty, str(r.eval_recordings), str(r.eval_seizures),
                     f"{r.eval_seizure_windows}/{r.eval_windows}", _f(r.simple_window_auroc, 4),
                     _f(r.model_window_auroc, 4), _f(r.model_sample_auroc, 4), sens, fa, hits,
                     f"{r.wall_s:.0f}"])  # fmt: skip
    return table(["difficulty", "eval recs", "eval seiz", "seiz/windows", "simple winAUC",
                  "model winAUC", "model smpAUC", "OVLP sens@10", "FA/24h", "hits/ref",
                  "wall s"], rows, first=12)  # fmt: skip


def steps_table(results: list[Result]) -> str:
    """Wall seconds of each step per difficulty."""
    names = ["synth", "build", "simple", "train", "evaluate dev", "evaluate eval"]
    rows = [[r.difficulty, *(_f(r.steps_s.get(n), 1) for n in names), f"{r.wall_s:.1f}"]
            for r in results]  # fmt: skip
    return table(["difficulty", *names, "total"], rows, first=12)


def targets(results: list[Result]) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, wanted, met) for the difficulties that ran; met None: not measured."""
    by = {r.difficulty: r for r in results}
    out: list[tuple[str, str, str, bool | None]] = []
    if "easy" in by:
        a = by["easy"].simple_window_auroc
        out.append(("easy: simple window AUROC", _f(a, 4), f">= {TARGET_EASY_SIMPLE}",
                    None if a is None else a >= TARGET_EASY_SIMPLE))  # fmt: skip
    if "realistic" in by:
        c = (by["realistic"].ovlp_at_10 or {}).get("counts") or {}
        s, lo, hi = c.get("sensitivity"), *TARGET_REALISTIC_SENS
        ran = by["realistic"].run is not None
        out.append(("realistic: model OVLP sens @10 FA/24h", _f(s), f"in [{lo}, {hi}]",
                    (s is not None and lo <= s <= hi) if ran else None))  # fmt: skip
    if "hard" in by:
        a, m = by["hard"].simple_window_auroc, by["hard"].model_window_auroc
        out.append(("hard: simple window AUROC", _f(a, 4), f"<= {TARGET_HARD_SIMPLE}",
                    None if a is None else a <= TARGET_HARD_SIMPLE))  # fmt: skip
        out.append(("hard: model vs simple window AUROC", f"{_f(m, 4)} vs {_f(a, 4)}",
                    f">= simple + {TARGET_HARD_MARGIN}",
                    None if m is None or a is None else m >= a + TARGET_HARD_MARGIN))  # fmt: skip
    ran = [r for r in results if r.simple_window_auroc is not None]
    if len(ran) > 1:
        for name, attr in (("simple", "simple_window_auroc"), ("model", "model_window_auroc")):
            vals = [getattr(r, attr) for r in ran]
            pairs = zip(ran, vals, strict=True)
            shown = " >= ".join(f"{r.difficulty} {_f(v, 4)}" for r, v in pairs)
            ok = None if None in vals else all(a >= b for a, b in itertools.pairwise(vals))
            out.append((f"ordering: {name} window AUROC", shown, "non-increasing", ok))
    return out


def budget() -> str:
    """The demo config's training budget, as text (it decides what the default model is)."""
    t = load_config(CONFIG).train
    steps = "all" if t.steps_per_epoch is None else str(t.steps_per_epoch)
    return f"{CONFIG.relative_to(ROOT)}: {t.epochs} epochs of {steps} steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulties", default=",".join(DIFFICULTIES),
                        help="comma-separated, of easy, realistic, hard")  # fmt: skip
    parser.add_argument("--patients", type=int, default=PATIENTS)
    parser.add_argument("--hours", type=float, default=HOURS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--skip-model", action="store_true", help="only the simple detector")
    parser.add_argument("--json", type=Path, help="write all numbers to this file")
    parser.add_argument("--work", type=Path, help="work directory, kept (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp work directory")
    args = parser.parse_args()
    asked = {d.strip() for d in args.difficulties.split(",") if d.strip()}
    if not asked or asked - set(DIFFICULTIES):
        parser.error(f"--difficulties: choose among {', '.join(DIFFICULTIES)}")
    chosen = [d for d in DIFFICULTIES if d in asked]
    if set(chosen) - {"easy"} and not synth_has_difficulty():
        sys.exit("`ictal synth --help` shows no --difficulty yet: run --difficulties easy")
    if args.work is not None:
        busy = [args.work / d for d in chosen if (args.work / d).exists()]
        if busy:
            sys.exit(f"{busy[0]} exists: pass an empty or new --work")
        work = args.work
    else:
        work = Path(tempfile.mkdtemp(prefix="ictal-bench-difficulty-"))
    print(machine_line())
    print(f"corpus: {args.patients} patients, {args.hours:g} h, seed {args.seed}; "
          f"{budget()}; work {work}", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    results: list[Result] = []
    try:
        for d in chosen:
            results.append(measure(d, work, args, t0))
    except CommandFailed as exc:
        print(f"\ncommand failed (exit {exc.code}): {shlex.join(exc.argv)}\n{exc.tail}",
              file=sys.stderr)  # fmt: skip
        if args.work is None and not args.keep:
            print("(rerun with --keep or --work DIR to inspect its files)", file=sys.stderr)
        sys.exit(1)
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.work is None:
            print(f"kept {work}")

    print(f"\n{machine_line()}")
    print(f"eval split, {WINDOW_S:g} s windows (seizure when > {SEIZURE_FRACTION:g} of it is); "
          "window AUROC of both detectors on the same windows; OVLP at the 10 FA/24h point "
          "chosen on dev\n")  # fmt: skip
    print(results_table(results))
    print("\nwall seconds per step")
    print(steps_table(results))
    checks = targets(results)
    print()
    print(table(["target", "measured", "wanted", ""],
                [(a, b, c, "not run" if ok is None else "met" if ok else "NOT MET")
                 for a, b, c, ok in checks], first=40))  # fmt: skip
    if args.json is not None:
        doc = {
            "machine": machine_line(),
            "params": {
                "patients": args.patients, "hours": args.hours, "seed": args.seed,
                "config": str(CONFIG), "budget": budget(), "window_s": WINDOW_S, "l2": L2,
                "skip_model": args.skip_model,
            },
            "results": [r.__dict__ for r in results],
            "targets": [
                {"target": a, "measured": b, "wanted": c, "met": ok} for a, b, c, ok in checks
            ],
        }  # fmt: skip
        args.json.write_text(json.dumps(_plain(doc), indent=2, allow_nan=False) + "\n")
        print(f"\nnumbers: {args.json}")


def _plain(obj: Any) -> Any:
    """JSON-ready copy: numpy scalars as Python numbers, NaN as None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


if __name__ == "__main__":
    main()
