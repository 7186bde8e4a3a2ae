"""Cells of the CSV and TSV files Ictal writes from untrusted text (recording names, paths,
channel labels): a spreadsheet that opens the file shows the text, never runs it as a
formula (CSV injection)."""

from __future__ import annotations

# What a spreadsheet reads as the start of a formula or a command (fullwidth forms included).
_ACTIVE = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def text_cell(value: str, *, tsv: bool = False) -> str:
    """``value`` as a text cell: a leading apostrophe when it starts (after any spaces) like a
    formula; for a TSV file, tabs and line breaks inside it become spaces (a CSV writer
    quotes them instead)."""
    if tsv:
        value = value.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return "'" + value if value.lstrip(" ").startswith(_ACTIVE) else value
