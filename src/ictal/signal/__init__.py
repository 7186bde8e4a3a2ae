"""Preprocessing of one recording: montage, resampling, filters, normalisation."""
