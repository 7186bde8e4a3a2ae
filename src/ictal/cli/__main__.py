"""``python -m ictal.cli``: the command line (as ``python -m ictal``)."""

from ictal.cli.exits import main

main()
