"""What a run knows about one of its checkpoints: the config it was trained with and the
operating points its dev evaluation tuned (``<run>/eval-<ckpt>-dev/operating_points.json``),
hence the post-processing a deployed checkpoint uses (detect and export alike)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ictal.config import Config
from ictal.events.operating_points import frozen_postprocess
from ictal.events.postprocess import PostProcess, postprocess_of
from ictal.runs.directory import eval_dir_for, run_of_checkpoint
from ictal.ui import log


def frozen_config(checkpoint: Path, given: Path | None = None) -> Path | None:
    """The config to use with ``checkpoint``: ``given`` (``-c``) if any, else the frozen config
    of the run holding it, else None."""
    if given is not None:
        return given
    owner = run_of_checkpoint(checkpoint)
    return owner.config if owner is not None else None


def tuned_operating_points(checkpoint: Path, runs_root: str | Path) -> Path | None:
    """The operating points file the run's dev evaluation tuned for ``checkpoint``, or None
    when the checkpoint is in no run or that evaluation has not run."""
    if run_of_checkpoint(checkpoint) is None:
        return None
    path = eval_dir_for(checkpoint, "dev", runs_root).operating_points
    return path if path.is_file() else None


@dataclass(frozen=True)
class Deployed:
    """The post-processing a checkpoint is deployed with and where it came from."""

    postprocess: PostProcess
    source: str
    tuned: bool  # from the run's dev-tuned operating points, not the config's threshold


def deployed_postprocess(cfg: Config, checkpoint: Path, instead: str) -> Deployed:
    """The run's dev-tuned operating point for ``checkpoint`` at its export threshold; else the
    config's evaluate settings, with one warning that ends with ``instead`` (what the caller
    does without tuned points)."""
    tuned = tuned_operating_points(checkpoint, cfg.runs.root)
    if tuned is None:
        log.warning(
            "no dev-tuned operating points for this checkpoint (run `ictal evaluate CKPT --split "
            f"dev`): {instead}"
        )
        threshold = cfg.evaluate.threshold
        return Deployed(postprocess_of(cfg.evaluate), f"evaluate.threshold={threshold}", False)
    pp, source = frozen_postprocess(tuned)
    return Deployed(pp, source, True)
