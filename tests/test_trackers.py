"""Experiment trackers for real: W&B in offline mode and MLflow on a local SQLite store get
the values metrics.jsonl holds, step for step; a killed and resumed run stays one tracker
run; a tracker that cannot start is exit 3 before training (or a warning when not
required); a failing tracker never stops training."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ictal_env, poll, run_ictal, settings, small_built_corpus, tiny_training
from ictal.runs.metrics import read_metrics


@pytest.fixture(autouse=True)
def _trackers_installed() -> None:
    """W&B and MLflow (dev extra), imported when a test runs rather than at collection."""
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")


FAST = tiny_training(
    "loader.num_workers=1",
    "train.epochs=2",
    "train.steps_per_epoch=4",
    "train.heartbeat_s=1",
    "train.checkpoint_every_s=0.001",
    model=False,
)
ALL = "logging.loggers=[tensorboard,wandb,mlflow]"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return small_built_corpus(tmp_path_factory.mktemp("trackers"), seed=31, fast=FAST)


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = ictal_env(
        {
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(tmp / "wandb-dir"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
            # no netrc and no W&B settings of the machine, named variable by variable: a
            # different HOME would make every command start a new interpreter (conftest)
            "NETRC": str(tmp / "no.netrc"),
            "WANDB_CONFIG_DIR": str(tmp / "wandb-config"),
            "WANDB_CACHE_DIR": str(tmp / "wandb-cache"),
            "WANDB_DATA_DIR": str(tmp / "wandb-data"),
            "WANDB_ARTIFACT_DIR": str(tmp / "wandb-artifacts"),
            **extra,
        }
    )
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_IDENTITY_TOKEN_FILE", None)
    (tmp / "wandb-dir").mkdir(exist_ok=True)
    return env


def _wandb_history(wandb_dir: Path) -> tuple[set[str], dict[int, dict[str, float]]]:
    """The run ids and {step: values} of every offline W&B run under ``wandb_dir``."""
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb.sdk.internal import datastore

    ids, steps = set(), {}
    for path in sorted(glob.glob(str(wandb_dir / "wandb" / "offline-run-*" / "run-*.wandb"))):
        ids.add(Path(path).stem[len("run-") :])
        store = datastore.DataStore()
        store.open_for_scan(path)
        while (data := store.scan_data()) is not None:
            rec = pb.Record()
            rec.ParseFromString(data)
            if rec.WhichOneof("record_type") == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                         for i in rec.history.item}  # fmt: skip
                steps.setdefault(int(rec.history.step.num), {}).update(items)
        store.close()
    return ids, steps


def _mlflow(tmp: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")


def _the_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if (p / "config.yaml").is_file()]
    return run


def _train_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run / "metrics.jsonl")
            if r["phase"] == "train"}  # fmt: skip


@pytest.mark.slow
def test_every_tracker_gets_the_values_of_metrics_jsonl(built: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    res = run_ictal("train", *settings(built, tmp_path / "runs", FAST, ALL), env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    run = _the_run(tmp_path / "runs")
    losses = _train_losses(run)
    assert len(losses) == 8
    ids = json.loads((run / "trackers.json").read_text())
    assert ids["wandb"] == run.name and ids["mlflow"]

    wandb_ids, history = _wandb_history(tmp_path / "wandb-dir")
    assert wandb_ids == {run.name}
    assert {s: v["train/loss"] for s, v in history.items() if "train/loss" in v} == losses
    val = [r for r in read_metrics(run / "metrics.jsonl") if r["phase"] == "val"]
    assert [history[r["step"]]["val/auroc"] for r in val] == [r["auroc"] for r in val]

    client = _mlflow(tmp_path)
    got = client.get_run(ids["mlflow"])
    assert got.info.status == "FINISHED" and got.data.params["ictal.run_id"] == run.name
    assert got.data.params["train.epochs"] == "2"
    history = client.get_metric_history(ids["mlflow"], "train/loss")
    assert {m.step: m.value for m in history} == pytest.approx(losses)
    assert any((run / "tb").iterdir())  # TensorBoard is still written, from the same records

    # An evaluation of the run's checkpoint goes to the same tracker runs.
    res = run_ictal("evaluate", str(run / "checkpoints" / "best.pt"), "--split", "dev", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    scores = json.loads((run / "eval-best-dev" / "scores.json").read_text())
    (at10,) = [p for p in scores["operating_points"]["points"]["ovlp"]
               if p["target_fa_per_24h"] == 10.0]  # fmt: skip
    logged = client.get_metric_history(ids["mlflow"], "eval-dev/ovlp/sensitivity_at_10fa")
    assert [m.value for m in logged] == [pytest.approx(at10["counts"]["sensitivity"])]
    (auroc,) = client.get_metric_history(ids["mlflow"], "eval-dev/auroc")
    assert auroc.value == pytest.approx(scores["auroc"]) and auroc.step == max(losses)
    assert len(client.search_runs([got.info.experiment_id])) == 1
    wandb_ids, history = _wandb_history(tmp_path / "wandb-dir")
    assert wandb_ids == {run.name}
    assert history[max(losses)]["eval-dev/auroc"] == pytest.approx(scores["auroc"])


def _start(sets: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ictal.cli", "train", *sets], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.slow
def test_kill_and_resume_is_one_tracker_run(built: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    # 48 steps: a tiny step takes milliseconds, and the kill must land mid-run, not after it
    sets = settings(built, tmp_path / "runs", FAST, ALL, "train.epochs=12")
    proc = _start(sets, env)
    deadline = time.monotonic() + 120
    run = None
    while time.monotonic() < deadline:  # killed once a few steps are committed
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        found = [p for p in (tmp_path / "runs").glob("*") if (p / "checkpoints/last.pt").exists()]
        if found and len(_train_losses(found[0])) >= 3:
            run = found[0]
            break
        time.sleep(0.02)
    assert run is not None, "training never reached step 3"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    res = run_ictal("train", *sets, "--resume", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _the_run(tmp_path / "runs") == run
    losses = _train_losses(run)
    assert sorted(losses) == list(range(1, 49))

    client = _mlflow(tmp_path)
    (experiment,) = [e for e in client.search_experiments() if e.name == "ictal"]
    (one,) = client.search_runs([experiment.experiment_id])  # one run, continued
    assert one.info.status == "FINISHED"
    steps = {m.step for m in client.get_metric_history(one.info.run_id, "train/loss")}
    assert steps == set(losses)
    wandb_ids, history = _wandb_history(tmp_path / "wandb-dir")
    assert wandb_ids == {run.name}  # the resumed offline run has the same id
    assert max(history) == max(losses)


@pytest.mark.slow
def test_a_tracker_that_cannot_start_is_exit_3_before_training(built: Path, tmp_path) -> None:
    shim = tmp_path / "shim" / "wandb"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named wandb')\n")
    # after this checkout's sources, still before site-packages
    ours = ictal_env()["PYTHONPATH"].rstrip(os.pathsep)
    env = _env(tmp_path, PYTHONPATH=f"{ours}{os.pathsep}{shim.parent}")
    runs = tmp_path / "runs"
    res = run_ictal("train", *settings(built, runs, FAST, ALL), env=env)
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "pip install 'ictal[wandb]'" in res.stderr
    assert not runs.exists() or not any(runs.iterdir())  # refused before the run was made

    t0 = time.monotonic()
    env = _env(tmp_path, MLFLOW_TRACKING_URI="http://127.0.0.1:9")  # nothing listens there
    res = run_ictal("train", *settings(built, runs, FAST, "logging.loggers=[mlflow]"), env=env)
    assert res.returncode == 3, res.stderr[-3000:]
    assert time.monotonic() - t0 < 30 + 15  # the check's 30 s bound, plus process start
    assert "mlflow cannot start" in res.stderr and "MLFLOW_TRACKING_URI" in res.stderr

    env = _env(tmp_path, WANDB_MODE="online")  # online, and no key anywhere
    res = run_ictal("train", *settings(built, runs, FAST, "logging.loggers=[wandb]"), env=env)
    assert res.returncode == 3 and "W&B has no credentials" in res.stderr, res.stderr[-3000:]
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.slow
def test_a_tracker_that_fails_never_stops_training(built: Path, tmp_path: Path) -> None:
    env = _env(tmp_path, MLFLOW_TRACKING_URI="sqlite:////proc/ictal-nope/mlflow.db")
    sets = settings(built, tmp_path / "runs", FAST, "logging.loggers=[tensorboard,mlflow]",
                    "logging.required=false")  # fmt: skip
    res = run_ictal("train", *sets, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "mlflow cannot start" in res.stderr and "training without mlflow" in res.stderr
    assert len(_train_losses(_the_run(tmp_path / "runs"))) == 8


def test_failures_while_training_are_counted_not_raised(tmp_path: Path) -> None:
    """A tracker that raises on every event: the loop's write returns at once, the errors
    are counted in the live status (the heartbeat) and the result."""
    from ictal.config import Config
    from ictal.runs import trackers
    from ictal.runs.directory import RunDir
    from ictal.runs.heartbeat import LiveStatus

    class Broken:
        name = "broken"

        def start(self, run, params, resume, step):  # type: ignore[no-untyped-def]
            return "x"

        def log(self, step, values, flush):  # type: ignore[no-untyped-def]
            time.sleep(0.05)
            raise ConnectionError("server went away")

        def close(self, state):  # type: ignore[no-untyped-def]
            raise ConnectionError("still away")

    live = LiveStatus("r", 1.0)
    fan = trackers.Trackers([], Config(), live)
    fan.active = [Broken()]
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    fan.start(run, {}, 0)
    t0 = time.monotonic()
    for step in range(1, 21):
        fan.log({"phase": "train", "step": step, "loss": 0.5})
    assert time.monotonic() - t0 < 0.9  # waiting for 20 events of 50 ms each takes 1 s or more
    fan.close("done")
    assert fan.errors == 21 and "still away" in (fan.last_error or "")
    assert live.tracker_errors == 21


def test_a_tracker_that_answers_too_late_is_closed_not_left_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tracker whose start outlasts the wait (logging.required=false): training goes on
    without it, its id is not kept, and when its start returns at last the run it opened is
    closed as failed, not left open in the tracker; a tracker that answered in time is kept."""
    import threading

    from ictal.config import Config
    from ictal.runs import trackers
    from ictal.runs.directory import RunDir
    from ictal.runs.heartbeat import LiveStatus

    release = threading.Event()

    class Slow:
        name = "mlflow"

        def __init__(self) -> None:
            self.closed: list[str] = []

        def start(self, run, params, resume, step):  # type: ignore[no-untyped-def]
            release.wait(30)
            return "late-run"

        def log(self, step, values, flush):  # type: ignore[no-untyped-def]
            raise AssertionError("an abandoned tracker is given nothing")

        def close(self, state):  # type: ignore[no-untyped-def]
            self.closed.append(state)

    monkeypatch.setattr(trackers, "CHECK_TIMEOUT_S", 1.0)
    cfg = Config.model_validate({"logging": {"required": False}})
    fan = trackers.Trackers([], cfg, LiveStatus("r", 1.0))
    slow, quick = Slow(), _Taker()
    quick.name = "wandb"
    fan.active = [slow, quick]
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    before = set(threading.enumerate())
    fan.start(run, {}, 0)
    calls = [t for t in threading.enumerate() if t.name == "ictal-tracker-call" and t not in before]
    assert fan.active == [quick] and fan.errors == 1
    assert json.loads(run.trackers.read_text()) == {"wandb": "id-1"}
    assert slow.closed == []
    release.set()  # its start returns now, after the training stopped waiting
    # the late start's thread closes the run, then says so: both done before the test ends
    # (a warning logged after it would go to a capture pytest has already closed)
    poll(lambda: not any(t.is_alive() for t in calls), what="the late tracker call finished")
    assert slow.closed == ["failed"]
    fan.log({"phase": "train", "step": 1, "loss": 0.5})
    fan.close("done")
    assert quick.steps == [1] and slow.closed == ["failed"]
    assert json.loads(run.trackers.read_text()) == {"wandb": "id-1"}


