"""Checkpoint files: atomic save, validated load, and RNG state that survives ``weights_only``.

A checkpoint is a plain dict written with :func:`metalearn.utils.io.atomic_save`, so a kill
mid-write leaves the previous file intact. Its keys:

- ``format_version`` (int), ``step`` (outer steps completed), ``elapsed_s`` (training seconds);
- ``objective_class`` (the objective's qualified class name) and ``learner`` (its state_dict);
- ``optimizer`` and ``scheduler`` (state dicts, ``None`` when the objective updates itself);
- ``tasks`` (the task source's state_dict) and ``rng`` (global generators, see
  :func:`capture_rng_state`);
- ``best`` (``{"metric", "value", "step"}`` of the best validation so far, or ``None``);
- ``train_config`` (the :class:`~metalearn.training.settings.TrainConfig` as a dict) and
  ``extra_state`` (whatever the caller passed, e.g. the resolved run config).

It is read back with ``torch.load(weights_only=True)``, so loading a checkpoint never runs
pickled code: everything in it must be tensors, numbers, strings, ``None`` and containers of
those. Must not import ``metalearn.data`` or ``metalearn.rl``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metalearn.errors import CheckpointError
from metalearn.training.finite import check_finite_state_dict
from metalearn.utils.io import atomic_save
from metalearn.utils.seeding import get_rng_state, set_rng_state

__all__ = [
    "BEST_FILE",
    "CHECKPOINT_FILE",
    "METRICS_FILE",
    "FORMAT_VERSION",
    "capture_rng_state",
    "check_plain_data",
    "first_line",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FILE = "checkpoint.pt"
"""The latest checkpoint of a run, in its run folder."""
BEST_FILE = "best.pt"
"""The checkpoint with the best validation metric so far."""
METRICS_FILE = "metrics.jsonl"
"""One JSON object per log step."""
FORMAT_VERSION = 1
"""Bumped when the checkpoint layout changes incompatibly."""

_REQUIRED = ("format_version", "step", "learner", "rng", "tasks", "train_config")
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def first_line(error: BaseException, limit: int = 120) -> str:
    """The first line of an exception's message, shortened: torch's messages run to pages."""
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def capture_rng_state() -> dict[str, Any]:
    """Return the global RNG state in a form ``torch.load(weights_only=True)`` accepts.

    NumPy's legacy state holds an ``ndarray``, which the safe unpickler refuses; it is stored
    as an int64 tensor instead.
    """
    state = get_rng_state()
    kind, keys, pos, has_gauss, cached = state["numpy"]
    state["numpy"] = (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore a state returned by :func:`capture_rng_state`."""
    kind, keys, pos, has_gauss, cached = state["numpy"]
    decoded = dict(state)
    decoded["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    set_rng_state(decoded)


def check_plain_data(value: Any, name: str) -> None:
    """Raise ``CheckpointError`` unless ``value`` is plain data a safe ``torch.load`` reads back.

    Args:
        value: tensors, numbers, strings, ``None``, and lists/tuples/dicts of those.
        name: how the message refers to ``value`` (e.g. ``"extra_state"``).
    """
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_plain_data(item, f"{name}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise CheckpointError(f"{name} has a key {key!r}; keys must be str or int")
            check_plain_data(item, f"{name}[{key!r}]")
        return
    raise CheckpointError(
        f"{name} is a {type(value).__name__} ({value!r:.80}); a checkpoint holds only tensors, "
        "numbers, strings, None and lists/tuples/dicts of those: convert it (e.g. "
        "dataclasses.asdict, str(path)) before passing it"
    )


def save_checkpoint(payload: Mapping[str, Any], path: str | Path) -> None:
    """Write ``payload`` to ``path`` atomically (a temporary file, then ``os.replace``).

    Raises:
        TrainingDivergedError: if a weight in ``payload["learner"]`` is NaN or infinite; the
            file on disk (the last good checkpoint) is left as it is.
    """
    learner = payload.get("learner")
    if isinstance(learner, Mapping):
        check_finite_state_dict(learner, str(path))
    atomic_save(dict(payload), path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`, onto the CPU.

    Raises:
        CheckpointError: if the file is missing, unreadable or truncated, not a metalearn
            checkpoint, or from a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: point to the run folder's {CHECKPOINT_FILE} (or "
            f"{BEST_FILE}), or start a new run without resume"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from e
    except Exception as e:  # torch.load raises almost anything on bytes it did not write
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt or not a metalearn checkpoint "
            f"({type(e).__name__}: {first_line(e)}); use an earlier checkpoint or start a new run"
        ) from e
    missing = [k for k in _REQUIRED if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise CheckpointError(f"{path} is not a metalearn training checkpoint: it lacks {missing}")
    if not isinstance(payload["format_version"], int) or payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {payload['format_version']}, newer than this "
            f"metalearn reads ({FORMAT_VERSION}): upgrade metalearn"
        )
    return payload
