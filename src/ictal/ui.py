"""Terminal and log output: rich progress and tables on a terminal, plain timestamped lines
otherwise (CI, cloud logs, nohup), so every long operation is visible either way."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.highlighter import NullHighlighter
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ictal.io.redact import RedactingFormatter, printable, redact

log = logging.getLogger("ictal")
# Every console prints text as it is: no markup, emoji codes or highlighting (make_console).
PLAIN = {"markup": False, "emoji": False, "highlight": False}


class _Console(Console):
    """A rich console that shows every string it is given as text: characters a terminal
    would act on (ESC sequences, CR, bidirectional overrides) are written as escapes."""

    def render_str(self, text: str, **kwargs: object) -> Text:  # type: ignore[override]
        return super().render_str(printable(text), **kwargs)  # type: ignore[arg-type]


def echo(text: str, *, err: bool = False) -> None:
    """A message as it is printed outside rich: credentials masked, nothing a terminal acts on."""
    print(printable(redact(text)), file=sys.stderr if err else sys.stdout, flush=True)


def pairs_text(values: Mapping[str, Any]) -> str:
    """``{'background': 162, 'loss': 0.59708...}`` as ``background 162, loss 0.5971`` for a log
    line: no braces or quotes, floats to four significant digits."""
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
    )


def is_terminal() -> bool:
    """True when stderr is an interactive terminal (not CI, not a pipe or log file)."""
    return sys.stderr.isatty()


def make_console() -> Console:
    """Console for summaries on stdout; plain and wide (no wrapped paths) when not a terminal.

    Markup, emoji codes and highlighting are off: labels, paths and messages come from user
    files and are printed as they are (a label ``[/bold]`` is text, not a style), and rich's
    highlighter, whose patterns take quadratic time on some text (40 KB of ``<`` took a
    minute), never sees them; styles are given as ``rich.text.Text`` objects instead.
    """
    if sys.stdout.isatty():
        return _Console(**PLAIN)
    return _Console(no_color=True, width=200, soft_wrap=False, force_terminal=False, **PLAIN)


def styled(text: str, style: str) -> Text:
    """Plain text in a style (never parsed as markup)."""
    return Text(printable(text), style=style)


def setup_logging(level: int = logging.INFO) -> None:
    """Rich log lines on a terminal, plain 'time level message' lines otherwise."""
    root = logging.getLogger("ictal")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if is_terminal():
        handler = RichHandler(console=_Console(stderr=True, **PLAIN), show_path=False,
                              markup=False, highlighter=NullHighlighter(), keywords=[])  # fmt: skip
        handler.setFormatter(RedactingFormatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(plain_formatter())
    root.addHandler(handler)
    root.propagate = False


def quiet_ranks() -> None:
    """Ranks other than 0 of a distributed run say only warnings and errors (rank 0 speaks
    for the run)."""
    logging.getLogger("ictal").setLevel(logging.WARNING)


def plain_formatter() -> logging.Formatter:
    """'time level message' lines for logs and files, credentials redacted."""
    return RedactingFormatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")


@dataclass
class Ticker:
    """Advance handle for a progress display; also logs a plain line every `every_s` seconds."""

    description: str
    total: int | None
    every_s: float
    unit: str = "items"  # what is counted, for the rate of the plain line
    _progress: Progress | None = None
    _task: int | None = None
    done: int = 0
    _start: float = field(default_factory=time.monotonic)
    _last_log: float = field(default_factory=time.monotonic)

    def set_total(self, total: int) -> None:
        """Set the total once it is known (a listing finished)."""
        if total == self.total:
            return
        self.total = total
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def advance(self, n: int = 1, note: str = "") -> None:
        """Count n finished items; note is shown in the plain periodic line."""
        self.done += n
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=n)
            return
        now = time.monotonic()
        if now - self._last_log >= self.every_s:
            self._last_log = now
            self._log_line(note)

    def _log_line(self, note: str = "") -> None:
        elapsed = time.monotonic() - self._start
        total = f"/{self.total}" if self.total is not None else ""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        extra = f" {note}" if note else ""
        log.info(
            f"{self.description}: {self.done}{total} {self.unit} done, {elapsed:.0f} s, "
            f"{rate:.2f} {self.unit}/s{extra}"
        )


@contextmanager
def progress(
    description: str, total: int | None, every_s: float = 10.0, unit: str = "items"
) -> Iterator[Ticker]:
    """A progress bar on a terminal; plain periodic log lines (and a final one) otherwise,
    counting ``unit``."""
    ticker = Ticker(description, total, every_s, unit)
    if is_terminal():
        columns = (
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        console = _Console(stderr=True, **PLAIN)
        with Progress(*columns, console=console, transient=False) as prog:
            ticker._progress = prog
            ticker._task = prog.add_task(description, total=total)
            yield ticker
        return
    try:
        yield ticker
    finally:
        ticker._log_line("(finished)")
