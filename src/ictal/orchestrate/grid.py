"""The runs of a sweep: every combination of the ``--vary`` values (and seeds), each with a
plain directory name; what a sweep gives each run itself is not a value to vary."""

from __future__ import annotations

import itertools
import math
import re

from ictal.config import ROLES
from ictal.errors import UsageError

# The most runs one sweep plans: each is a training run with its own directory, admitted one
# machine's share at a time; a larger grid (10^6 from a few --vary flags) is refused before
# anything is made, naming its size.
MAX_RUNS = 10_000
# Every name member_name gives: the run's number, then its values made plain.
MEMBER_NAME = re.compile(r"r[0-9]{3,}(-[A-Za-z0-9_.=+-]+)?")


def split_values(text: str) -> list[str]:
    """``v1,v2,...`` split on top-level commas (a YAML list or mapping stays one value)."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def grid(varies: list[str], seeds: int | None) -> list[list[str]]:
    """The runs: every combination of the ``key=v1,v2`` values, times ``seeds`` seeds; more
    than ``MAX_RUNS`` is a usage error, said before any combination is made."""
    axes: list[list[str]] = []
    for vary in varies:
        if "=" not in vary:
            raise UsageError(f"--vary {vary[:80]!r} must look like section.key=v1,v2,...")
        key, values = vary.split("=", 1)
        choices = split_values(values)
        if not key.strip() or not choices:
            raise UsageError(f"--vary {vary[:80]!r}: a key and at least one value are needed")
        if not ROLES.sweep_may_vary(key.strip()):
            raise UsageError(
                f"--vary {key.strip()}: a sweep gives each run its own runs.root, train.threads, "
                "loader.num_workers and train.gpu_memory_fraction, and a path is the same for "
                "every run; vary the experiment (model, data, schedule, seed) instead"
            )
        axes.append([f"{key.strip()}={v}" for v in choices])
    runs = math.prod(len(a) for a in axes) * (seeds or 1)
    if runs > MAX_RUNS:
        sizes = " x ".join([str(len(a)) for a in axes] + ([f"{seeds} seeds"] if seeds else []))
        raise UsageError(
            f"the sweep would have {runs:,} runs ({sizes}), more than the {MAX_RUNS:,} one sweep "
            "plans; vary fewer values (or split the grid into several sweeps)"
        )
    if seeds:
        axes.append([f"train.seed={k}" for k in range(seeds)])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def member_name(k: int, overrides: list[str]) -> str:
    """A plain, unique directory name for run ``k``: its number and its values."""
    values = "-".join(o.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + o.split("=", 1)[1]
                      for o in overrides)  # fmt: skip
    slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", values)  # a YAML mapping: its words, once
    slug = re.sub(r"_*([=-])_*", r"\1", slug)[:80].strip("_")
    return f"r{k:03d}" + (f"-{slug}" if slug else "")
