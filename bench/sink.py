"""What pushing a run to a sink costs a training step: `ictal bench` without a sink against
`ictal bench` with `sink.url` on an S3 API on loopback (moto's server) and `sink.every_s=1`
(a heartbeat, a metrics line per step, a checkpoint and the continuous push, as in training).

Each contender runs as its own process (the S3 server lives in this one), alternately, best of
`--repeats`. Target: the step time with a sink within 5 % of the step time without.

Run: PYTHONPATH=src python bench/sink.py [--batches 60] [--repeats 4] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine_line, table

ROOT = Path(__file__).resolve().parents[1]


def s3_server() -> tuple[object, dict[str, str]]:
    """A moto S3 server on 127.0.0.1 with the bucket `bench`, and the environment to reach it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)
    import fsspec

    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("bench")
    return server, env


def ictal(args: list[str], env: dict[str, str]) -> str:
    """Run the ictal command line in a fresh process; its stdout."""
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, "-m", "ictal.cli", *args], env=full,
                         capture_output=True, text=True, check=False)  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"ictal {' '.join(args[:1])} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def s_per_batch(output: str) -> float:
    """The s/batch row of the bench table."""
    m = re.search(r"s/batch\s*[│|]?\s*([0-9.]+)", output)
    if m is None:
        raise SystemExit(f"no s/batch in the bench output:\n{output}")
    return float(m.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ictal-bench-sink-"))
    corpus = work / "corpus"
    sets = [f"corpus.root={corpus}", f"cache.root={work / 'cache'}",
            f"runs.root={work / 'runs'}", "train.heartbeat_s=1"]  # fmt: skip
    base = [a for s in sets for a in ("--set", s)]
    if not corpus.exists():
        ictal(["synth", str(corpus), "--patients", "6", "--hours", "2", "--seed", "5"], {})
    ictal(["build", *base], {})
    server, env = s3_server()
    sink = ["--set", "sink.url=s3://bench/runs", "--set", "sink.every_s=1"]
    contenders = {"no sink": [], "sink s3 (loopback), every 1 s": sink}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        for _ in range(args.repeats):
            for name, extra in contenders.items():  # alternate: drift hits both alike
                out = ictal(["bench", "--batches", str(args.batches), *base, *extra], env)
                times[name].append(s_per_batch(out))
    finally:
        server.stop()  # type: ignore[attr-defined]
    best = {name: min(ts) for name, ts in times.items()}
    reference = best["no sink"]
    rows = [
        [name, best[name], best[name] / reference, "  " + " ".join(f"{t:.4f}" for t in times[name])]
        for name in contenders
    ]
    print(machine_line())
    print(f"ictal bench --batches {args.batches}, best of {args.repeats} (s/batch)")
    print(table(["contender", "s/batch", "x no sink", "all runs"], rows, first=32))
    ratio = best["sink s3 (loopback), every 1 s"] / reference
    verdict = "meets" if ratio <= 1.05 else "MISSES"
    print(f"with a sink: {ratio:.3f}x the step time without ({verdict} the 1.05x target)")


if __name__ == "__main__":
    main()
