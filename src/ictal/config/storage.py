"""The ``cache``, ``runs`` and ``sink`` sections: where Ictal writes, and how the cache is
built."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ictal.config.base import Section
from ictal.roles import MachineField, PathField


class CacheConfig(Section):
    """Where caches live (one root; the key subdirectory is derived) and build knobs."""

    root: PathField[str] = "data/cache"
    """Local directory of caches (arrays are memory-mapped); `<root>/<key16>/` per cache."""
    remote: PathField[str | None] = None
    """Where `ictal publish` puts committed caches and `ictal stage` fetches them (any fsspec
    URL: s3://bucket/caches, gs://..., a shared path); `<remote>/<key16>/` per cache."""
    workers: MachineField[int | None] = Field(None, ge=1, le=512)
    """Build worker processes; null: one per usable CPU."""
    executor: MachineField[Literal["process", "serial", "ray"]] = "process"
    """How build tasks run: `process` pool, `serial` in this process, or `ray`."""
    max_failed_fraction: float = Field(0.05, ge=0.0, le=1.0)
    """The largest fraction of recordings that may fail before the build is refused."""
    retry_failed: bool = False
    """Try again the recordings an earlier build of this cache could not read."""

    @model_validator(mode="after")
    def _local_root(self) -> CacheConfig:
        if "://" in self.root:
            raise ValueError(
                f"cache.root must be a local directory (arrays are memory-mapped), got "
                f"{self.root!r}; put the remote location in cache.remote and run `ictal stage`"
            )
        return self


class RunsConfig(Section):
    """Where run directories are written."""

    root: PathField[str] = "runs"
    """Directory of run directories (one per train, evaluate, detect...)."""


class SinkConfig(Section):
    """Where long commands push their run directory while they run (any fsspec URL: s3://,
    gs://, a path); None keeps runs local. Credentials come from the environment."""

    url: PathField[str | None] = None
    """Where run directories are pushed (fsspec URL or path); null keeps runs local."""
    every_s: MachineField[float] = Field(60.0, gt=0.0, le=86400.0)
    """Seconds between pushes while a command runs."""
