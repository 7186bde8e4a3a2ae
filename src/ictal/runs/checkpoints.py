"""What a run knows about one of its checkpoints: the config it was trained with and the
operating points its dev evaluation tuned (``<run>/eval-<ckpt>-dev/operating_points.json``),
hence the post-processing a deployed checkpoint uses (detect and export alike).

A frozen config says how the run was made, not where this command's results go: the fields
of ``GIVEN_NOW`` (where results are pushed) are always what the user gives now
(``given_now``), so a run pulled to another machine and evaluated or resumed there never
pushes silently into the sink it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ictal.config import ROLES, Config, flatten, set_dotted
from ictal.config_file import load_config, parse_override
from ictal.errors import PreflightError, UnsafePathError, UsageError
from ictal.events.deployed import Point, bare_threshold, tuned_point
from ictal.events.operating_points import at_threshold
from ictal.events.postprocess import PostProcess, postprocess_of
from ictal.io.paths import plain_file
from ictal.runs.directory import eval_dir_for, run_of_checkpoint
from ictal.ui import log


def frozen_config(checkpoint: Path, given: Path | None = None) -> Path | None:
    """The config to use with ``checkpoint``: ``given`` (``-c``) if any, else the frozen config
    of the run holding it, else None."""
    if given is not None:
        return given
    owner = run_of_checkpoint(checkpoint)
    if owner is None:
        return None
    if not plain_file(owner.config):
        raise UnsafePathError(
            f"{owner.config} is a symbolic link; ictal never reads a run's files through a link",
            "replace it with the run's own config.yaml, or give the config with -c",
        )
    return owner.config


# Fields only the user's config of now decides, set or not (None: results are not pushed).
GIVEN_NOW = ("sink.url",)


def given_now(cfg: Config, today: Config) -> Config:
    """``cfg`` (a run's frozen config made this command's) with every ``GIVEN_NOW`` field
    taken from ``today`` (the defaults, ``-c`` and ``--set`` of this command line), even
    when ``today`` leaves it unset: resume, evaluate and export share this one rule."""
    tree = cfg.model_dump(mode="json")
    now = today.model_dump(mode="json")
    for key in GIVEN_NOW:
        *sections, name = key.split(".")
        into, source = tree, now
        for section in sections:
            into, source = into[section], source[section]
        into[name] = source[name]
    return Config.model_validate(tree)


def checkpoint_config(
    checkpoint: Path, given: Path | None, overrides: list[str], embedded: object = None
) -> Config:
    """The config of a command on ``checkpoint`` (evaluate, export): ``-c`` if given, else
    the frozen config of its run, else the checkpoint's ``embedded`` config when one is passed
    (else the defaults), then ``overrides``; a frozen config pushes only where ``overrides``
    say now (``given_now``)."""
    path = frozen_config(checkpoint, given)
    if given is None and path is None and isinstance(embedded, dict):
        return _embedded_config(embedded, checkpoint, overrides)
    cfg = load_config(path, overrides)
    if given is None and path is not None:
        cfg = given_now(cfg, load_config(None, overrides))
    return cfg


def _embedded_config(embedded: dict, checkpoint: Path, overrides: list[str]) -> Config:
    """A checkpoint's own config for its experiment (preprocessing, model, windows), with
    every field that names a place or the machine (``ROLES.resume_fields``: roots, URLs,
    threads) from today's defaults and ``overrides``: a file names no directory to read."""
    today = load_config(None, overrides)
    try:
        own = Config.model_validate(embedded)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise PreflightError(
            f"checkpoint {checkpoint}: its embedded config is not valid ({where}: {first['msg']})",
            "pass -c with the config the model was trained with",
        ) from None
    tree = own.model_dump(mode="json")
    now = flatten(today.model_dump(mode="json"))
    for key in sorted(ROLES.resume_fields() | set(GIVEN_NOW)):
        if key in now:
            set_dotted(tree, key, now[key])
    for text in overrides:
        set_dotted(tree, *parse_override(text))
    return Config.model_validate(tree)


def tuned_operating_points(checkpoint: Path, runs_root: str | Path) -> Path | None:
    """The operating points file the run's dev evaluation tuned for ``checkpoint``, or None
    when the checkpoint is in no run or that evaluation has not run."""
    if run_of_checkpoint(checkpoint) is None:
        return None
    path = eval_dir_for(checkpoint, "dev", runs_root).operating_points
    return path if path.is_file() else None


@dataclass(frozen=True)
class Deployed:
    """The post-processing a checkpoint is deployed with, where it came from, and the point."""

    postprocess: PostProcess
    source: str
    tuned: bool  # from the run's dev-tuned operating points, not a threshold
    point: Point


def deployed_postprocess(
    cfg: Config,
    checkpoint: Path,
    instead: str,
    *,
    point: str | None = None,
    threshold: float | None = None,
    points_file: Path | None = None,
) -> Deployed:
    """``--threshold`` (with the config's post-processing); else ``point`` (exactly) or the
    configured default (with its fallback, ``events.deployed.default_point``) among the
    operating points of ``points_file``, else those the run's dev evaluation tuned; else the
    config's evaluate settings, with a warning ending with ``instead`` (what the caller does)."""
    if threshold is not None:
        pp = at_threshold(postprocess_of(cfg.evaluate), threshold)
        return Deployed(pp, f"--threshold {threshold:g}", False, bare_threshold(threshold))
    path = points_file or tuned_operating_points(checkpoint, cfg.runs.root)
    if path is None:
        if point is not None:
            raise UsageError(
                f"--operating-point {point}: {checkpoint} has no dev-tuned operating points; "
                "run `ictal evaluate CKPT --split dev`, or pass --operating-points FILE or "
                "--threshold T"
            )
        log.warning("no dev-tuned operating points for this checkpoint (run `ictal evaluate "
                    f"CKPT --split dev`): {instead}")  # fmt: skip
        return _untuned(cfg)
    tuned = tuned_point(path, point, cfg.detect.operating_point)
    if tuned is None:
        log.warning(f"no tuned threshold to use in {path}: {instead}")
        return _untuned(cfg)
    pp, source, chosen = tuned
    return Deployed(pp, source, True, chosen)


def _untuned(cfg: Config) -> Deployed:
    """The config's evaluate settings: a threshold nobody tuned."""
    t = cfg.evaluate.threshold
    return Deployed(postprocess_of(cfg.evaluate), f"evaluate.threshold={t}", False, Point(t))
