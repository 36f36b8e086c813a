"""Run logging: the ``metrics.jsonl`` writer and the tqdm progress bar.

``metrics.jsonl`` holds one JSON object per log step, e.g.
``{"step": 100, "split": "train", "loss": 0.41, "accuracy": 0.87, "lr": 0.001,
"tasks_per_s": 210.5, "elapsed_s": 12.3}``. Progress bars are off when not asked for, when
stderr is not a terminal, or when the ``CI`` environment variable is set. Library code never
prints; this module writes only to the file it is given and to tqdm's stderr bar.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from metalearn.utils.io import atomic_write_text

__all__ = [
    "MetricWindow",
    "MetricsLogger",
    "format_postfix",
    "progress_bar",
    "progress_enabled",
    "read_metrics",
]

logger = logging.getLogger(__name__)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Return the rows of a ``metrics.jsonl`` file, skipping a torn last line (a killed write).

    Args:
        path: the file; a missing file gives no rows.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("skipping unreadable line %d of %s", number, path)
    return rows


class MetricsLogger:
    """Appends metric rows as JSON lines to a file, or only keeps them in memory.

    Args:
        path: the ``metrics.jsonl`` file, or ``None`` to keep rows in :attr:`rows` only.
        mirror: also called with every row (e.g. a
            :class:`~metalearn.training.tensorboard.TensorBoardLogger`); its ``close`` method,
            if any, is called by :meth:`close`.

    Attributes:
        rows: every row written through this logger, in order.
    """

    def __init__(
        self, path: str | Path | None, *, mirror: Callable[[Mapping[str, Any]], None] | None = None
    ) -> None:
        self.path = None if path is None else Path(path)
        self.mirror = mirror
        self.rows: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Empty the file: a fresh run must not inherit rows of an earlier, unfinished one."""
        if self.path is not None:
            atomic_write_text("", self.path)

    def truncate_after(self, step: int) -> None:
        """Drop rows with ``row["step"] > step``: a resumed run writes them again."""
        if self.path is None:
            return
        kept = [row for row in read_metrics(self.path) if row.get("step", 0) <= step]
        atomic_write_text("".join(_to_line(row) for row in kept), self.path)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (a mapping of JSON-serialisable values)."""
        self.rows.append(dict(row))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(_to_line(row))
        if self.mirror is not None:
            self.mirror(row)

    def close(self) -> None:
        """Close the mirror (the JSON lines file is closed after every row)."""
        close = getattr(self.mirror, "close", None)
        if close is not None:
            close()


def _to_line(row: Mapping[str, Any]) -> str:
    return json.dumps(dict(row)) + "\n"


def progress_enabled(requested: bool) -> bool:
    """Whether to draw a progress bar: asked for, stderr is a terminal, and ``CI`` is unset."""
    return requested and sys.stderr.isatty() and not os.environ.get("CI")


def progress_bar(total: int | None, *, initial: int = 0, desc: str, enabled: bool) -> tqdm[Any]:
    """Return a tqdm bar (with ETA when ``total`` is known), drawn only when ``enabled``."""
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True)


def format_postfix(metrics: Mapping[str, float]) -> dict[str, str]:
    """Short strings for a progress bar's postfix: loss, accuracy or MSE (or return)."""
    shown = {}
    for name in ("loss", "accuracy", "mse", "return"):
        if name in metrics and math.isfinite(metrics[name]):
            shown["acc" if name == "accuracy" else name] = f"{metrics[name]:.4g}"
    return shown


class MetricWindow:
    """Running sums of step metrics between two train rows.

    Values stay tensors (on their device) until :meth:`flush`, so a GPU run syncs once per
    row, not once per step.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next step opens a new window."""
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0
        self.t0: float | None = None

    def start(self) -> None:
        """Mark the start of a step (the window's clock starts at its first step)."""
        if self.t0 is None:
            self.t0 = time.perf_counter()

    def add(self, metrics: Mapping[str, Tensor | float]) -> None:
        """Add one step's metrics (scalar tensors or floats)."""
        for name, value in metrics.items():
            tensor = torch.as_tensor(value).detach()
            self.sums[name] = self.sums[name] + tensor if name in self.sums else tensor
            self.counts[name] = self.counts.get(name, 0) + 1
        self.steps += 1

    def flush(self) -> tuple[dict[str, float], float]:
        """Return the mean of each metric and the wall-clock seconds per step, then reset."""
        means = {name: s.item() / self.counts[name] for name, s in self.sums.items()}
        seconds = time.perf_counter() - (self.t0 if self.t0 is not None else time.perf_counter())
        per_step = seconds / max(self.steps, 1)
        self.reset()
        return means, per_step
