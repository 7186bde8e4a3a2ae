"""The ``ray`` and ``sweep`` sections: where work runs beyond one process."""

from __future__ import annotations

from pydantic import Field

from ictal.config.base import Section


class RayConfig(Section):
    """The Ray executor of build and detect (``--executor ray``; ``pip install 'ictal[ray]'``)."""

    address: str | None = None
    """The cluster: `auto`, `host:port` or `ray://host:port`; null starts a local Ray."""
    cpus_per_task: float = Field(1.0, gt=0.0, le=256.0)
    """CPUs Ray reserves for each task."""
    memory_gb_per_task: float | None = Field(None, gt=0.0)
    """Memory in GB Ray reserves for each task; null: none reserved."""
    max_retries: int = Field(3, ge=0, le=100)
    """Times a task whose worker died is run again."""


class SweepConfig(Section):
    """``ictal sweep``: how runs are admitted on one machine (the budget is given by flags)."""

    ramp_steps: int = Field(20, ge=1)
    """A run is measured once past this many steps ..."""
    poll_s: float = Field(0.5, gt=0.0)
    """... or its first validation; usage is polled every this many seconds."""
    memory_floor_gb: float = Field(1.0, ge=0.0)
    """No run is admitted under this much free memory, in GB."""
    memory_fraction: float = Field(0.8, gt=0.0, le=1.0)
    """Default memory budget: this fraction of the machine's memory."""
    gpu_memory_fraction: float = Field(0.9, gt=0.0, le=1.0)
    """Default GPU memory budget: this fraction of each GPU's memory."""
