"""Evaluation progress through the training heartbeat (same file and fields, so ``ictal
status`` reads both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ictal.train.heartbeat import Heartbeat as BeatThread
from ictal.train.heartbeat import LiveStatus


class Heartbeat:
    """Evaluation progress written by the training heartbeat thread (same file, same fields,
    so `ictal status` reads both): a hung batch shows as stalled, a dead process as stale."""

    def __init__(self, path: Path, every_s: float, **static: Any) -> None:
        self.live = LiveStatus(str(static.pop("run_id", None) or ""), every_s, phase="evaluate")
        self.live.update(detail={k: str(v) for k, v in static.items()})
        self.thread = BeatThread(path, self.live, every_s).start()

    def beat(
        self,
        *,
        stage: str | None = None,
        recordings_done: int | None = None,
        recordings_total: int | None = None,
    ) -> None:
        """Record progress: a stage and recordings done, or (no arguments) one more batch."""
        if stage is None:
            self.live.touch()
            return
        detail = {**self.live.snapshot()["detail"], "stage": stage}
        if recordings_total is not None:
            detail["recordings_total"] = recordings_total
        if recordings_done is not None:
            detail["recordings_done"] = recordings_done
        self.live.update(phase=f"evaluate {stage}", detail=detail, step=recordings_done or 0,
                         total_steps=recordings_total or 0)  # fmt: skip

    def stop(self, state: str, error: str | None = None) -> None:
        """Final beat: done or failed."""
        self.thread.stop(state, error)
