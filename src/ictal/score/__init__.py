"""``ictal score``: NEDC v6.0.0 and SzCORE scores of any system's annotation files."""
