"""Input and output: atomic writes, locks, path containment, redaction, storage URLs, digests."""
