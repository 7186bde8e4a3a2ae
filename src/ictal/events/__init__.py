"""Seizure events: from a probability trace (post-processing, operating points), against
references (NEDC and SzCORE scorers), and to files (NEDC ``.csv_bi``, SzCORE TSV). Shared by
evaluate, detect and score, which never import each other."""
