"""Input/output helpers: atomic writes, durable logs, fsspec."""
