"""Cache build throughput and size: `ictal build` (1 and 2 workers) against the slow baseline.

Same synthetic corpus, same run. The baseline is how the failing pipelines built caches
(bench/common.py): MNE reads each EDF, FFT resampling, causal float64 filters, 60 s windows
at 10 s stride saved per recording with `np.savez_compressed`, one process.

Also, as whole processes (start to exit, imports included): `ictal build --workers 1` against
the baseline run as its own process; and the peak RSS of building the longest recording
against its float32 size (19 channels x source samples x 4 bytes).

Targets (printed as met or not): per worker at least 20x the baseline; 2 workers faster than
1; the whole `ictal build --workers 1` process at least 15x the baseline process; the peak
memory of one recording at most 4x its float32 size.

Run: PYTHONPATH=src python bench/build.py [--patients 8 --hours 2] [--corpus DIR]
     [--repeats 2] [--workers 1,2] [--profile]
     PYTHONPATH=src python bench/build.py --executor ray [--hours 6 --workers 2]
     (the Ray executor against the local one on the same corpus, on a local Ray instance
     started once, as a cluster runs: its overhead per task, not Ray's start-up)
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import logging
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    baseline_build,
    best_of,
    edf_files,
    ensure_corpus,
    machine_line,
    require_mne,
    table,
    tree_bytes,
    warm_files,
)
from ictal.cache.build import BuildReport, Task, build_cache, build_one
from ictal.cache.plan import plan
from ictal.config_file import load_config

MB = 1e6


def ictal_build(
    corpus: Path, root: Path, workers: int, dtype: str, executor: str = "process"
) -> tuple[BuildReport, int]:
    """A fresh build into an empty cache root; returns the report and all bytes under root."""
    if root.exists():
        shutil.rmtree(root)
    cfg = load_config(None, [f"corpus.root={corpus}", f"cache.root={root}",
                             f"signal.dtype={dtype}", f"cache.executor={executor}"])  # fmt: skip
    report = build_cache(cfg, workers=workers)
    if report.failed:
        raise SystemExit(f"ictal build failed for {len(report.failed)} recordings: {report.failed}")
    return report, tree_bytes(root)


WORKER_IMPORTS = (
    "import ictal.cache.build, ictal.corpus.edf, ictal.corpus.annotations, ictal.signal.pipeline"
)


def worker_startup_s() -> float:
    """Seconds a fresh interpreter needs to import what a spawned build worker imports."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", WORKER_IMPORTS], check=True)
    return time.perf_counter() - t


TARGET_PER_WORKER = 20.0
TARGET_PROCESS = 15.0
TARGET_MEMORY = 4.0
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}"}


def process_s(argv: list[str]) -> float:
    """Wall seconds of a whole process, start to exit."""
    t = time.perf_counter()
    subprocess.run(argv, check=True, env=_env(), capture_output=True)
    return time.perf_counter() - t


