"""What makes a long command visible from anywhere: its heartbeat thread and its pusher,
started together and ended together (final heartbeat first, then the final push with its
marker), so train, evaluate, bench and the commands built on them do it the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ictal.config import SinkConfig
from ictal.io.redact import redact
from ictal.runs.heartbeat import Heartbeat, LiveStatus
from ictal.runs.pusher import Pusher, PushOutcome


class RunWatch:
    """The heartbeat of a directory and, when ``sink.url`` is set, its continuous push to
    ``<sink.url>/<name>/``. ``exclude`` leaves out relative paths pushed by someone else."""

    def __init__(
        self,
        directory: Path,
        heartbeat: Path,
        live: LiveStatus,
        sink: SinkConfig,
        name: str,
        exclude: Callable[[str], bool] | None = None,
    ) -> None:
        self.live = live
        self.heartbeat = Heartbeat(heartbeat, live, live.heartbeat_s)
        self.pusher: Pusher | None = None
        if sink.url:
            kwargs = {"exclude": exclude} if exclude is not None else {}
            self.pusher = Pusher(directory, sink.url, name, sink.every_s, live, **kwargs)
            live.update(push_url=redact(self.pusher.dest))

    def start(self) -> RunWatch:
        """First heartbeat now, then the first push at once."""
        self.heartbeat.start()
        if self.pusher is not None:
            self.pusher.start()
        return self

    def checkpointed(self) -> None:
        """A checkpoint was written: say its time, and push it soon."""
        self.live.update(last_checkpoint_time=time.time())
        if self.pusher is not None:
            self.pusher.nudge()

    def finish(self, state: str, error: str | None = None) -> PushOutcome:
        """The final heartbeat (done, failed, stopped), then the final push, marker last."""
        self.heartbeat.stop(state, error)
        if self.pusher is None:
            return PushOutcome()
        return self.pusher.close(final=True)