class _Taker:
    """A tracker (named like a real kind) that keeps the steps it was given."""

    name = "mlflow"

    def __init__(self) -> None:
        self.steps: list[int] = []

    def start(self, run, params, resume, step):  # type: ignore[no-untyped-def]
        return "id-1"

    def log(self, step, values, flush):  # type: ignore[no-untyped-def]
        self.steps.append(step)

    def close(self, state):  # type: ignore[no-untyped-def]
        pass


def _fan(run_path: Path, taker: _Taker):  # type: ignore[no-untyped-def]
    from ictal.config import Config
    from ictal.runs import trackers
    from ictal.runs.heartbeat import LiveStatus

    fan = trackers.Trackers([], Config(), LiveStatus("r", 1.0))
    fan.active = [taker]
    return fan


def test_a_resume_resends_what_a_kill_left_in_the_queue(tmp_path: Path) -> None:
    """The events a tracker took are noted beside the run; a resume from step 4 resends, from
    metrics.jsonl, the ones after the last it took and no others; hostile notes are skipped."""
    from ictal.runs.directory import RunDir
    from ictal.runs.trackers import delivered_steps

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    rows = [{"phase": "train", "step": s, "loss": 1.0 / s} for s in range(1, 7)]
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = _Taker()
    fan = _fan(run.path, first)
    fan.start(run, {}, 0)
    for record in rows[:2]:
        fan.log(record)
    fan.close("stopped")
    assert first.steps == [1, 2] and delivered_steps(run) == {"mlflow": 2}
    with open(run.delivered, "a") as f:  # a torn line, a stranger, an absurd step
        f.write("mlflow 99999999999999999999\nevil 9\nmlflow\nml")
    assert delivered_steps(run) == {"mlflow": 2}

    later = _Taker()
    fan = _fan(run.path, later)
    fan.start(run, {}, 4)
    assert fan.resend(run, 4) == 2
    fan.close("done")
    assert later.steps == [3, 4]  # 5 and 6 come again from the resumed training itself

    run.delivered.unlink()  # a run from before the notes: what its trackers got is unknown
    fan = _fan(run.path, _Taker())
    fan.start(run, {}, 4)
    assert fan.resend(run, 4) == 0
    fan.close("done")


