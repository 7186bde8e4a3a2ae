"""Commands around the pipeline: synth (a corpus to try things on), census, doctor."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ictal.cli import render
from ictal.cli.app import ConfigOpt, SetOpt, load
from ictal.cli.exits import command
from ictal.corpus.synth.options import DIFFICULTIES, FORMATS, LINE_FREQS
from ictal.errors import PreflightError
from ictal.ui import log, make_console, progress

# The choices of `ictal synth`, from the generator's own lists (a light module: the generator
# itself is imported only when synth runs).
Difficulty = StrEnum("Difficulty", list(DIFFICULTIES))
CorpusFormat = StrEnum("CorpusFormat", list(FORMATS))
LineFreq = StrEnum("LineFreq", [(f"hz{f}", str(f)) for f in LINE_FREQS])


@command()
def synth(
    out: Annotated[Path, typer.Argument(help="Directory to write the corpus into.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 12,
    hours: Annotated[float, typer.Option(min=0.01, help="Total recording hours.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    quirks: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of files with a real-world defect.")
    ] = 0.0,
    difficulty: Annotated[
        Difficulty,
        typer.Option(
            help="easy: one clear seizure template; realistic: seizures drawn from TUSZ-like "
            "distributions among artifacts and look-alikes; hard: fainter, more focal, more "
            "look-alikes (docs/corpora.md)."
        ),
    ] = Difficulty.easy,  # type: ignore[attr-defined]
    format_: Annotated[
        CorpusFormat,
        typer.Option(
            "--format",
            help="tusz: the exact TUSZ layout and formats; bids: the same recordings as a "
            "BIDS-EEG dataset in the SzCORE convention (docs/corpora.md).",
        ),
    ] = CorpusFormat.tusz,  # type: ignore[attr-defined]
    line_freq: Annotated[
        LineFreq,
        typer.Option(
            "--line-freq",
            help="Mains frequency (Hz) of the interference in the signals (and the BIDS "
            "sidecars' PowerLineFrequency).",
        ),
    ] = LineFreq.hz60,  # type: ignore[attr-defined]
    force: Annotated[
        bool, typer.Option("--force", help="Write into a directory that is not empty.")
    ] = False,
) -> object:
    """Write a synthetic corpus in the exact TUSZ layout and formats, or as BIDS-EEG (its
    options are all here: synth takes no config)."""
    from ictal.corpus.synth import check_target, synthesize

    check_target(out, format=format_.value, quirks=quirks, force=force)
    with progress(
        f"synth ({difficulty.value}, {format_.value})", total=None, unit="recordings"
    ) as tick:

        def advance(done: int, total: int) -> None:
            tick.set_total(total)
            tick.advance(done - tick.done)

        truth = synthesize(
            out, patients=patients, hours=hours, seed=seed, quirks=quirks,
            difficulty=difficulty.value, format=format_.value, line_freq=int(line_freq.value),
            progress=advance,
        )  # fmt: skip
    log.info(f"wrote {len(truth.get('files', []))} recordings for {patients} patients to {out}")
    return None


@command()
def census(
    corpus: Annotated[
        str | None, typer.Argument(help="Corpus root (path or fsspec URL); default corpus.root.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Inventory and checks of a corpus (TUSZ or BIDS; each corpus of a mixture) from
    headers and annotations only."""
    cfg = load(config, set_)
    from ictal.corpus.census import census_document, print_census, run_census
    from ictal.corpus.sources import sources
    from ictal.io.atomic import atomic_write_json
    from ictal.io.paths import writable_dir

    found = sources(cfg.corpus, corpus)
    if json_out is not None:
        writable_dir(json_out.parent, "--json")
    results = []
    console = make_console()
    for source in found:
        with progress(f"census {source.name}".strip(), total=None, unit="files") as tick:

            def advance(done: int, total: int) -> None:
                tick.set_total(total)
                tick.advance(done - tick.done)

            result = run_census(
                source.root, window_s=cfg.windows.length_s, label_source=cfg.labels.source,
                progress=advance, source=source, split_rule=cfg.corpus.split,
                montage=cfg.signal.montage,
            )  # fmt: skip
        results.append(result)
        print_census(result, console)
    if json_out is not None:
        atomic_write_json(json_out, census_document(results))
    return results


@command()
def doctor(
    for_: Annotated[
        str,
        typer.Option(
            "--for", help="The command to check for: build, stage, train, evaluate or detect."
        ),
    ] = "train",
    env_only: Annotated[
        bool, typer.Option("--env-only", help="Only the environment and device (image builds).")
    ] = False,
    lock: Annotated[
        Path | None,
        typer.Option(
            "--lock",
            help="Lock file to compare with (default: the project's requirements/runtime.lock).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Check this machine for a command: the environment against the lock, the device, disk,
    corpus, cache and storage; exit 3 only for what would make the command fail."""
    from ictal.doctor import check_command, failed

    check_command(for_)
    cfg = load(config, set_)
    from ictal.doctor.diagnosis import diagnose, table

    checks = diagnose(cfg, for_, env_only=env_only, lock=lock)
    console = render.show(table(checks, for_, env_only))
    for c in checks:
        if c.fix and c.status in ("fail", "warn"):
            console.print(f"{c.status} {c.name}: fix: {c.fix}")
    bad = failed(checks)
    if bad:
        raise PreflightError(
            f"not ready: {len(bad)} check(s) failed ({', '.join(c.name for c in bad)})"
        )
    return None


@command()
def models(
    names: Annotated[
        list[str] | None, typer.Argument(help="Only these models (default: every one).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON array of objects instead of a table.")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> object:
    """Every model this installation can train (registered, entry points, braindecode's when
    installed), each built at the config's channels, rate and window: parameters, output
    stride, receptive field, source. Exit 0; a model that cannot be built is its row."""
    import json

    from ictal.train.catalog import catalog

    infos = catalog(load(config, set_), names)
    if json_out:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return None
    render.show(render.model_catalog(infos))
    return None
