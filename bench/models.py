"""Training throughput of every model of the zoo, against the default detector in the same run.

One synthetic corpus is built (or `--cache-root DIR` reused with its corpus), then
`ictal bench`'s timed steps (the same preflight, loader, optimiser and deterministic kernels
as a training) run for each model at the given params, best of `--repeats`: samples/s and
s/batch, and the ratio to `conv_bigru` measured in the same run. Each model's params are
printed with it: CPU numbers at small sizes say how the models compare here, not on a GPU.

Run: PYTHONPATH=src python bench/models.py [--batches 5 --repeats 3 --window-s 60]
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from common import ensure_corpus, machine_line, table
from ictal.cache.build import build_cache
from ictal.config_file import load_config
from ictal.train.throughput import run_bench

MODELS: list[tuple[str, dict[str, Any]]] = [
    ("conv_bigru", {}),
    ("tcn_ssm", {}),
    (
        "seizure_transformer",
        {"filters": [16, 32, 64, 128, 128], "layers": 2, "heads": 4, "ff": 256},
    ),
    ("braindecode/EEGNetv4", {"context_s": 1.0}),
]


def _available(name: str) -> bool:
    if not name.startswith("braindecode/"):
        return True
    try:
        import braindecode  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--corpus", default=None, help="an existing corpus (default: synthesised)")
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window-s", type=float, default=60.0)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    logging.getLogger("ictal").setLevel(logging.WARNING)
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus = ensure_corpus(args.corpus, tmp, args.patients, args.hours, seed=3)
        base = [f"corpus.root={corpus}", f"cache.root={tmp / 'cache'}",
                f"runs.root={tmp / 'runs'}", f"windows.length_s={args.window_s}",
                f"loader.batch_size={args.batch_size}"]  # fmt: skip
        build_cache(load_config(None, base))
        quiet = Console(file=io.StringIO())  # bench's own table per repeat: not shown
        rows, baseline = [], None
        for name, params in MODELS:
            if not _available(name):
                rows.append([name, "-", "-", "-", "pip install 'ictal[braindecode]'"])
                continue
            cfg = load_config(None, [*base, f"model.name={name}", f"model.params={params}"])
            best = None
            for _ in range(max(1, args.repeats)):
                result = run_bench(cfg, args.batches, None, quiet)
                rate = result.samples_per_s
                best = rate if best is None else max(best, rate)
            assert best is not None
            baseline = baseline if baseline is not None else best
            rows.append([name, f"{best:.1f}", f"{args.batch_size / best:.3f}",
                         f"{best / baseline:.2f}x", str(params or "(defaults)")])  # fmt: skip
    print(f"training throughput, batches of {args.batch_size} windows of {args.window_s:g} s, "
          f"best of {args.repeats} x {args.batches} timed steps (CPU)")  # fmt: skip
    print(table(["model", "samples/s", "s/batch", "vs conv_bigru", "model.params"], rows, 24))


if __name__ == "__main__":
    main()
