"""Cache build throughput and size: `ictal build` (1 and 2 workers) against the slow baseline.

Same synthetic corpus, same run. The baseline is how the failing pipelines built caches
(bench/common.py): MNE reads each EDF, FFT resampling, causal float64 filters, 60 s windows
at 10 s stride saved per recording with `np.savez_compressed`, one process.

Also, as whole processes (start to exit, imports included) on the 2 h corpus:
`ictal build --workers 1` against the baseline run as its own process; the speedup of 2
workers over 1 (`build_cache`, best of N, alternating) on a second, 6 h corpus; and the
peak RSS of building the longest recording against its float32 size (19 channels x source
samples x 4 bytes).

Targets (printed as met or not): per worker at least 20x the baseline; the whole
`ictal build --workers 1` process at least 25x the baseline process (2 h corpus); 2 workers
at least 1.6x as fast as 1 (6 h corpus); the peak memory of one recording at most 4x its
float32 size. Last, what the whole-process target leaves for a process's start and imports:
its budget less the build's own work in process.

Processes run with Python's bytecode cache, as an installed package does (a first, untimed
run fills it); with PYTHONDONTWRITEBYTECODE set (as in some sandboxes) every `ictal`
process would compile its modules again, and the bench prints that time too.

Run: PYTHONPATH=src python bench/build.py [--patients 8 --hours 2] [--corpus DIR]
     [--scaling-patients 16 --scaling-hours 6] [--repeats 3] [--workers 1,2] [--profile]
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
from ictal.cache.worker import WORKER_IMPORTS
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


def worker_startup_s() -> float:
    """Seconds a fresh interpreter needs to import what a spawned build worker imports."""
    imports = ", ".join(("ictal.cache.build", *WORKER_IMPORTS))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {imports}"], check=True, env=_env())
    return time.perf_counter() - t


TARGET_PER_WORKER = 20.0
TARGET_PROCESS = 25.0
TARGET_SCALING = 1.6
TARGET_MEMORY = 4.0
ROOT = Path(__file__).resolve().parents[1]


def _env(bytecode: bool = True) -> dict[str, str]:
    """The environment of a timed process: this checkout's code, and Python's bytecode cache
    on (as for an installed package) unless ``bytecode`` is False."""
    import os

    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


CPU_S: dict[str, float] = {}  # the least CPU seconds (user + system) of each process kind
LAST_CPU = [0.0]  # the CPU seconds of the last process run


def process_s(argv: list[str], bytecode: bool = True) -> float:
    """Wall seconds of a whole process, start to exit (its CPU seconds go to ``LAST_CPU``)."""
    import resource

    def used() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    before, t = used(), time.perf_counter()
    subprocess.run(argv, check=True, env=_env(bytecode), capture_output=True)
    wall = time.perf_counter() - t
    LAST_CPU[0] = used() - before
    return wall


def whole_processes(corpus: Path, tmp: Path, repeats: int) -> dict[str, float]:
    """Best wall seconds of the baseline as its own process and of `ictal build --workers 1`
    (with the bytecode cache, and without it); one untimed run of each fills the cache."""
    base = (
        "import sys; from pathlib import Path; from common import require_mne, "
        "baseline_build; baseline_build(require_mne(), Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    out, cache = tmp / "proc-baseline", tmp / "proc-ictal"
    runs = {
        "baseline": lambda: process_s([sys.executable, "-c", base, str(corpus), str(out)]),
        "ictal": lambda: process_s(_ictal_argv(corpus, cache)),
        "ictal, no bytecode cache": lambda: process_s(_ictal_argv(corpus, cache), False),
    }
    best = dict.fromkeys(runs, float("inf"))
    for rep in range(repeats + 1):
        for name, run in runs.items():
            if not rep and name == "baseline":
                continue  # its modules are compiled already (site-packages)
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            t = run()
            if rep:  # the first round fills the bytecode cache
                CPU_S[name] = min(CPU_S.get(name, float("inf")), LAST_CPU[0])
                best[name] = min(best[name], t)
    return best


def _ictal_argv(corpus: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "ictal", "build", "--workers", "1", "--set",
            f"corpus.root={corpus}", "--set", f"cache.root={cache}"]  # fmt: skip


def scaling(corpus: Path, tmp: Path, repeats: int) -> tuple[dict[int, float], float]:
    """Best `build_cache` seconds with 1 and 2 workers on ``corpus`` (alternating, so drifts
    in the machine's load hit both), and its EEG hours; asserts both wrote the same cache."""
    best = {1: float("inf"), 2: float("inf")}
    keys, hours = set(), 0.0
    for _ in range(repeats):
        for w in best:
            t, (rep, _) = best_of(lambda w=w: ictal_build(corpus, tmp / f"scale-{w}", w,
                                                          "float32"), 1)  # fmt: skip
            best[w] = min(best[w], t)
            keys.add((rep.key, rep.bytes_on_disk))
            hours = rep.hours
    assert len(keys) == 1, "1 and 2 workers built different caches"
    return best, hours


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


def throughput(
    mne: object, corpus: Path, tmp: Path, workers: list[int], repeats: int
) -> dict[str, object]:
    """Best in-process seconds of the baseline and of `build_cache` with each worker count
    (interleaved, so slow drifts in machine load hit all of them), and a float16 build."""
    base_t, ictal_t = float("inf"), dict.fromkeys(workers, float("inf"))
    base_hours = base_bytes = 0
    reports: dict[int, tuple[BuildReport, int]] = {}
    for _ in range(repeats):
        out = tmp / "baseline"
        shutil.rmtree(out, ignore_errors=True)
        t, (base_hours, base_bytes) = best_of(lambda o=out: baseline_build(mne, corpus, o), 1)
        base_t = min(base_t, t)
        for w in workers:
            t, reports[w] = best_of(
                lambda w=w: ictal_build(corpus, tmp / f"cache-{w}", w, "float32"), 1
            )
            ictal_t[w] = min(ictal_t[w], t)
    t16, f16 = best_of(lambda: ictal_build(corpus, tmp / "cache-f16", max(workers), "float16"), 1)
    keys = {(rep.key, rep.bytes_on_disk) for rep, _ in reports.values()}
    assert len(keys) == 1, "workers changed the cache bytes"
    return {"base_t": base_t, "base_hours": base_hours, "base_bytes": base_bytes,
            "ictal_t": ictal_t, "f32": reports[workers[0]], "t16": t16, "f16": f16}  # fmt: skip


def print_throughput(m: dict, workers: list[int], repeats: int) -> float:
    """The throughput table; returns the baseline's EEG hours per second."""
    rep32, _ = m["f32"]
    hours, ictal_t, t16 = rep32.hours, m["ictal_t"], m["t16"]
    print(f"\n{hours:.2f} h of EEG in {rep32.planned} recordings, best of {repeats}; "
          f"ratios against the baseline measured in this run\n")  # fmt: skip
    base_rate = m["base_hours"] / m["base_t"]
    rows = [["baseline (MNE, FFT, lfilter, npz)", 1, m["base_t"], base_rate, base_rate, 1.0,
             "-"]]  # fmt: skip
    one = hours / ictal_t[workers[0]] / workers[0]
    for w in workers:
        rate = hours / ictal_t[w]
        rows.append([f"ictal build, {w} worker(s)", w, ictal_t[w], rate, rate / w,
                     rate / w / base_rate, rate / w / one])  # fmt: skip
    w16 = max(workers)
    rows.append([f"ictal build float16, {w16} worker(s)", w16, t16, hours / t16,
                 hours / t16 / w16, hours / t16 / w16 / base_rate, "-"])  # fmt: skip
    rows = [[r[0], str(r[1]), *r[2:6], r[6] if isinstance(r[6], str) else f"{r[6]:.2f}"]
            for r in rows]  # fmt: skip
    print(table(["method", "workers", "wall s", "EEG-h/s", "EEG-h/s/worker",
                 "x baseline/worker", "scaling/worker"], rows))  # fmt: skip
    print("(scaling/worker = per-worker throughput relative to 1 worker; 1.00 is linear)\n")
    return base_rate


def print_sizes(m: dict, raw_bytes: int) -> None:
    """Bytes on disk: the raw EDF, the baseline's npz, the cache in float32 and float16."""
    (rep32, all32), (rep16, all16), base = m["f32"], m["f16"], m["base_bytes"]
    rows = [
        ["raw EDF (all signals)", raw_bytes / MB, "-", "-"],
        ["baseline npz (windows 6x, float32)", base / MB, 1.0, "-"],
        ["ictal float32 arrays", rep32.bytes_on_disk / MB, base / rep32.bytes_on_disk, "4.5x"],
        ["ictal float32 whole cache dir", all32 / MB, base / all32, "4.5x"],
        ["ictal float16 arrays", rep16.bytes_on_disk / MB, base / rep16.bytes_on_disk, "9x"],
        ["ictal float16 whole cache dir", all16 / MB, base / all16, "9x"],
    ]
    rows = [[r[0], f"{r[1]:.1f}", r[2] if isinstance(r[2], str) else f"{r[2]:.2f}x", r[3]]
            for r in rows]  # fmt: skip
    print(table(["on disk", "MB", "baseline / this", "target"], rows))


def print_checks(
    per_worker: float,
    hours: float,
    proc: dict[str, float],
    scale: dict[int, float],
    scale_hours: float,
    mem: dict[str, float],
) -> None:
    """The targets, each with what was measured and whether it is met."""
    f32 = 19 * mem["s"] * mem["fs_in"] * 4
    task_mb = (mem["peak"] - mem["before"]) / MB
    ratio, speedup = proc["baseline"] / proc["ictal"], scale[1] / scale[2]
    checks = [
        ("per worker, 1 worker (in process)", f"{per_worker:.1f}x baseline",
         f">= {TARGET_PER_WORKER:g}x", per_worker >= TARGET_PER_WORKER),
        (f"whole process, --workers 1, {hours:g} h", f"{proc['ictal']:.2f} s vs "
         f"{proc['baseline']:.1f} "
         f"s = {ratio:.1f}x", f">= {TARGET_PROCESS:g}x", ratio >= TARGET_PROCESS),
        (f"2 workers vs 1, {scale_hours:g} h", f"{scale[2]:.2f} s vs {scale[1]:.2f} s = "
         f"{speedup:.2f}x", f">= {TARGET_SCALING:g}x", speedup >= TARGET_SCALING),
        ("peak memory, longest recording", f"{task_mb:.0f} MB over {mem['before'] / MB:.0f} "
         f"MB = {task_mb * MB / f32:.2f}x its {f32 / MB:.0f} MB float32",
         f"<= {TARGET_MEMORY:g}x", task_mb * MB / f32 <= TARGET_MEMORY),
    ]  # fmt: skip
    print()
    print(table(["target", "measured", "target", ""],
                [(a, b, c, "met" if ok else "NOT MET") for a, b, c, ok in checks]))  # fmt: skip
    nocache = proc["ictal, no bytecode cache"]
    print(f"(without the bytecode cache, PYTHONDONTWRITEBYTECODE=1: {nocache:.2f} s = "
          f"{proc['baseline'] / nocache:.1f}x; wall times, best of each)")  # fmt: skip
    cpu_base, cpu_ictal = CPU_S.get("baseline", 0.0), CPU_S.get("ictal", 0.0)
    if cpu_ictal:
        print(f"(CPU seconds, user + system, least of each: ictal {cpu_ictal:.2f} s vs baseline "
              f"{cpu_base:.1f} s = {cpu_base / cpu_ictal:.1f}x; on a busy machine the wall "
              "ratio is noisier)")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="existing TUSZ-layout corpus (default: synthesize one)")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--scaling-corpus", help="existing corpus for 2 workers vs 1")
    parser.add_argument("--scaling-patients", type=int, default=16)
    parser.add_argument("--scaling-hours", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs of each")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--tmp", help="directory for the corpus and caches (default: system tmp)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one recording")
    parser.add_argument("--top", type=int, default=20, help="profile rows to print")
    parser.add_argument("--executor", choices=("process", "ray"), default="process",
                        help="ray: the Ray executor's overhead against the local one")  # fmt: skip
    return parser.parse_args()


