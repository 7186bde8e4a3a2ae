"""Heartbeat: written at once, periodically, atomically, with rates and machine use; a final
beat carries the end state; during a long validation the beats keep coming."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from ictal.cache.build import build_cache
from ictal.config_file import load_config
from ictal.corpus.synth import synthesize
from ictal.runs.heartbeat import Heartbeat, LiveStatus, read_heartbeat
from ictal.train import loop, trainer


def test_beats_periodically_with_rates(tmp_path):
    path = tmp_path / "heartbeat.json"
    live = LiveStatus("run-1", heartbeat_s=0.05)
    hb = Heartbeat(path, live, 0.05).start()
    try:
        first = read_heartbeat(path)
        assert first is not None and first["state"] == "running" and first["run_id"] == "run-1"
        first_time = first["time"]
        live.update(phase="train", step=3, samples=64, wait_s=0.0, loss=0.5, lr=1e-3)
        beat = first
        deadline = time.monotonic() + 10  # several beats are due; a loaded machine may be late
        while time.monotonic() < deadline and (beat is None or beat.get("step") != 3):
            time.sleep(0.05)
            beat = read_heartbeat(path)
        assert beat["step"] == 3 and beat["phase"] == "train" and beat["loss"] == 0.5
        assert beat["time"] > first["time"]
        assert beat["pid"] == os.getpid() and beat["host"]
        assert beat["rss_gb"] > 0 and "cpu_percent" in beat and "system_ram_percent" in beat
        assert beat["samples_per_s"] is not None and beat["data_wait"] is not None
        assert beat["step_changed_at"] >= first["time"]
    finally:
        hb.stop("done")
    final = read_heartbeat(path)
    assert final["state"] == "done"
    # the final beat carries the process's average rate, not that of its last few instants
    assert 0 < final["samples_per_s"] <= 64 / (final["time"] - first_time)
    assert not [p for p in tmp_path.iterdir() if p.name != "heartbeat.json"], "temp files left"
    json.loads(path.read_text())  # strict JSON


def test_stop_rejects_unknown_state(tmp_path):
    hb = Heartbeat(tmp_path / "hb.json", LiveStatus("r", heartbeat_s=1.0), 1.0).start()
    with pytest.raises(ValueError):
        hb.stop("exploded")
    hb.stop("failed", error="boom")
    assert read_heartbeat(tmp_path / "hb.json")["error"] == "boom"


def test_live_status_rejects_unknown_fields():
    with pytest.raises(AttributeError):
        LiveStatus("r", heartbeat_s=1.0).update(bogus=1)


def test_read_heartbeat_of_missing_or_torn_file(tmp_path):
    assert read_heartbeat(tmp_path / "none.json") is None
    (tmp_path / "torn.json").write_text('{"state": "runn')
    assert read_heartbeat(tmp_path / "torn.json") is None


@pytest.mark.slow
def test_heartbeat_is_written_during_a_long_validation(tmp_path, monkeypatch):
    synthesize(tmp_path / "corpus", patients=4, hours=0.5, seed=1)
    cfg = load_config(
        None,
        [
            f"corpus.root={tmp_path / 'corpus'}",
            f"cache.root={tmp_path / 'cache'}",
            f"runs.root={tmp_path / 'runs'}",
            "windows.length_s=8",
            "windows.stride_s=4",
            "model.params={width: 8, gru_hidden: 8}",
            "loader.batch_size=8",
            "loader.num_workers=0",
            "train.epochs=1",
            "train.steps_per_epoch=2",
            "train.heartbeat_s=0.05",
        ],
    )
    build_cache(cfg, workers=1)
    real_validate = trainer.validate

    def slow_validate(*args, **kwargs):
        time.sleep(1.0)  # a validation pass that takes many heartbeat intervals
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", slow_validate)
    seen: list[dict] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for hb in Path(cfg.runs.root).glob("*/heartbeat.json"):
                beat = read_heartbeat(hb)
                if beat is not None and (not seen or beat["time"] != seen[-1]["time"]):
                    seen.append(beat)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = loop.train(cfg)
    finally:
        stop.set()
        watcher.join()
    assert result.state == "done"
    during = [b for b in seen if b["phase"] == "validate" and b["state"] == "running"]
    assert len(during) >= 5, [b["phase"] for b in seen]
    assert during[-1]["val_total"] > 0
    assert read_heartbeat(result.run_dir / "heartbeat.json")["state"] == "done"
