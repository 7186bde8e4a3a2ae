"""Operating points are chosen on dev, frozen to a file, and applied unchanged to eval."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import ictal.events.operating_points as op
from ictal.errors import UsageError
from ictal.events.deployed import (
    Point,
    bare_threshold,
    default_point,
    exact_point,
    export_plan,
    export_points,
)
from ictal.events.operating_points import (
    RecordingTrace,
    apply_operating_points,
    at_threshold,
    choose_operating_points,
    default_thresholds,
    load_operating_points,
    read_operating_points,
    save_operating_points,
    scorer_order,
    sweep,
)
from ictal.events.postprocess import PostProcess

HALF_DAY = 43_200
GRID = (0.3, 0.5, 0.7, 0.9)
PP = PostProcess(min_duration_s=2.0)


def _record(rid: str, n: int, bumps: list[tuple[int, int, float]], ref) -> RecordingTrace:
    """A 1 Hz trace at 0.05 with plateaus (start, stop, value)."""
    p = np.full(n, 0.05)
    for start, stop, value in bumps:
        p[start:stop] = value
    return RecordingTrace(rid, p, 1.0, list(ref), float(n))


def _dev() -> Iterator[RecordingTrace]:
    """Two half-day recordings (24 h in all, so FA/24h = number of false alarms).

    Seizure plateaus cover their reference exactly; false-alarm plateaus sit far from any
    seizure, so OVLP, TAES and SzCORE all count the same: at threshold
      0.3: hits 3, FA 5 (0.8, 0.4, 0.4, 0.55, 0.35)   0.5: hits 3, FA 2 (0.8, 0.55)
      0.7: hits 2, FA 1 (0.8)                          0.9: hits 1, FA 0
    """
    yield _record(
        "dev-a",
        HALF_DAY,
        [
            (1000, 1060, 0.95),
            (20000, 20060, 0.6),
            (5000, 5010, 0.8),
            (10000, 10010, 0.4),
            (30000, 30010, 0.4),
        ],
        [(1000.0, 1060.0), (20000.0, 20060.0)],
    )
    yield _record(
        "dev-b",
        HALF_DAY,
        [(2000, 2100, 0.85), (7000, 7010, 0.55), (15000, 15010, 0.35)],
        [(2000.0, 2100.0)],
    )


def _eval() -> Iterator[RecordingTrace]:
    """One 24 h recording: a weak seizure (0.65) and three confident false alarms (0.95)."""
    yield _record(
        "eval-a",
        2 * HALF_DAY,
        [(500, 560, 0.65), (9000, 9010, 0.95), (40000, 40010, 0.95), (70000, 70010, 0.95)],
        [(500.0, 560.0)],
    )


def test_sweep_counts_per_threshold() -> None:
    curve = sweep(_dev(), PP, GRID)
    assert curve.n_recordings == 2
    assert curve.thresholds == GRID
    for name in ("ovlp", "taes", "szcore"):
        counts = curve.counts[name]
        assert [c.hits for c in counts] == [3, 3, 2, 1]
        assert [c.false_alarms for c in counts] == [5, 2, 1, 0]
        assert all(c.duration_s == 2 * HALF_DAY and c.n_ref == 3 for c in counts)
        assert [c.fa_per_24h for c in counts] == pytest.approx([5, 2, 1, 0])


def test_choose_highest_sensitivity_within_target() -> None:
    ops = choose_operating_points(sweep(_dev(), PP, GRID), targets=(10, 5, 2.5, 1, 0.5))
    for name in ("ovlp", "taes", "szcore"):
        chosen = {t: p.threshold for t, p in ops.points[name].items()}
        # 10 and 5: sensitivity 1 at 0.3 (FA 5) and 0.5 (FA 2) -> tie, fewer FA: 0.5;
        # 2.5: only 0.5 of the sensitivity-1 ones qualifies; 1: 0.7 with FA exactly 1
        # (<= target), sensitivity 2/3; 0.5: 0.9 (FA 0), sensitivity 1/3
        assert chosen == {10.0: 0.5, 5.0: 0.5, 2.5: 0.5, 1.0: 0.7, 0.5: 0.9}
        assert ops.points[name][1.0].sensitivity == pytest.approx(2 / 3)
        assert ops.points[name][1.0].fa_per_24h == pytest.approx(1.0)


def test_plateau_of_equal_points_gives_its_middle_threshold() -> None:
    # One seizure at 0.97 and no false alarms: every threshold up to 0.97 finds it with 0 FA,
    # so the grid 0.1 .. 0.9 is one plateau; its middle (0.5) is chosen, not the edge 0.9.
    def rec() -> Iterator[RecordingTrace]:
        yield _record("a", HALF_DAY, [(100, 160, 0.97)], [(100.0, 160.0)])

    grid = (0.1, 0.3, 0.5, 0.7, 0.9)
    ops = choose_operating_points(sweep(rec(), PP, grid), targets=(10,))
    assert ops.points["ovlp"][10.0].threshold == 0.5


def test_no_threshold_meets_target() -> None:
    ops = choose_operating_points(sweep(_dev(), PP, (0.3,)), targets=(1,))
    point = ops.points["ovlp"][1.0]
    assert point.threshold is None and point.counts is None
    assert np.isnan(point.sensitivity)


def test_frozen_on_dev_applied_unchanged_to_eval(tmp_path, monkeypatch) -> None:
    dev_ops = choose_operating_points(sweep(_dev(), PP, GRID))
    path = save_operating_points(tmp_path / "operating_points.json", dev_ops)
    frozen_text = path.read_text()
    loaded = load_operating_points(path)
    assert loaded == dev_ops

    # applying must not choose or sweep anything
    def _forbidden(*args, **kwargs):
        raise AssertionError("apply_operating_points must not re-choose thresholds")

    monkeypatch.setattr(op, "choose_operating_points", _forbidden)
    monkeypatch.setattr(op, "sweep", _forbidden)
    applied = apply_operating_points(_eval(), loaded)

    for name in ("ovlp", "taes", "szcore"):
        for target, point in applied[name].items():
            assert point.threshold == dev_ops.points[name][target].threshold  # exactly dev's
        # eval at the frozen 0.5: seizure (0.65) hit, 3 false alarms in 24 h -> 3/24h, above
        # the 2.5 target it was chosen for on dev: frozen means frozen
        at_half = applied[name][2.5].counts
        assert (at_half.hits, at_half.false_alarms, at_half.n_ref) == (1, 3, 1)
        assert at_half.fa_per_24h == pytest.approx(3.0)
        # eval at the frozen 0.7: the 0.65 seizure is missed, the 3 false alarms stay
        at_07 = applied[name][1.0]
        assert at_07.threshold == 0.7
        assert (at_07.counts.hits, at_07.counts.false_alarms) == (0, 3)

    # eval data did not touch the frozen file or the loaded object
    assert path.read_text() == frozen_text
    assert loaded == dev_ops
    # and eval would have chosen differently (so the check above is not vacuous):
    # on eval every threshold has 3 FA/24h, so nothing meets the 1 FA/24h target
    monkeypatch.undo()
    eval_ops = choose_operating_points(sweep(_eval(), PP, GRID))
    assert eval_ops.points["ovlp"][1.0].threshold is None
    assert dev_ops.points["ovlp"][1.0].threshold == 0.7


def test_a_named_file_is_read_or_refused_naming_it(tmp_path) -> None:
    dev_ops = choose_operating_points(sweep(_dev(), PP, GRID))
    path = save_operating_points(tmp_path / "operating_points.json", dev_ops)
    assert read_operating_points(path) == dev_ops
    missing = tmp_path / "nope.json"
    with pytest.raises(UsageError, match=f"operating points file {missing} does not exist"):
        read_operating_points(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(UsageError, match=f"operating points file {broken} is not usable"):
        read_operating_points(broken)


def _dev_points(grid=GRID, targets=(10, 5, 2.5, 1, 0.5)) -> op.OperatingPoints:
    return choose_operating_points(sweep(_dev(), PP, grid), targets=targets)


def test_a_named_point_is_exact_and_records_where_it_was_tuned() -> None:
    ops = _dev_points()
    point = exact_point(ops, "ovlp@1", "--operating-point")
    assert point == Point(0.7, "ovlp", 1.0, pytest.approx(2 / 3), pytest.approx(1.0), "dev")
    assert point.doc() == {"scorer": "ovlp", "budget_fa24h": 1.0, "threshold": 0.7,
                           "dev_sensitivity": pytest.approx(2 / 3),
                           "dev_fa24h": pytest.approx(1.0)}  # fmt: skip
    assert point.label == "ovlp@1_t0.7" and point.name == "ovlp@1"
    assert exact_point(ops, "taes@2.5", "x").label == "taes@2.5_t0.5"
    assert bare_threshold(0.42).doc() == {"scorer": None, "budget_fa24h": None,
                                          "threshold": 0.42, "dev_sensitivity": None,
                                          "dev_fa24h": None}  # fmt: skip
    assert bare_threshold(0.42).label == "t0.42"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ovlp10", "'ovlp10' is not SCORER@BUDGET; give e.g. ovlp@10"),
        ("epoch@10", "epoch@10: no scorer 'epoch' was tuned; the points that exist: ovlp@10 "
                     "(t=0.5), ovlp@5 (t=0.5)"),
        ("ovlp@20", "ovlp@20: ovlp was never tuned for 20 FA/24h; the points that exist:"),
        ("ovlp@0.5", "ovlp@0.5: no threshold kept ovlp within 0.5 FA/24h on dev; the points "
                     "that exist: ovlp@10 (t=0.5), ovlp@5 (t=0.5), ovlp@1 (t=0.7), ovlp@0.5 "
                     "(none met it), taes@10"),
    ],
)  # fmt: skip
def test_a_point_the_run_does_not_have_is_one_line_listing_those_it_has(text, message) -> None:
    ops = _dev_points(grid=(0.3, 0.5, 0.7), targets=(10, 5, 1, 0.5))
    with pytest.raises(UsageError) as err:
        exact_point(ops, text, "--operating-point")
    assert str(err.value).startswith(f"--operating-point {message}")
    assert "\n" not in str(err.value)


def test_the_default_point_falls_back_to_a_tighter_budget_first() -> None:
    ops = _dev_points()
    assert default_point(ops, "ovlp@10", "detect.operating_point") == (
        exact_point(ops, "ovlp@10", "x"), "")  # fmt: skip
    # never tuned for 2 FA/24h: the largest budget below it with a threshold (1), not 2.5
    point, note = default_point(ops, "ovlp@2", "detect.operating_point")
    assert point is not None and point.name == "ovlp@1" and point.threshold == 0.7
    assert note == "detect.operating_point ovlp@2 has no threshold here; using ovlp@1 instead"
    # nothing below has a threshold: the smallest budget above it
    sparse = _dev_points(grid=(0.3, 0.5), targets=(10, 1, 0.5))
    point, _ = default_point(sparse, "ovlp@1", "detect.operating_point")
    assert point is not None and point.name == "ovlp@10"
    # no budget has a threshold at all: None, said
    none = _dev_points(grid=(0.3,), targets=(1,))
    point, note = default_point(none, "ovlp@1", "detect.operating_point")
    assert point is None and "no ovlp budget has a threshold" in note
    with pytest.raises(UsageError, match="no scorer 'epoch' was tuned"):
        default_point(ops, "epoch@10", "detect.operating_point")


def test_export_points_every_budget_of_a_scorer_or_one_and_the_deployed_one() -> None:
    ops = _dev_points(grid=(0.3, 0.5, 0.7), targets=(10, 5, 1, 0.5))
    points, skipped = export_points(ops, ["ovlp", "taes@1", "ovlp@10"], "x")
    assert [p.label for p in points] == ["ovlp@10_t0.5", "ovlp@5_t0.5", "ovlp@1_t0.7",
                                         "taes@1_t0.7"]  # fmt: skip
    assert skipped == ["ovlp@0.5: no threshold met it on dev"]
    with pytest.raises(UsageError, match="x taes@2: that point is never tuned"):
        export_points(ops, ["taes@2"], "x")
    plan = export_plan(ops, "ovlp@10", ["taes@1"], 0.5)
    assert plan.deployed.name == "ovlp@10" and plan.deployed.threshold == 0.5
    assert [p.label for p in plan.points] == ["taes@1_t0.7", "ovlp@10_t0.5"]
    assert plan.basis == "ovlp@10: threshold 0.5 (dev: sensitivity 100.0 %, 2.0 FA/24h)"
    untuned = export_plan(_dev_points(grid=(0.3,), targets=(1,)), "ovlp@10", ["ovlp"], 0.25)
    assert untuned.deployed == Point(0.25) and [p.label for p in untuned.points] == ["t0.25"]


def test_scorers_in_canonical_order_then_by_name() -> None:
    assert scorer_order(["zeta", "szcore", "alpha", "ovlp", "taes"]) == [
        "ovlp", "taes", "szcore", "alpha", "zeta",
    ]  # fmt: skip


def test_records_stream_once() -> None:
    seen: list[str] = []

    def records() -> Iterator[RecordingTrace]:
        for rec in _dev():
            seen.append(rec.recording_id)
            yield rec

    curve = sweep(records(), PP, GRID, scorers=("ovlp",))
    assert seen == ["dev-a", "dev-b"]
    assert set(curve.counts) == {"ovlp"}


def test_hysteresis_keeps_its_gap_across_thresholds() -> None:
    pp = PostProcess(threshold=0.6, hysteresis_low=0.4)
    assert at_threshold(pp, 0.8).hysteresis_low == pytest.approx(0.6)
    assert at_threshold(pp, 0.1).hysteresis_low == 0.0
    assert at_threshold(PostProcess(), 0.3) == PostProcess(threshold=0.3)


def test_default_grid() -> None:
    grid = default_thresholds()
    assert grid[0] == 0.02 and 0.98 in grid
    assert list(grid) == sorted(set(grid))  # strictly increasing
    assert grid[-1] < 1.0
    assert sum(t > 0.98 for t in grid) >= 3  # finer top end
