"""Cells of the CSV and TSV files Ictal writes from untrusted text (recording names, paths,
channel labels): a spreadsheet that opens the file shows the text, never runs it as a
formula (CSV injection) nor breaks the row."""

from __future__ import annotations

# What a spreadsheet reads as the start of a formula or a command (fullwidth forms included).
_ACTIVE = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def text_cell(value: str, *, tsv: bool = False) -> str:
    """``value`` as a text cell: line breaks (and, for a TSV file, tabs) inside it become
    spaces, and it gets a leading apostrophe when it starts with a tab or (after any spaces
    and tabs) like a formula."""
    value = value.replace("\r", " ").replace("\n", " ")
    if tsv:
        value = value.replace("\t", " ")
    active = value.startswith("\t") or value.lstrip(" \t").startswith(_ACTIVE)
    return "'" + value if active else value