class _Buffered(_Taker):
    """A tracker whose events reach disk only at a flush, as TensorBoard's do."""

    name = "tensorboard"
    buffered = True


def test_a_buffered_tracker_counts_as_holding_a_step_once_flushed(tmp_path: Path) -> None:
    from ictal.runs.directory import RunDir
    from ictal.runs.trackers import delivered_steps

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    fan = _fan(run.path, _Buffered())
    fan.start(run, {}, 0)
    for step in (1, 2):
        fan.log({"phase": "train", "step": step, "loss": 0.5})
    fan.log({"phase": "val", "step": 2, "loss": 0.4})  # a validation is flushed
    fan.log({"phase": "train", "step": 3, "loss": 0.5})
    poll(lambda: run.delivered.read_text().endswith("tensorboard 2\n"), what="the flush noted")
    assert delivered_steps(run) == {"tensorboard": 2}  # step 3 may die in its buffer
    fan.close("stopped")
    assert delivered_steps(run) == {"tensorboard": 3}  # the close flushed it


def test_the_delivery_notes_never_follow_a_planted_link(tmp_path: Path) -> None:
    from ictal.runs.directory import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run.delivered.symlink_to(victim)
    fan = _fan(run.path, (taker := _Taker()))
    fan.start(run, {}, 0)
    fan.log({"phase": "train", "step": 1, "loss": 0.5})
    fan.close("done")
    assert taker.steps == [1] and victim.read_text() == "precious\n"
