"""`ictal detect` throughput per worker against the cache build of the same recordings (the
same reading and preprocessing), and what the durable record log costs per record.

Both run as whole processes with one worker on the same synthetic corpus, fresh each time,
alternately, best of `--repeats`; wall seconds and the CPU seconds the process used (user +
system: the work done, whatever the load). Targets (issue 31): detect at least 1.0x the
build's EEG-hours per second, and one log append (a framed write, group-commit fsync) under
1 % of a recording's detection time. Where a detect spends its time is printed from its
records (read, preprocess, infer per recording) against the whole process. The checkpoint's
ONNX export (`ictal export`, run by `ictal detect --model` on onnxruntime, without
importing torch) is timed beside it. Last, detect's floor on this machine: its CPU seconds
spread over every core, and the chain one core must run in order (``import torch``, timed in
a fresh interpreter, then the model's inference): no schedule of this work is faster.

Run: PYTHONPATH=src python bench/detect.py [--patients 8 --hours 6] [--repeats 3] [--workdir D]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_line, table

ROOT = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ictal(args: list[str]) -> tuple[float, float]:
    """Run the ictal command line in a fresh process; its wall and CPU time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cpu, t = _children_cpu(), time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "ictal.cli", *args], env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - t
    if res.returncode not in (0, 4):
        raise SystemExit(f"ictal {args[0]} failed:\n{res.stderr[-3000:]}")
    return wall, _children_cpu() - cpu


def phases(out: Path) -> dict[str, float]:
    """Seconds per phase summed over a detect's records (what the worker spent where)."""
    from ictal.detect.records import load_local

    total: dict[str, float] = {}
    for rec in load_local(out).records:
        for name, seconds in rec.get("timing", {}).items():
            total[name] = total.get(name, 0.0) + seconds
    return total


def log_append_s(n: int = 2000) -> float:
    """Seconds per record appended to a record log (a typical record, fsync every second)."""
    from ictal.detect.records import encode
    from ictal.io.framelog import SegmentWriter

    record = encode({"recording": "/archive/p/s/t/aaaaaaaa_s001_t000.edf", "name": "a",
                     "status": "done", "duration_s": 1800.0, "events": [[1.0, 2.0, 0.9]] * 4,
                     "time": time.time(), "source": {"size": 1, "mtime": "1"},
                     "timing": {"read_s": 0.1}})  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        w = SegmentWriter(Path(d), "bench", fsync_s=1.0)
        t = time.perf_counter()
        for _ in range(n):
            w.append(record)
        w.close()
        return (time.perf_counter() - t) / n


def torch_import_s(repeats: int) -> float:
    """Wall seconds of ``import torch`` in a fresh interpreter, best of ``repeats``: what a
    detect on a torch checkpoint pays before its model can run."""
    code = "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(max(1, repeats))]  # fmt: skip
    return min(float(r) for r in runs)


