"""Regenerate the key reference at the end of docs/configuration.md from the config models
(run after adding or changing a config field; tests/test_config_cmd.py checks it is current)."""

from __future__ import annotations

from pathlib import Path

from ictal.config.reference import splice

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

if __name__ == "__main__":
    DOC.write_text(splice(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {DOC}")
