"""``metalearn train``: meta-train a preset into a run folder, then meta-test it.

The command checks its arguments and the run folder, then calls
:func:`metalearn.workflows.train_and_test` and prints where everything went.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from metalearn.cli.common import add_config_arguments, new_run_dir, print_result, resolve_config
from metalearn.cli.resume import RESUME_CHANGEABLE, check_allow_change, resume_config
from metalearn.config import RunConfig
from metalearn.errors import ConfigError, TrainingDivergedError
from metalearn.training import CHECKPOINT_FILE, load_checkpoint
from metalearn.training.distributed import DataParallel, elastic_restarts, launched_by_torchrun
from metalearn.utils.io import check_unlocked
from metalearn.workflows import build_run, refuse_finished, train_and_test

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn train``."""
    parser = subparsers.add_parser("train", help="meta-train a preset into a run folder")
    add_config_arguments(parser)
    parser.add_argument("--runs", default="runs", help="folder holding run folders (default: runs)")
    parser.add_argument("--run-dir", default=None, help="exact run folder (default: a new one)")
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue a killed run; it may change "
        + ", ".join(RESUME_CHANGEABLE)
        + " (train.steps: not with train.lr_anneal); any other change is refused",
    )
    parser.add_argument(
        "--allow-change",
        action="append",
        default=None,
        metavar="FIELD",
        help="with --resume: also let FIELD change (repeatable), e.g. --allow-change "
        "train.outer_lr --train.outer_lr=1e-4 to continue a diverged run",
    )
    parser.add_argument("--no-test", action="store_true", help="skip the meta-test at the end")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train (or resume), meta-test on the test episodes, and print where everything went.

    Everything is checked before anything is written: the configuration, the device, the
    episodes of every subset, the run folder (lock, existing checkpoint, resume changes).
    Under ``torchrun`` every worker runs this; the meta-batches are split over them
    (:class:`~metalearn.training.distributed.DataParallel`) and rank 0 alone writes and prints.
    With ``torchrun --max-restarts``, a ``--run-dir`` that holds a checkpoint is continued, so
    that restarted workers resume the run.
    """
    allow = check_allow_change(args.allow_change)
    config, run_dir, resume = _accepted_config(args, allow)
    parallel = DataParallel.from_env(config.device) if launched_by_torchrun() else None
    main = parallel is None or parallel.is_main
    if not main:
        logging.getLogger().setLevel(logging.WARNING)  # the other ranks are quiet
    try:
        if parallel is not None:  # before anything is written
            parallel.check_meta_batch_size(config.train.meta_batch_size)
        built = build_run(config, test=not args.no_test, parallel=parallel)
        if run_dir is None:  # rank 0 names the new run folder
            run_dir = new_run_dir(config, args.runs) if main else None
            run_dir = run_dir if parallel is None else parallel.broadcast_object(run_dir)
        assert run_dir is not None
        try:
            train_and_test(
                config,
                run_dir,
                resume=resume,
                test=not args.no_test,
                built=built,
                allow_change=allow,
                parallel=parallel,
                report=print_result,
            )
        except TrainingDivergedError as e:
            raise TrainingDivergedError(_divergence_advice(e, run_dir, config)) from e
    finally:
        if parallel is not None:
            parallel.close()
    if main:
        print(f"run folder: {run_dir}")
    return 0


def _accepted_config(
    args: argparse.Namespace, allow: tuple[str, ...]
) -> tuple[RunConfig, Path | None, bool]:
    """The config, the run folder (``None``: a new one) and whether to resume, once accepted."""
    if args.resume:
        run_dir = Path(args.resume)
        _check_unlocked(run_dir)
        return resume_config(run_dir, args.overrides, allow), run_dir, True
    if allow:
        raise ConfigError("--allow-change applies to --resume only")
    config = resolve_config(args.preset, args.overrides)
    if args.run_dir is None:
        if elastic_restarts():
            raise ConfigError(
                "torchrun --max-restarts needs --run-dir DIR, so that restarted workers resume "
                "the same run folder"
            )
        return config, None, False
    run_dir = Path(args.run_dir)
    _check_unlocked(run_dir)
    if elastic_restarts() and (run_dir / CHECKPOINT_FILE).is_file():
        return config, run_dir, True  # restarted workers continue the run folder's checkpoint
    refuse_finished(run_dir)
    return config, run_dir, False


def _check_unlocked(run_dir: Path) -> None:
    # under torchrun only rank 0 checks: the other ranks would find rank 0's own lock
    if os.environ.get("RANK", "0") == "0":
        check_unlocked(run_dir)


def _divergence_advice(error: TrainingDivergedError, run_dir: Path, config: RunConfig) -> str:
    """The divergence with the command that continues from the last good checkpoint."""
    checkpoint = run_dir / CHECKPOINT_FILE
    lower = f"{config.train.outer_lr / 10:g}"
    if not checkpoint.is_file():
        return (
            f"{error.reason}; no checkpoint was written: start again with a lower learning "
            f"rate, e.g. --train.outer_lr={lower} (or set --train.grad_clip)"
        )
    step = load_checkpoint(checkpoint)["step"]
    return (
        f"{error.reason}; nothing was written after step {step} ({checkpoint}): continue with a "
        f"lower learning rate: metalearn train --resume {run_dir} --allow-change train.outer_lr "
        f"--train.outer_lr={lower}"
    )
