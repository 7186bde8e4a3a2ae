"""Evaluation: inference over whole recordings, post-processing, scorers, exports, report."""
