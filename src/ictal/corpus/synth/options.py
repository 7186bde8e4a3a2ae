"""What ``ictal synth`` may be asked for (difficulties, layouts, mains frequencies) and the
check of its target directory: light, so the command line lists the choices without
importing the generator."""

from __future__ import annotations

from pathlib import Path

from ictal.errors import UsageError

DIFFICULTIES = ("easy", "realistic", "hard")
FORMATS = ("tusz", "bids")
LINE_FREQS = (50, 60)


def check_target(out: Path, *, format: str, quirks: float, force: bool) -> None:
    """Refuse (exit 2) what synth cannot do: TUSZ defects in a BIDS corpus, a file as the
    corpus directory, or a directory with files in it unless ``force``."""
    if format == "bids" and quirks > 0:
        raise UsageError(
            "--quirks writes TUSZ-layout defects (header bytes, .csv_bi rows); --format bids "
            "writes clean recordings only: drop --quirks, or use --format tusz"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; synth writes a corpus directory: choose another OUT")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(
            f"{out} is not empty: synth writes a corpus into an empty directory; choose another "
            "OUT, or pass --force to write over the files of the same names"
        )
