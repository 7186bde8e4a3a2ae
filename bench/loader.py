"""Training reads: Ictal's window loader against a sequential read and the npz baseline.

Same run, same cache bytes: a cache of a synthetic corpus is built (or `--cache DIR` reused),
then, with a warm page cache,
- random windows through WindowDataset + make_loader (a random permutation of all window
  ids): inline, then 1 and 2 reader threads and 1 and 2 worker processes;
- (a) a plain sequential read of the same .npy files: the practical limit;
- (b) the baseline loader: one compressed npz per recording holding the overlapping windows
  (what failing pipelines stored), where each window read decompresses the file;
- time from "train start" to the first batch (open + L0 verify, window index, sampler,
  dataset and loader, first batch) for caches of 100, 1,000 and 5,000 recordings,
  fabricated by hard-linking the real arrays under new ids.

Run: PYTHONPATH=src python bench/loader.py [--patients 8 --hours 2] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import best_of, ensure_corpus, machine_line, overlapping_windows, table
from ictal.cache.build import build_cache
from ictal.cache.layout import MANIFEST, TABLE
from ictal.cache.manifest import CacheView, open_cache, sha256_bytes, table_bytes
from ictal.cache.verify import verify_l0
from ictal.config_file import load_config
from ictal.data.dataset import WindowDataset
from ictal.data.loader import make_loader
from ictal.data.sampler import BalancedSampler
from ictal.data.windows import build_window_index, label_mask

MB = 1e6
WINDOW_S, STRIDE_S = 60.0, 10.0


def lengths_and_intervals(recs: list[dict[str, Any]]) -> tuple[np.ndarray, list[np.ndarray]]:
    n = np.array([r["n_samples"] for r in recs], dtype=np.int64)
    return n, [np.array(r["seizures"], dtype=np.int64).reshape(-1, 2) for r in recs]


def dataset_of(view: CacheView, recs: list[dict[str, Any]]) -> WindowDataset:
    """The training dataset of `recs` with 60 s windows at 10 s stride."""
    n, intervals = lengths_and_intervals(recs)
    window, stride = round(WINDOW_S * view.fs), round(STRIDE_S * view.fs)
    index = build_window_index(n, intervals, window, stride)
    paths = [str(view.array_path(r)) for r in recs]
    return WindowDataset(paths, index, intervals, window, np.dtype(view.manifest["dtype"]))


def loader_pass(loader: torch.utils.data.DataLoader) -> int:
    """Iterate one epoch; returns the number of windows delivered."""
    n = 0
    for x, _y in loader:
        n += x.shape[0]
    return n


def sequential_read(paths: list[str]) -> int:
    """Read every array file whole with np.load; returns bytes of array data."""
    total = 0
    for p in paths:
        total += np.load(p, allow_pickle=False).nbytes
    return total


def write_baseline(view: CacheView, recs: list[dict[str, Any]], out: Path) -> list[Path]:
    """One compressed npz per recording with its overlapping windows (float32) and labels."""
    out.mkdir(parents=True, exist_ok=True)
    window, stride = round(WINDOW_S * view.fs), round(STRIDE_S * view.fs)
    files = []
    for r in recs:
        x = np.load(view.array_path(r), allow_pickle=False).T  # (channels, n)
        mask = label_mask(np.array(r["seizures"]).reshape(-1, 2), 0, x.shape[1])
        wins, frac = overlapping_windows(x, mask, window, stride)
        path = out / f"{r['id']}.npz"
        np.savez_compressed(path, windows=wins, labels=frac)
        files.append(path)
    return files


def baseline_reads(picks: list[tuple[Path, int]]) -> int:
    """Read windows the baseline way: open the npz, decompress the member, index it."""
    nbytes = 0
    for path, j in picks:
        with np.load(path, allow_pickle=False) as z:
            x = z["windows"][j]
            _y = z["labels"][j]
        nbytes += x.nbytes
    return nbytes


def fabricate(view: CacheView, n: int, out: Path) -> Path:
    """A cache of `n` training recordings: the real arrays hard-linked under new ids, a
    recordings table and a manifest that pass L0 (same lengths, sizes and intervals)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "arrays").mkdir(parents=True)
    rows = []
    for k in range(n):
        src = view.recordings[k % len(view.recordings)]
        rid = f"fab{k:06d}"
        array = f"arrays/{rid}.npy"
        try:
            os.link(view.array_path(src), out / array)
        except OSError:  # another file system: a copy (a link out of the cache is refused)
            shutil.copyfile(view.array_path(src), out / array)
        rows.append({**src, "id": rid, "array": array, "split": "train"})
    raw = table_bytes(rows)
    (out / TABLE).write_bytes(raw)
    man = json.loads(json.dumps(view.manifest))
    man["table"] = {"file": TABLE, "sha256": sha256_bytes(raw), "bytes": len(raw)}
    man["totals"]["recordings"] = n
    (out / MANIFEST).write_text(json.dumps(man), encoding="utf-8")
    return out


