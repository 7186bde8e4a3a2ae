"""How a result's numbers read in every table (console and report alike): a sensitivity in
percent, a false-alarm rate with its unit, each with its 95 % interval, an onset latency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EVENTS = "FA"  # false-alarm events per 24 h
SAMPLES = "FP-s"  # SzCORE samples: false-positive seconds (1 Hz samples) per 24 h


def threshold_text(t: float) -> str:
    """A probability threshold with every digit the grid has (0.9975 is not 0.998)."""
    return f"{float(t):.6g}"


def pct(v: float | None) -> str:
    """A fraction as a percentage with one decimal; 'n/a' when undefined."""
    return "n/a" if v is None else f"{100 * float(v):.1f}%"


def _num(v: float, decimals: int = 1) -> str:
    """A number with ``decimals`` decimals below 100, none above (a rate of 968 reads 968)."""
    return f"{v:.{decimals if abs(v) < 100 else 0}f}"


def interval_text(ci: Sequence[float] | None, percent: bool = False) -> str:
    """'[low, high]' of an interval (percentages at one decimal), '' without one; a comma,
    not a dash, so negative bounds read right."""
    if not ci:
        return ""
    low, high = (f"{100 * float(v):.1f}" if percent else _num(float(v)) for v in ci)
    return f"[{low}, {high}]"


def _span(ci: Sequence[float] | None, percent: bool = False) -> str:
    return f" {interval_text(ci, percent)}" if ci else ""


def sens_text(v: float | None, ci: Sequence[float] | None = None) -> str:
    """'80.9% [66.7, 91.0]': a sensitivity and its 95 % interval, both in percent."""
    return pct(v) if v is None else pct(v) + _span(ci, percent=True)


def fa_text(v: float | None, ci: Sequence[float] | None = None, unit: str = EVENTS) -> str:
    """'6.7 FA [0.2, 37.1]': a rate per 24 h with its unit (FA events, or FP-s for SzCORE
    samples) and its 95 % interval."""
    if v is None:
        return f"n/a {unit}"
    return f"{_num(float(v))} {unit}" + _span(ci)


def latency_text(lat: dict[str, Any] | None) -> str:
    """'12.0 s [8.0, 20.5] n=34': median onset latency, quartiles and how many seizures."""
    if not lat or lat.get("median") is None:
        return "-"
    return f"{lat['median']:.1f} s [{lat['q1']:.1f}, {lat['q3']:.1f}] n={lat['n']}"


def cell_ci(c: dict[str, Any], key: str) -> Sequence[float] | None:
    """The reported 95 % interval of ``key`` in a cell carrying ``ci95`` (None without)."""
    return (c.get("ci95") or {}).get(key)
