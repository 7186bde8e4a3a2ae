"""The real FFTs of ``scipy.fft`` (its compiled pocketfft), without importing ``scipy.fft``.

Importing the ``scipy.fft`` package costs about 0.2 s of CPU per process (array-API shims
that load ``numpy.f2py`` and ``numpy.random``, and ``scipy.special``), paid by every build
worker and by each ``ictal`` command that preprocesses. The transforms themselves are one
compiled module; it is loaded here by its own name and file, and called exactly as
``scipy.fft.rfft``, ``irfft`` and ``next_fast_len`` call it (same arguments, so the same
bytes: tests compare them). A later ``import scipy.fft`` still works (Python re-imports a
loaded extension by copying it). Where scipy's layout differs, ``scipy.fft`` is used.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

NAME = "scipy.fft._pocketfft.pypocketfft"  # its own name: scipy's later import reuses it
_FORWARD_NORM, _BACKWARD_NORM = 0, 2  # pocketfft's codes for scipy's default norm=None


def _load() -> ModuleType | None:
    """scipy's compiled pocketfft module, loaded from its file, or None when not found."""
    try:
        spec = importlib.util.find_spec("scipy")
        if spec is None or not spec.submodule_search_locations:
            return None
        where = os.path.join(spec.submodule_search_locations[0], "fft", "_pocketfft")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(where, "pypocketfft" + suffix)
            if os.path.exists(path):
                loader = importlib.machinery.ExtensionFileLoader(NAME, path)
                found = importlib.util.spec_from_file_location(NAME, path, loader=loader)
                if found is None:
                    return None
                module = importlib.util.module_from_spec(found)
                loader.exec_module(module)
                needed = ("r2c", "c2r", "good_size")
                return module if all(hasattr(module, f) for f in needed) else None
    except (ImportError, OSError):
        return None
    return None


_PFFT = _load()


def _scipy_fft() -> Any:
    import scipy.fft

    return scipy.fft


def rfft_rows(x: np.ndarray) -> np.ndarray:
    """``scipy.fft.rfft(x, axis=1)`` of aligned, native float32 or float64 rows."""
    if _PFFT is None:
        return _scipy_fft().rfft(x, axis=1)
    return _PFFT.r2c(x, (1,), True, _FORWARD_NORM, None, 1)


def irfft_rows(spectrum: np.ndarray, n: int) -> np.ndarray:
    """``scipy.fft.irfft(spectrum, n=n, axis=1)`` of rows holding ``n // 2 + 1`` bins."""
    if spectrum.shape[1] != n // 2 + 1:
        raise ValueError(f"{spectrum.shape[1]} bins per row, expected {n // 2 + 1} for n={n}")
    if _PFFT is None:
        return _scipy_fft().irfft(spectrum, n=n, axis=1)
    return _PFFT.c2r(spectrum, (1,), n, False, _BACKWARD_NORM, None, 1)


@lru_cache(maxsize=256)
def next_fast_len(target: int) -> int:
    """``scipy.fft.next_fast_len(target, real=True)``: the next length pocketfft is fast at."""
    if _PFFT is None:
        return int(_scipy_fft().next_fast_len(target, real=True))
    return int(_PFFT.good_size(target, True))
