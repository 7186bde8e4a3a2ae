"""Processes: engines that run one task function over many items (local processes, serial; a
cluster engine fills the same interface), and the supervisor that starts and stops children."""
