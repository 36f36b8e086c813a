"""What ``metalearn train --resume`` may change, and the check that nothing else changed.

A resumed run continues the trajectory its checkpoint holds, so its whole resolved
configuration must equal the one the checkpoint was trained with, except:

- the fields of :data:`RESUME_CHANGEABLE`, which do not shape the trajectory (how long, how
  often to log, validate and checkpoint, where the data and cache are, which device); and
- the fields named with ``--allow-change FIELD``, e.g. ``--allow-change train.outer_lr`` to
  continue a diverged run with a lower learning rate.

The reference is the configuration stored in ``checkpoint.pt`` (so an edited ``config.json`` is
caught too); ``config.json`` is rewritten only once the resume is accepted.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from metalearn.cli.common import resolve_config
from metalearn.cli.overrides import flatten
from metalearn.config import RunConfig, from_dict, read_config
from metalearn.errors import CheckpointError, ConfigError
from metalearn.training import CHECKPOINT_FILE, load_checkpoint

__all__ = ["RESUME_CHANGEABLE", "check_allow_change", "resume_config", "trained_config"]

RESUME_CHANGEABLE = (
    "train.steps",
    "train.eval_every",
    "train.checkpoint_every",
    "train.log_every",
    "train.progress",
    "eval.episodes",
    "eval.batch_size",
    "eval.inner_steps",
    "data.root",
    "data.cache_dir",
    "device",
)
"""Fields a resume may change without ``--allow-change`` (``train.steps`` not with
``train.lr_anneal``, whose schedule depends on it)."""


def check_allow_change(fields: Sequence[str] | None) -> tuple[str, ...]:
    """Return the ``--allow-change`` fields, each a known config key (``train.outer_lr``).

    Raises:
        ConfigError: for an unknown key, with the closest known ones.
    """
    known = [key for key, _ in flatten(RunConfig())]
    keys = tuple(field.removeprefix("--") for field in fields or ())
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(f"--allow-change {key}: unknown config key{hint}")
    return keys


def trained_config(run_dir: Path) -> RunConfig:
    """The configuration ``run_dir/checkpoint.pt`` was trained with (else ``config.json``'s).

    Raises:
        CheckpointError: if the checkpoint is missing or unreadable.
    """
    payload = load_checkpoint(run_dir / CHECKPOINT_FILE)
    stored = payload.get("extra_state", {}).get("config")
    if not isinstance(stored, dict):
        return read_config(run_dir)  # a checkpoint of the Python API holds no run config
    try:
        return from_dict(stored)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{run_dir / CHECKPOINT_FILE} holds an unreadable config: {e}") from e


def resume_config(run_dir: Path, overrides: Sequence[str], allow: Sequence[str]) -> RunConfig:
    """Return ``config.json`` with ``overrides`` applied, if only changeable fields differ.

    Raises:
        ConfigError: listing every field that differs from the checkpoint's configuration and
            is neither in :data:`RESUME_CHANGEABLE` nor in ``allow``.
    """
    config = resolve_config(None, overrides, base=read_config(run_dir))
    trained = trained_config(run_dir)
    changeable = set(RESUME_CHANGEABLE) | set(allow)
    if config.train.lr_anneal and "train.steps" not in allow:
        changeable.discard("train.steps")
    before, after = dict(flatten(trained)), dict(flatten(config))
    differing = [k for k in after if before.get(k) != after[k] and k not in changeable]
    if differing:
        changes = ", ".join(f"{k} ({before.get(k)!r} -> {after[k]!r})" for k in differing)
        raise ConfigError(
            f"cannot resume {run_dir}: {changes} differ from the configuration its checkpoint "
            f"was trained with; resume with the same values, allow a change explicitly with "
            f"--allow-change {differing[0]}, or start a new run"
        )
    return config
