"""The run folder of :func:`~metalearn.training.loop.meta_train` around its loop.

While the loop runs, the folder is locked (``.lock``), and the temporaries that killed writes
left behind are gone. The loop starts either afresh (seeded; ``config.json`` written) or from
the folder's ``checkpoint.pt``, bit-exactly. Must not import ``metalearn.data`` or
``metalearn.rl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from metalearn.errors import CheckpointError, ConfigError
from metalearn.training.checkpoint import (
    BEST_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    load_checkpoint,
)
from metalearn.training.logger import MetricsLogger
from metalearn.training.state import TrainState
from metalearn.utils.io import atomic_write_text, remove_stale_temp_files, run_lock
from metalearn.utils.seeding import seed_everything

__all__ = [
    "CONFIG_FILE",
    "RUN_FILES",
    "locked_run_folder",
    "start_or_resume",
    "write_config_json",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
"""The run's resolved configuration, which ``metalearn evaluate``, ``plot`` and the rest read."""

RUN_FILES = (CHECKPOINT_FILE, BEST_FILE, METRICS_FILE, CONFIG_FILE)
"""Files of a run folder written atomically while training (their stale temporaries go)."""


@contextlib.contextmanager
def locked_run_folder(run_dir: Path | None) -> Iterator[None]:
    """Hold the run folder's lock; remove the temporaries of killed writes once it is held.

    ``None`` (no run folder, or a data-parallel rank other than 0) holds nothing.
    """
    if run_dir is None:
        yield
        return
    with run_lock(run_dir):
        for tmp in remove_stale_temp_files(run_dir, RUN_FILES):
            logger.info("removed %s, left by a killed write", tmp)
        yield


def start_or_resume(
    state: TrainState,
    log: MetricsLogger,
    run_dir: Path | None,
    resume: bool,
    allow_change: Collection[str] = (),
) -> None:
    """Resume ``state`` from ``run_dir/checkpoint.pt``, or start afresh.

    A resume drops the metric rows after the checkpoint's step. A fresh start refuses a
    ``run_dir`` that holds a checkpoint, seeds the global generators with ``TrainConfig.seed``,
    empties the metrics log and writes ``config.json`` when ``extra_state`` holds a config.
    """
    if resume:
        if run_dir is None:
            raise ConfigError("resume=True needs the run_dir of the run to continue")
        path = run_dir / CHECKPOINT_FILE
        state.restore(load_checkpoint(path), path, allow_change)
        log.truncate_after(state.step)
        logger.info("resumed %s at step %d", path, state.step)
        return
    if run_dir is not None and (run_dir / CHECKPOINT_FILE).exists():
        raise CheckpointError(
            f"{run_dir} already holds {CHECKPOINT_FILE}: pass resume=True to continue that run, "
            "or choose a new run_dir"
        )
    seed_everything(state.cfg.seed)
    log.reset()
    writes = state.parallel is None or state.parallel.is_main
    if run_dir is not None and writes and isinstance(state.extra_state.get("config"), dict):
        # the run's config.json, which `metalearn evaluate` and `plot` read: an API run that
        # passes its resolved config (as the CLI does) works with every command
        write_config_json(state.extra_state["config"], run_dir)


def write_config_json(config: Mapping[str, Any], run_dir: Path) -> None:
    """Write a run's configuration (plain data) as ``run_dir/config.json``, atomically."""
    atomic_write_text(json.dumps(config, indent=2) + "\n", run_dir / CONFIG_FILE)
