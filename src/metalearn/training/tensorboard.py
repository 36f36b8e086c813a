"""TensorBoard logging beside ``metrics.jsonl`` (the optional ``tensorboard`` extra).

With ``TrainConfig(tensorboard=True)`` (``--train.tensorboard=true``) every metric row written
to ``metrics.jsonl`` is also written as TensorBoard scalars under ``<run_dir>/tensorboard``,
tagged ``<split>/<metric>`` (``train/loss``, ``val/accuracy``) at the row's outer step, through
``torch.utils.tensorboard``. Watch it with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metalearn.errors import ConfigError

__all__ = ["TENSORBOARD_DIR", "TensorBoardLogger"]

TENSORBOARD_DIR = "tensorboard"
"""The folder of the event files inside a run folder."""

_NOT_METRICS = ("step", "split")


class TensorBoardLogger:
    """Writes metric rows as TensorBoard scalars; a ``MetricsLogger`` mirror.

    Args:
        run_dir: the run folder; event files go to ``run_dir / "tensorboard"``.

    Raises:
        ConfigError: if there is no run folder or the ``tensorboard`` package is missing
            (checked here, before anything is written).
    """

    def __init__(self, run_dir: str | Path | None) -> None:
        if run_dir is None:
            raise ConfigError("tensorboard=True needs a run_dir to write the event files into")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tensorboard=True needs the tensorboard package: "
                "pip install 'metalearn[tensorboard]'"
            ) from None
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self._make_writer = SummaryWriter
        self._writer: Any = None  # created at the first row, so that an error writes nothing

    def __call__(self, row: Mapping[str, Any]) -> None:
        """Write the numeric values of one ``metrics.jsonl`` row at its step, then flush."""
        if self._writer is None:
            self._writer = self._make_writer(log_dir=str(self.log_dir))
        split = row.get("split", "train")
        for key, value in row.items():
            if key in _NOT_METRICS or isinstance(value, bool):
                continue
            if isinstance(value, int | float) and math.isfinite(value):
                self._writer.add_scalar(f"{split}/{key}", value, global_step=row["step"])
        self._writer.flush()  # rows come every log_every steps: a live view, and nothing lost

    def close(self) -> None:
        """Close the event file (a later row opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