def whole_processes(corpus: Path, tmp: Path, repeats: int) -> tuple[float, float]:
    """Best wall seconds of the baseline as its own process and of `ictal build --workers 1`."""
    base = (
        "import sys; from pathlib import Path; from common import require_mne, "
        "baseline_build; baseline_build(require_mne(), Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    best_base = best_ictal = float("inf")
    for _ in range(repeats):
        out = tmp / "proc-baseline"
        shutil.rmtree(out, ignore_errors=True)
        best_base = min(best_base, process_s([sys.executable, "-c", base, str(corpus), str(out)]))
        cache = tmp / "proc-ictal"
        shutil.rmtree(cache, ignore_errors=True)
        best_ictal = min(best_ictal, process_s(
            [sys.executable, "-m", "ictal", "build", "--workers", "1", "--set",
             f"corpus.root={corpus}", "--set", f"cache.root={cache}"]))  # fmt: skip
    return best_base, best_ictal


PEAK = """
import json, sys
from pathlib import Path
from ictal.cache.plan import plan
from ictal.cache.worker import Task, build_one
from ictal.config_file import load_config
cfg = load_config(None, [f"corpus.root={sys.argv[1]}", f"cache.root={sys.argv[2]}"])
planned = plan(cfg)
refs = sorted(planned.refs, key=lambda r: r.size)
out = Path(sys.argv[2]) / "one"
(out / "arrays").mkdir(parents=True, exist_ok=True)
(out / "records").mkdir(parents=True, exist_ok=True)
def task(ref):
    return Task(planned.discovery.root_of(ref), ref, str(out), cfg.model_dump(mode="json"),
                planned.discovery.signature(ref))
def status(key):
    line = next(x for x in open("/proc/self/status") if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024
build_one(task(refs[0]))  # a worker as it runs: imports done, the smallest recording built
with open("/proc/self/clear_refs", "w") as f:  # restart the high-water mark (VmHWM) here:
    f.write("5")  # ru_maxrss would carry the bench process's peak across fork and exec
before = status("VmRSS")
rec = build_one(task(refs[-1]))
peak = status("VmHWM")
print(json.dumps({"before": before, "peak": peak, "n": rec["n_samples"],
                  "fs_in": rec["source_fs"], "s": rec["source_duration_s"]}))
"""


def peak_memory(corpus: Path, tmp: Path) -> dict[str, float]:
    """Peak RSS of a process building the longest recording after the smallest (the rise
    over the worker's own peak until then), and that recording."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(corpus), str(tmp / "peak")],
                         check=True, env=_env(), capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def profile_one(corpus: Path, tmp: Path, top: int) -> None:
    """cProfile `build_one` on the largest recording (in this process) and print top costs."""
    cfg = load_config(None, [f"corpus.root={corpus}", f"cache.root={tmp / 'profile'}"])
    planned = plan(cfg)
    ref = max(planned.refs, key=lambda r: r.size)
    out = tmp / "profile" / "build"
    (out / "arrays").mkdir(parents=True, exist_ok=True)
    (out / "records").mkdir(parents=True, exist_ok=True)
    task = Task(planned.discovery.root_of(ref), ref, str(out), cfg.model_dump(mode="json"),
                planned.discovery.signature(ref))  # fmt: skip
    build_one(task)  # warm imports and the file's pages
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    rec = build_one(task)
    prof.disable()
    wall = time.perf_counter() - t
    hours = rec["n_samples"] / cfg.signal.fs / 3600
    print(f"\ncProfile of build_one({ref.rel}): {hours * 60:.1f} min of EEG at "
          f"{rec['source_fs']:g} Hz, {wall:.2f} s ({hours / wall:.1f} EEG-h/s)")  # fmt: skip
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(top)


def ray_overhead(corpus: Path, tmp: Path, workers: list[int], repeats: int) -> None:
    """Build throughput with the Ray executor against the local process executor."""
    import ray

    ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False,
             configure_logging=False)  # fmt: skip
    try:
        best: dict[tuple[str, int], float] = {}
        digests: set[str] = set()
        hours = 0.0
        for _ in range(repeats):
            for w in workers:
                for kind in ("process", "ray"):  # alternate: drift hits both alike
                    t, (rep, _) = best_of(
                        lambda k=kind, w=w: ictal_build(corpus, tmp / f"c-{k}-{w}", w,
                                                        "float32", k), 1)  # fmt: skip
                    best[kind, w] = min(best.get((kind, w), float("inf")), t)
                    hours = rep.hours
                    manifest = (rep.path / "manifest.json").read_bytes()
                    digests.add(hashlib.sha256(manifest).hexdigest())
        assert len(digests) == 1, "the executors built different caches"
    finally:
        ray.shutdown()
    print(machine_line())
    print(f"\n{hours:.2f} h of EEG, best of {repeats}; the same manifest from both executors\n")
    rows = []
    for w in workers:
        local, remote = best["process", w], best["ray", w]
        rows.append([f"{w} worker(s)", local, remote, hours / local, hours / remote,
                     f"{remote / local - 1:+.1%}"])  # fmt: skip
    print(table(["workers", "local s", "ray s", "local EEG-h/s", "ray EEG-h/s", "ray overhead"],
                rows, first=14))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="existing TUSZ-layout corpus (default: synthesize one)")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs of each")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--tmp", help="directory for the corpus and caches (default: system tmp)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one recording")
    parser.add_argument("--top", type=int, default=20, help="profile rows to print")
    parser.add_argument("--executor", choices=("process", "ray"), default="process",
                        help="ray: the Ray executor's overhead against the local one")  # fmt: skip
    args = parser.parse_args()
    if args.executor == "ray":
        logging.getLogger("ictal").setLevel(logging.WARNING)
        tmp = Path(tempfile.mkdtemp(prefix="ictal-bench-ray-", dir=args.tmp))
        try:
            corpus = ensure_corpus(args.corpus, tmp, args.patients, args.hours, args.seed)
            warm_files(edf_files(corpus))
            workers = [int(w) for w in args.workers.split(",")]
            ray_overhead(corpus, tmp, workers, args.repeats)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    mne = require_mne()
    logging.getLogger("ictal").setLevel(logging.WARNING)
    workers = [int(w) for w in args.workers.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="ictal-bench-build-", dir=args.tmp))
    try:
        corpus = ensure_corpus(args.corpus, tmp, args.patients, args.hours, args.seed)
        edfs = edf_files(corpus)
        raw_bytes = warm_files(edfs)
        print(f"{len(edfs)} EDF files, {raw_bytes / MB:.0f} MB (page cache warmed first)")
        print(machine_line())

        # Interleave the contenders so slow drifts in machine load hit all of them.
        base_t, ictal_t = float("inf"), {w: float("inf") for w in workers}
        base_hours = base_bytes = 0
        reports: dict[int, tuple[BuildReport, int]] = {}
        for _ in range(args.repeats):
            out = tmp / "baseline"
            shutil.rmtree(out, ignore_errors=True)
            t, (base_hours, base_bytes) = best_of(lambda o=out: baseline_build(mne, corpus, o), 1)
            base_t = min(base_t, t)
            for w in workers:
                t, reports[w] = best_of(
                    lambda w=w: ictal_build(corpus, tmp / f"cache-{w}", w, "float32"), 1
                )
                ictal_t[w] = min(ictal_t[w], t)
        t16, (rep16, all16) = best_of(
            lambda: ictal_build(corpus, tmp / "cache-f16", max(workers), "float16"), 1
        )
        keys = {rep.key for rep, _ in reports.values()}
        sizes = {rep.bytes_on_disk for rep, _ in reports.values()}
        assert len(keys) == 1 and len(sizes) == 1, "workers changed the cache bytes"
        rep32, all32 = reports[workers[0]]
        hours = rep32.hours
        print(machine_line())
        print(f"\n{hours:.2f} h of EEG in {rep32.planned} recordings, best of {args.repeats}; "
              f"ratios against the baseline measured in this run\n")  # fmt: skip

        base_rate = base_hours / base_t
        rows = [["baseline (MNE, FFT, lfilter, npz)", 1, base_t, base_rate, base_rate, 1.0, "-"]]
        one = hours / ictal_t[workers[0]] / workers[0]
        for w in workers:
            rate = hours / ictal_t[w]
            per = rate / w
            rows.append([f"ictal build, {w} worker(s)", w, ictal_t[w], rate, per,
                         per / base_rate, per / one])  # fmt: skip
        rows.append([f"ictal build float16, {max(workers)} worker(s)", max(workers), t16,
                     hours / t16, hours / t16 / max(workers), hours / t16 / max(workers) /
                     base_rate, "-"])  # fmt: skip
        rows = [[r[0], str(r[1]), *r[2:6], r[6] if isinstance(r[6], str) else f"{r[6]:.2f}"]
                for r in rows]  # fmt: skip
        print(table(["method", "workers", "wall s", "EEG-h/s", "EEG-h/s/worker",
                     "x baseline/worker", "scaling/worker"], rows))  # fmt: skip
        print("(scaling/worker = per-worker throughput relative to 1 worker; 1.00 is linear)\n")

        size_rows = [
            ["raw EDF (all signals)", raw_bytes / MB, "-", "-"],
            ["baseline npz (windows 6x, float32)", base_bytes / MB, 1.0, "-"],
            ["ictal float32 arrays", rep32.bytes_on_disk / MB, base_bytes / rep32.bytes_on_disk,
             "4.5x"],
            ["ictal float32 whole cache dir", all32 / MB, base_bytes / all32, "4.5x"],
            ["ictal float16 arrays", rep16.bytes_on_disk / MB, base_bytes / rep16.bytes_on_disk,
             "9x"],
            ["ictal float16 whole cache dir", all16 / MB, base_bytes / all16, "9x"],
        ]  # fmt: skip
        size_rows = [[r[0], f"{r[1]:.1f}", r[2] if isinstance(r[2], str) else f"{r[2]:.2f}x",
                      r[3]] for r in size_rows]  # fmt: skip
        startup, _ = best_of(worker_startup_s, 2)
        print(
            f"fixed cost: a spawned worker needs {startup:.2f} s to start and import "
            f"(python, numpy, scipy.fft, edfio, ictal) before its first recording\n"
        )
        print(table(["on disk", "MB", "baseline / this", "target"], size_rows))

        base_p, ictal_p = whole_processes(corpus, tmp, args.repeats)
        mem = peak_memory(corpus, tmp)
        f32 = 19 * mem["s"] * mem["fs_in"] * 4
        task_mb = (mem["peak"] - mem["before"]) / MB
        per_worker = hours / ictal_t[workers[0]] / workers[0] / base_rate
        faster = max(workers) > 1 and ictal_t[max(workers)] < ictal_t[1] if 1 in ictal_t else False
        checks = [
            ("per worker, 1 worker", f"{per_worker:.1f}x baseline", f">= {TARGET_PER_WORKER:g}x",
             per_worker >= TARGET_PER_WORKER),
            (f"{max(workers)} workers vs 1", f"{ictal_t[max(workers)]:.2f} s vs "
             f"{ictal_t.get(1, float('nan')):.2f} s", "faster", faster),
            ("whole process, --workers 1", f"{ictal_p:.2f} s vs {base_p:.1f} s = "
             f"{base_p / ictal_p:.1f}x", f">= {TARGET_PROCESS:g}x",
             base_p / ictal_p >= TARGET_PROCESS),
            ("peak memory, longest recording", f"{task_mb:.0f} MB over {mem['before'] / MB:.0f} "
             f"MB = {task_mb * MB / f32:.2f}x its {f32 / MB:.0f} MB float32",
             f"<= {TARGET_MEMORY:g}x", task_mb * MB / f32 <= TARGET_MEMORY),
        ]  # fmt: skip
        print()
        print(
            table(
                ["target", "measured", "target", ""],
                [(a, b, c, "met" if ok else "NOT MET") for a, b, c, ok in checks],
            )
        )
        if args.profile:
            profile_one(corpus, tmp, args.top)
        print(f"\nload average at the end: {machine_line()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
