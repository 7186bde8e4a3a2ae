"""Text from files (names, labels, paths, third-party errors) reaches the terminal as text:
an ESC sequence, a carriage return or a bidirectional override in it is shown as its escape,
never acted on, in error lines, log lines and rich tables alike."""

from __future__ import annotations

import logging

from rich.table import Table

from conftest import run_ictal
from ictal.io.redact import printable
from ictal.ui import make_console, plain_formatter, styled

HOSTILE = "name\x1b]0;owned\x07\x1b[2J\rfake line\u202etxt.exe"


def _inert(text: str) -> None:
    assert not any(ch in text for ch in "\x1b\x07\r\u202e"), repr(text)


def test_printable_escapes_what_a_terminal_acts_on_and_keeps_the_rest():
    assert printable(HOSTILE) == "name\\x1b]0;owned\\x07\\x1b[2J\\rfake line\\u202etxt.exe"
    assert printable("two\nlines\tand tabs, ünïcödé, 日本") == "two\nlines\tand tabs, ünïcödé, 日本"


def test_an_error_line_naming_a_hostile_path_is_inert(tmp_path):
    res = run_ictal("build", "-c", str(tmp_path / f"{HOSTILE}.yaml"))
    assert res.returncode == 2, res.stderr
    _inert(res.stderr)
    assert "\\x1b]0;owned" in res.stderr


def test_log_lines_and_tables_are_inert():
    record = logging.LogRecord("ictal", logging.WARNING, __file__, 1, HOSTILE, None, None)
    _inert(plain_formatter().format(record))
    console = make_console()
    table = Table(title=HOSTILE)
    table.add_column(HOSTILE)
    table.add_row(HOSTILE)
    with console.capture() as cap:
        console.print(table)
        console.print(HOSTILE)
        console.print(styled(HOSTILE, "bold"))
    _inert(cap.get())
    assert cap.get().count("\\x1b]0;owned") == 5
