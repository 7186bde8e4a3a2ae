"""Corpora: discovery in the TUSZ layout, EDF reading, annotations, census, synthetic corpora."""
