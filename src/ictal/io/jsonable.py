"""Values made strict JSON: nan and inf become null, so every file the project writes parses
anywhere (``allow_nan=False``), and the containers and scalars of numpy and pathlib become
their plain JSON counterparts."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any


def jsonable(obj: Any) -> Any:
    """``obj`` with every non-finite float as None, recursively: dicts (keys as strings),
    lists and tuples (as lists), numpy scalars (as Python numbers) and paths (as strings)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    numpy = sys.modules.get("numpy")  # no numpy scalar exists before numpy is imported
    if numpy is not None and isinstance(obj, numpy.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
