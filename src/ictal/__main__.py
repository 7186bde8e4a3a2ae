"""``python -m ictal`` (and ``torchrun -m ictal train ...``): the command line."""

from ictal.cli import main

main()
