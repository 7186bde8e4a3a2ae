"""Detection over archives: a trained detector over EDF files of any layout, on many workers,
with a durable record log from which events, NEDC and SzCORE files and a summary are built."""
