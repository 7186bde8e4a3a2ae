"""`ictal detect` throughput per worker against the cache build of the same recordings (the
same reading and preprocessing), and what the durable record log costs per record.

Both run as whole processes with one worker on the same synthetic corpus, fresh each time,
best of `--repeats`. Targets: detect reaches at least 0.8x the build's EEG-hours per second
(the model and the log add little), and one log append (a framed write, group-commit fsync)
costs under 1 % of a recording's detection time.

Run: PYTHONPATH=src python bench/detect.py [--patients 8 --hours 16] [--repeats 2] [--workdir D]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_line, table

ROOT = Path(__file__).resolve().parents[1]


def ictal(args: list[str]) -> float:
    """Run the ictal command line in a fresh process; its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "ictal.cli", *args], env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - t
    if res.returncode not in (0, 4):
        raise SystemExit(f"ictal {args[0]} failed:\n{res.stderr[-3000:]}")
    return wall


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--hours", type=float, default=16.0)
    parser.add_argument("--repeats", type=int, default=2)
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
    builds, detects = [], []
    for k in range(args.repeats):
        cache = work / f"cache-{k}"
        shutil.rmtree(cache, ignore_errors=True)
        builds.append(ictal(["build", "--workers", "1", *base, "--set", f"cache.root={cache}"]))
        out = work / f"detect-{k}"
        shutil.rmtree(out, ignore_errors=True)
        detects.append(ictal(["detect", str(ckpt), str(corpus / "edf"), "--out", str(out),
                              "--workers", "1", "--threshold", "0.5", *base]))  # fmt: skip
    summary = json.loads((work / "detect-0" / "summary.json").read_text())
    hours, n = summary["hours"], summary["recordings"]
    build_rate, detect_rate = hours / min(builds), hours / min(detects)
    per_record = min(detects) / n
    append = log_append_s()
    print(machine_line())
    print(f"{n} recordings, {hours:.2f} EEG-hours, one worker, whole processes, best of "
          f"{args.repeats}")  # fmt: skip
    rows = [
        ["ictal build --workers 1", min(builds), build_rate, 1.0],
        ["ictal detect --workers 1", min(detects), detect_rate, detect_rate / build_rate],
    ]
    print(table(["command", "wall s", "EEG-h/s", "x build"], rows, first=30))
    share = append / per_record
    print(f"record log: {append * 1e6:.1f} us per append = {share:.4%} of a recording's "
          f"{per_record:.2f} s")  # fmt: skip
    ok_rate = "meets" if detect_rate / build_rate >= 0.8 else "MISSES"
    ok_log = "meets" if share < 0.01 else "MISSES"
    print(f"detect at {detect_rate / build_rate:.2f}x the build ({ok_rate} 0.8x); log append "
          f"{share:.4%} ({ok_log} < 1 %)")  # fmt: skip


if __name__ == "__main__":
    main()