def floor_line(b_wall: float, d_cpu: float, torch_s: float, infer_s: float) -> str:
    """The least wall time this detect could take on this machine, two ways: its CPU work
    spread over every core with no wait at all, and the part one core must do in order (the
    model cannot run before torch is imported); against the build."""
    cores = os.cpu_count() or 1
    spread = d_cpu / cores
    chain = torch_s + infer_s
    best = max(spread, chain)
    return (f"detect's floor here: its {d_cpu:.2f} CPU s over {cores} cores = {spread:.2f} s; "
            f"import torch {torch_s:.2f} s then the model {infer_s:.2f} s, in order on one "
            f"core = {chain:.2f} s; so at best {best:.2f} s, {b_wall / best:.2f}x the build's "
            f"{b_wall:.2f} s with no process start and no wait")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ictal-bench-detect-"))
    corpus = work / "corpus"
    base = ["--set", f"corpus.root={corpus}", "--set", f"runs.root={work / 'runs'}"]
    if not corpus.exists():
        ictal(["synth", str(corpus), "--patients", str(args.patients), "--hours",
               str(args.hours), "--seed", "3"])  # fmt: skip
    ckpt = (
        next((work / "runs").glob("*/checkpoints/last.pt"), None)
        if (work / "runs").exists()
        else None
    )
    if ckpt is None:
        ictal(["build", *base, "--set", f"cache.root={work / 'cache-train'}"])
        ictal(["train", *base, "--set", f"cache.root={work / 'cache-train'}", "--set",
               "train.epochs=1", "--set", "train.steps_per_epoch=2"])  # fmt: skip
        ckpt = next((work / "runs").glob("*/checkpoints/last.pt"))
    onnx = work / "onnx"
    if not (onnx / "model.onnx").exists():
        shutil.rmtree(onnx, ignore_errors=True)
        ictal(["export", str(ckpt), "--out", str(onnx), "--threshold", "0.5", *base, "--set",
               f"cache.root={work / 'cache-train'}"])  # fmt: skip
    builds, detects, exported = [], [], []
    detect = ["--workers", "1", "--threshold", "0.5", *base]
    for k in range(args.repeats):
        cache = work / f"cache-{k}"
        shutil.rmtree(cache, ignore_errors=True)
        builds.append(ictal(["build", "--workers", "1", *base, "--set", f"cache.root={cache}"]))
        out = work / f"detect-{k}"
        shutil.rmtree(out, ignore_errors=True)
        detects.append(ictal(["detect", str(ckpt), str(corpus / "edf"), "--out", str(out),
                              *detect]))  # fmt: skip
        out = work / f"detect-onnx-{k}"
        shutil.rmtree(out, ignore_errors=True)
        exported.append(ictal(["detect", "--model", str(onnx), str(corpus / "edf"), "--out",
                               str(out), *detect]))  # fmt: skip
    same = (work / "detect-0" / "events.csv").read_bytes() == (
        work / "detect-onnx-0" / "events.csv"
    ).read_bytes()
    summary = json.loads((work / "detect-0" / "summary.json").read_text())
    hours, n = summary["hours"], summary["recordings"]
    (b_wall, b_cpu), (d_wall, d_cpu) = min(builds), min(detects)
    best = min(range(len(detects)), key=lambda k: detects[k][0])
    spent = phases(work / f"detect-{best}")
    per_record = d_wall / n
    append = log_append_s()
    print(machine_line())
    print(f"{n} recordings, {hours:.2f} EEG-hours, one worker, whole processes, best of "
          f"{args.repeats} (wall); CPU s of the same run")  # fmt: skip
    rows = [
        ["ictal build --workers 1", b_wall, b_cpu, hours / b_wall, 1.0],
        ["ictal detect --workers 1", d_wall, d_cpu, hours / d_wall, b_wall / d_wall],
    ]
    (o_wall, o_cpu) = min(exported)
    rows.append(["  the same, ONNX export", o_wall, o_cpu, hours / o_wall, b_wall / o_wall])
    print(table(["command", "wall s", "CPU s", "EEG-h/s", "x build"], rows, first=30))
    inside = ", ".join(
        f"{k.removesuffix('_s')} {v:.2f} s" for k, v in spent.items() if k != "total_s"
    )
    first = spent.get("read_s", 0.0) + spent.get("preprocess_s", 0.0)
    second = spent.get("total_s", 0.0) - first
    print(f"detect's recordings: {inside}; read and preprocess {first:.2f} s run in a thread "
          f"ahead of the rest of each task ({second:.2f} s: the model, events, record), so "
          f"the two overlap in {d_wall:.2f} s wall")  # fmt: skip
    print(f"the ONNX export (onnxruntime, no torch) gives {'the same' if same else 'OTHER'} "
          "events.csv as the checkpoint")  # fmt: skip
    print(floor_line(b_wall, d_cpu, torch_import_s(args.repeats), spent.get("infer_s", 0.0)))
    share = append / per_record
    print(f"record log: {append * 1e6:.1f} us per append = {share:.4%} of a recording's "
          f"{per_record:.2f} s")  # fmt: skip
    ratio = b_wall / d_wall
    ok_rate = "meets" if ratio >= 1.0 else "MISSES"
    ok_log = "meets" if share < 0.01 else "MISSES"
    print(f"detect at {ratio:.2f}x the build ({ok_rate} the 1.0x target); log append "
          f"{share:.4%} ({ok_log} < 1 %)")  # fmt: skip


if __name__ == "__main__":
    main()