def floor_line(baseline_s: float, work_s: float, startup_s: float) -> str:
    """What the whole-process target leaves for a process's start: its budget less the
    build's own work (in process, 1 worker), against what a start and imports take."""
    budget = baseline_s / TARGET_PROCESS
    return (f"the whole process's budget at {TARGET_PROCESS:g}x: {budget:.2f} s; the build's "
            f"own work in process takes {work_s:.2f} s of it, leaving {budget - work_s:.2f} s "
            f"for the interpreter and imports (a spawned worker's: {startup_s:.2f} s)")  # fmt: skip


def main() -> None:
    args = parse_args()
    logging.getLogger("ictal").setLevel(logging.WARNING)
    workers = [int(w) for w in args.workers.split(",")]
    if args.executor == "ray":
        tmp = Path(tempfile.mkdtemp(prefix="ictal-bench-ray-", dir=args.tmp))
        try:
            corpus = ensure_corpus(args.corpus, tmp, args.patients, args.hours, args.seed)
            warm_files(edf_files(corpus))
            ray_overhead(corpus, tmp, workers, args.repeats)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    mne = require_mne()
    tmp = Path(tempfile.mkdtemp(prefix="ictal-bench-build-", dir=args.tmp))
    try:
        corpus = ensure_corpus(args.corpus, tmp, args.patients, args.hours, args.seed)
        six = ensure_corpus(args.scaling_corpus, tmp / "scaling", args.scaling_patients,
                            args.scaling_hours, args.seed)  # fmt: skip
        edfs = edf_files(corpus)
        raw_bytes = warm_files(edfs)
        warm_files(edf_files(six))
        print(f"{len(edfs)} EDF files, {raw_bytes / MB:.0f} MB (page cache warmed first)")
        print(machine_line())
        m = throughput(mne, corpus, tmp, workers, args.repeats)
        print(machine_line())
        base_rate = print_throughput(m, workers, args.repeats)
        startup, _ = best_of(worker_startup_s, 2)
        print(f"fixed cost: a spawned worker needs {startup:.2f} s to start and import "
              "(python, numpy, pocketfft, edfio, ictal and its config); it starts before "
              "planning\n")  # fmt: skip
        print_sizes(m, raw_bytes)
        proc = whole_processes(corpus, tmp, args.repeats)
        scale, scale_hours = scaling(six, tmp, args.repeats)
        mem = peak_memory(corpus, tmp)
        per_worker = m["f32"][0].hours / m["ictal_t"][workers[0]] / workers[0] / base_rate
        hours = round(m["f32"][0].hours, 2)
        print_checks(per_worker, hours, proc, scale, round(scale_hours, 2), mem)
        print(floor_line(proc["baseline"], m["ictal_t"][workers[0]], startup))
        if args.profile:
            profile_one(corpus, tmp, args.top)
        print(f"\nload average at the end: {machine_line()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