def first_batch(path: Path, batch_size: int, workers: int, backend: str) -> dict[str, float]:
    """Seconds of each step from opening the cache to holding the first batch."""
    t = [time.perf_counter()]
    view = open_cache(path)
    problems = verify_l0(path)
    assert not problems, problems[:3]
    t.append(time.perf_counter())
    recs = view.split("train")
    n, intervals = lengths_and_intervals(recs)
    window, stride = round(WINDOW_S * view.fs), round(STRIDE_S * view.fs)
    index = build_window_index(n, intervals, window, stride)
    t.append(time.perf_counter())
    sampler = BalancedSampler(index, seed=0)
    sampler.epoch_indices(0)
    t.append(time.perf_counter())
    paths = [str(view.array_path(r)) for r in recs]
    ds = WindowDataset(paths, index, intervals, window, np.dtype(view.manifest["dtype"]))
    backend = "threads" if workers == 0 else backend  # "inline": no workers of either kind
    loader = make_loader(ds, sampler, batch_size=batch_size, num_workers=workers,
                         backend=backend, pin_memory=False)  # fmt: skip
    it = iter(loader)
    x, _y = next(it)
    t.append(time.perf_counter())
    assert x.shape == (batch_size, window, len(view.channels))
    del it, loader
    steps = ("open+L0", "index", "sampler", "first batch")
    out = {s: t[i + 1] - t[i] for i, s in enumerate(steps)}
    out["total"] = t[-1] - t[0]
    out["windows"] = float(len(index))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="a committed cache directory to reuse")
    parser.add_argument("--corpus", help="existing TUSZ-layout corpus (default: synthesize one)")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--repeats", type=int, default=3, help="best of N passes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", default="1,2", help="loader num_workers to measure")
    parser.add_argument("--backends", default="threads,processes", help="loader backends")
    parser.add_argument("--baseline-reads", type=int, default=24, help="windows per pass")
    parser.add_argument("--recordings", default="100,1000,5000")
    parser.add_argument("--tmp", help="directory for the corpus and caches (default: system tmp)")
    args = parser.parse_args()
    logging.getLogger("ictal").setLevel(logging.WARNING)
    torch.set_num_threads(1)

    tmp = Path(tempfile.mkdtemp(prefix="ictal-bench-loader-", dir=args.tmp))
    try:
        if args.cache:
            path = Path(args.cache)
        else:
            corpus = ensure_corpus(args.corpus, tmp, args.patients, args.hours, args.seed)
            cfg = load_config(None, [f"corpus.root={corpus}", f"cache.root={tmp / 'cache'}",
                                     f"signal.dtype={args.dtype}"])  # fmt: skip
            path = build_cache(cfg, workers=2).path
        view = open_cache(path)
        recs = view.recordings
        paths = [str(view.array_path(r)) for r in recs]
        ds = dataset_of(view, recs)
        itemsize = np.dtype(view.manifest["dtype"]).itemsize
        win_mb = ds.window * len(view.channels) * itemsize / MB
        cache_mb = sum(r["bytes"] for r in recs) / MB
        hours = view.manifest["totals"]["hours"]
        print(f"cache {path}: {len(recs)} recordings, {hours:.2f} h, {cache_mb:.0f} MB "
              f"{view.manifest['dtype']}, {len(ds):,} windows of {WINDOW_S:g} s "
              f"({win_mb:.2f} MB each in the cache)")  # fmt: skip
        print(machine_line())

        # (a) sequential: the practical limit (warm: first call warms the page cache).
        sequential_read(paths)
        t_seq, nbytes = best_of(lambda: sequential_read(paths), args.repeats)
        seq_mbs = nbytes / MB / t_seq

        # Ictal: random permutation of every window id; first pass warms, then best of N.
        perm = np.random.default_rng(0).permutation(len(ds)).tolist()
        rows_ictal = []
        runs = [("inline", 0)] + [
            (backend, w)
            for backend in args.backends.split(",")
            for w in [int(x) for x in args.workers.split(",")]
            if w > 0
        ]
        for backend, w in runs:
            loader = make_loader(ds, perm, batch_size=args.batch_size, num_workers=w,
                                 backend="threads" if w == 0 else backend,
                                 pin_memory=False)  # fmt: skip
            loader_pass(loader)
            t, n = best_of(lambda loader=loader: loader_pass(loader), args.repeats)
            label = "num_workers=0 (inline)" if w == 0 else f"{backend}={w}"
            rows_ictal.append((label, n / t, n * win_mb / t))
            del loader

        # (b) baseline: npz per recording (windows stored 6x), each read decompresses it.
        t0 = time.perf_counter()
        files = write_baseline(view, recs, tmp / "baseline")
        t_write = time.perf_counter() - t0
        base_mb = sum(f.stat().st_size for f in files) / MB
        counts = ds.index.rec
        rng = np.random.default_rng(1)
        picks = []
        starts = np.concatenate([[0], np.cumsum(np.bincount(counts, minlength=len(recs)))])
        for i in rng.choice(len(ds), size=args.baseline_reads, replace=False):
            r = int(counts[i])
            picks.append((files[r], int(i - starts[r])))
        baseline_reads(picks)
        t_base, nb = best_of(lambda: baseline_reads(picks), args.repeats)
        base_mbs = nb / MB / t_base
        base_ws = len(picks) / t_base
        print(machine_line())
        print(f"\nrandom 60 s windows, batch {args.batch_size}, warm page cache, best of "
              f"{args.repeats}; MB/s counts window bytes as stored in the cache\n")  # fmt: skip
        rows = [["(a) sequential np.load of the arrays", "-", seq_mbs, 1.0, seq_mbs / base_mbs]]
        for label, ws, mbs in rows_ictal:
            rows.append([f"ictal loader, {label}", f"{ws:,.0f}", mbs, mbs / seq_mbs,
                         mbs / base_mbs])  # fmt: skip
        rows.append(["(b) baseline npz per recording", f"{base_ws:,.1f}", base_mbs,
                     base_mbs / seq_mbs, 1.0])  # fmt: skip
        print(table(["reader", "windows/s", "MB/s", "x sequential", "x baseline"], rows, 40))
        print(
            f"(targets: warm random >= 0.5x sequential, >= 20x baseline; baseline files: "
            f"{base_mb:.0f} MB written in {t_write:.1f} s vs {cache_mb:.0f} MB of arrays)\n"
        )

        # Train start -> first batch on fabricated caches of N recordings.
        fb_rows = []
        for n in [int(x) for x in args.recordings.split(",")]:
            fab = fabricate(view, n, tmp / f"fab-{n}")
            for backend, w in (("inline", 0), ("threads", 2), ("processes", 1)):
                best: dict[str, float] | None = None
                for _ in range(args.repeats):
                    r = first_batch(fab, args.batch_size, w, backend)
                    if best is None or r["total"] < best["total"]:
                        best = r
                assert best is not None
                fb_rows.append([f"{n:,} recordings, {backend}={w}", f"{best['windows']:,.0f}",
                                best["open+L0"], best["index"], best["sampler"],
                                best["first batch"], best["total"]])  # fmt: skip
            shutil.rmtree(fab)
        print(f"train start -> first batch (warm page cache, best of {args.repeats}; target "
              f"< 2 s at 5,000 recordings)")  # fmt: skip
        print(table(["cache", "windows", "open+L0 s", "index s", "sampler s", "batch s",
                     "total s"], fb_rows, 36))  # fmt: skip
        print(f"\nload average at the end: {machine_line()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
