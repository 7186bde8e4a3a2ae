"""DPALIGN's peak memory on one file of 4,000 events: NEDC's full cost and step table (how
Ictal computed it before, kept in tests/test_nedc.py as the reference) against the
traceback over closed-form cells (``ictal.events.nedc.dpalign``), in the same run.

Each variant runs in a fresh process that builds the two timelines, then scores them once;
its peak memory is that process's max RSS, less the max RSS of a process that only builds
the timelines. The counts of both must be equal.

Run: PYTHONPATH=src python bench/dpalign_memory.py [--events 4000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import machine_line, table

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {tests!r})
from ictal.events.nedc import build_timeline, dpalign
n = {events}
ref = build_timeline([(10.0 * k + 1, 10.0 * k + 2, True) for k in range(n)], 10.0 * n + 10)
hyp = build_timeline([(10.0 * k + 4, 10.0 * k + 7, True) for k in range(1, n, 2)]
                     + [(10.0 * k + 1.5, 10.0 * k + 1.7, True) for k in range(0, n, 3)],
                     10.0 * n + 10)
t = time.perf_counter()
counts = None
if {variant!r} == "table":
    from test_nedc import _dpalign_table
    counts = list(_dpalign_table(ref, hyp))
elif {variant!r} == "linear":
    c = dpalign(ref, hyp)
    counts = [c.n_ref, c.hits, c.misses, c.false_alarms]
seconds = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"counts": counts, "seconds": seconds, "rss": rss,
                  "segments": [len(ref.segments), len(hyp.segments)]}}))
"""


def run(variant: str, events: int) -> dict:
    """One fresh process scoring (or, for ``timelines``, only building) the pair."""
    code = CHILD.format(tests=str(ROOT / "tests"), events=events, variant=variant)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    args = parser.parse_args()
    print(machine_line())
    base = run("timelines", args.events)
    rows = []
    results = {}
    for variant in ("table", "linear"):
        wall = time.perf_counter()
        res = run(variant, args.events)
        results[variant] = res
        extra = (res["rss"] - base["rss"]) / 2**20
        rows.append([f"{variant} ({'NEDC table' if variant == 'table' else 'closed-form cells'})",
                     extra, res["seconds"], time.perf_counter() - wall])  # fmt: skip
    segs = base["segments"]
    print(f"{args.events} reference events: {segs[0]} x {segs[1]} segments")
    print(table(["DPALIGN", "peak MiB over timelines", "score s", "process s"], rows, first=36))
    same = results["table"]["counts"] == results["linear"]["counts"]
    print(
        f"counts (targets, hits, misses, FAs): {results['linear']['counts']}; "
        + ("identical" if same else f"DIFFER from the table's {results['table']['counts']}")
    )
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
