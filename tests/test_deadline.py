"""A command under a time limit: SIGTERM before the limit, SIGKILL at it, the next attempt
continues the same run, an interrupt from outside ends the loop. Real child processes; the
whole loop on real training is in tests/test_modal.py (the function that uses it)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import pytest

from ictal.orchestrate.deadline import continue_argv, run_within, until_done

# A child that says when its SIGTERM handler is armed, then ignores SIGTERM (or obeys it).
CHILD = """
import signal, sys, time
mode = sys.argv[1]
if mode == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
print("armed", flush=True)
time.sleep(60)
"""


def _program() -> tuple[str, ...]:
    return (sys.executable, "-c", CHILD)


def test_the_next_attempt_of_train_continues_its_run():
    run = Path("/runs/20261126T000000Z-abcdef")
    assert continue_argv(["train", "-c", "a.yaml"], run) == ["train", "-c", "a.yaml", "--run",
                                                              str(run)]  # fmt: skip
    assert continue_argv(["train", "--resume", "--set", "x=1"], run) == [
        "train", "--set", "x=1", "--run", str(run)]  # fmt: skip
    assert continue_argv(["train", "--run", "/old", "--run=/older"], run) == ["train", "--run",
                                                                              str(run)]  # fmt: skip
    assert continue_argv(["build", "-c", "a.yaml"], run) == ["build", "-c", "a.yaml"]
    assert continue_argv(["train"], None) == ["train"]  # no run yet: start it afresh


@pytest.mark.slow
def test_sigterm_before_the_limit_then_sigkill_at_it():
    # SIGTERM 3 s in: the child (a bare interpreter) has long armed its handler
    obeys = run_within(["obey"], limit_s=30.0, grace_s=27.0, program=_program())
    assert obeys.deadline and obeys.exit_code == 130 and obeys.elapsed_s < 25
    ignores = run_within(["ignore"], limit_s=5.0, grace_s=2.0, program=_program())
    assert ignores.deadline and ignores.exit_code == -signal.SIGKILL
    assert 4.9 < ignores.elapsed_s < 25


@pytest.mark.slow
def test_attempts_are_bounded_and_an_ending_other_than_the_limit_stops_the_loop():
    seen = []
    out = until_done(["--version"], limit_s=60.0, grace_s=1.0, max_attempts=5,
                     on_attempt=seen.append)  # fmt: skip
    assert out.done and len(out.attempts) == 1 == len(seen)  # finished: no second attempt
    out = until_done(["no-such-command"], limit_s=60.0, grace_s=1.0, max_attempts=5)
    assert out.exit_code == 2 and len(out.attempts) == 1  # a refusal is not retried
    # every attempt stopped by the limit (SIGTERM 3 s in): exactly max_attempts of them
    out = until_done(["obey"], limit_s=3.5, grace_s=0.5, max_attempts=2, program=_program())
    assert [a.deadline for a in out.attempts] == [True, True] and out.exit_code == 130
    assert not out.done and not out.interrupted


@pytest.mark.slow
def test_an_interrupt_from_outside_stops_the_attempt_and_the_loop():
    stop = threading.Event()
    timer = threading.Timer(3.0, stop.set)
    timer.start()
    try:
        attempt = run_within(["obey"], limit_s=60.0, grace_s=1.0, stop=stop, program=_program())
    finally:
        timer.cancel()
    assert attempt.exit_code == 130 and not attempt.deadline
