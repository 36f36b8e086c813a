"""Drawn symbols for the `metalearn serve` tests: the load benchmark's, so both draw alike."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).parents[2] / "benchmarks" / "serve_load.py"
_spec = importlib.util.spec_from_file_location("serve_load", _PATH)
assert _spec is not None
assert _spec.loader is not None
_serve_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_serve_load)


def draw_symbol(shape: str, shift: int = 0) -> bytes:
    """Return a PNG of a black symbol on white (as Omniglot draws), ``shift`` pixels off centre."""
    return bytes(_serve_load.drawing(shape, shift))
