"""``metalearn train``: meta-train a preset into a run folder, then meta-test it."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from metalearn.build import Subset, build_learner, build_tasks, is_rl
from metalearn.cli.common import (
    add_config_arguments,
    load_run,
    new_run_dir,
    resolve_config,
    run_title,
    write_config,
)
from metalearn.cli.resume import RESUME_CHANGEABLE, check_allow_change, resume_config
from metalearn.config import RunConfig, to_dict
from metalearn.errors import (
    CheckpointError,
    ConfigError,
    EpisodeSpecError,
    TrainingDivergedError,
)
from metalearn.training import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    load_checkpoint,
    meta_test,
    meta_train,
    plot_curves,
)
from metalearn.training.distributed import DataParallel, elastic_restarts, launched_by_torchrun
from metalearn.training.evaluation import EvalResult
from metalearn.utils.io import atomic_write_text, check_unlocked, run_lock
from metalearn.utils.seeding import seed_everything

__all__ = [
    "BuiltRun",
    "add_parser",
    "build_run",
    "evaluate_learner",
    "print_result",
    "rl_adaptation",
    "run",
    "train_and_test",
    "write_adaptation",
    "write_result",
]


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
            )
        except TrainingDivergedError as e:
            raise TrainingDivergedError(_divergence_advice(e, run_dir, config)) from e
    finally:
        if parallel is not None:
            parallel.close()
    if main:
        print(f"run folder: {run_dir}")
    return 0


def print_result(label: str, result: EvalResult) -> None:
    """Print ``label: result`` and, for a sweep, the value after each number of steps."""
    print(f"{label}: {result}")
    for n_steps, summary in result.steps_summary().items():
        print(f"  after {n_steps} steps: {summary.mean:.4f} +- {summary.ci95:.4f}")


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
    _refuse_finished(run_dir)
    return config, run_dir, False


def _check_unlocked(run_dir: Path) -> None:
    # under torchrun only rank 0 checks: the other ranks would find rank 0's own lock
    if os.environ.get("RANK", "0") == "0":
        check_unlocked(run_dir)


def _refuse_finished(run_dir: Path) -> None:
    if (run_dir / CHECKPOINT_FILE).exists():
        raise CheckpointError(
            f"{run_dir} already holds {CHECKPOINT_FILE}: continue it with --resume {run_dir}, "
            "or choose a new --run-dir"
        )


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


class BuiltRun(NamedTuple):
    """What a run is built from, before anything is written: learner, tasks, validation."""

    learner: Any
    train_tasks: Any
    validate: Any


def build_run(
    config: RunConfig, *, test: bool = True, parallel: DataParallel | None = None
) -> BuiltRun:
    """Build the learner and the task sources of ``config``: every check that needs data.

    The test episodes are built too (and dropped) when ``test``, so that an impossible test
    episode is refused before training rather than after it.

    Raises:
        ConfigError: also for episodes the data cannot fill (more classes or examples than it
            holds): that is a configuration error of this run.
    """
    seed_everything(config.train.seed)  # the same config gives the same initial weights
    try:
        learner = build_learner(config)
        train_tasks = build_tasks(config, "train")
        validate = _validator(config, learner, parallel)
        if test and not is_rl(config):
            build_tasks(config, "test")
    except EpisodeSpecError as e:
        raise ConfigError(str(e)) from e
    return BuiltRun(learner, train_tasks, validate)


def train_and_test(
    config: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    test: bool = True,
    built: BuiltRun | None = None,
    allow_change: tuple[str, ...] = (),
    parallel: DataParallel | None = None,
) -> EvalResult | None:
    """Meta-train ``config`` into ``run_dir``; then meta-test the best learner (``test.json``).

    ``run_dir`` is locked from before ``config.json`` is written until training ends. With
    ``parallel``, every rank trains and tests its share and rank 0 alone locks and writes.
    """
    main = parallel is None or parallel.is_main
    built = built or build_run(config, test=test, parallel=parallel)
    with run_lock(run_dir) if main else contextlib.nullcontext():
        if main:
            if not resume:
                _refuse_finished(run_dir)  # again, now that no other process can start one
            write_config(config, run_dir)
        meta_train(
            built.learner,
            built.train_tasks,
            config.train,
            run_dir=run_dir,
            validate=built.validate,
            resume=resume,
            extra_state={"config": to_dict(config)},
            allow_change=tuple(k.split(".", 1)[1] for k in allow_change if k.startswith("train.")),
            parallel=parallel,
        )
    if main:
        title = run_title(run_dir, config)
        plot_curves(run_dir / METRICS_FILE, run_dir / "curves.png", title=title)
    if not test:
        return None
    _, best, _ = load_run(run_dir)  # the best checkpoint, as `evaluate` would load it
    result = evaluate_learner(config, best, "test", config.eval.episodes, parallel=parallel)
    if main:
        print_result(f"test {result.metric}", result)  # before writing: a failed write keeps it
        write_result(result, run_dir / "test.json", config, "test")
        if is_rl(config):
            write_adaptation(result, run_dir, config)
    return result


def _validator(config: RunConfig, learner: Any, parallel: DataParallel | None = None) -> Any:
    # Lake's split has no validation classes: never select checkpoints on the test classes.
    no_val = config.data.dataset == "omniglot" and config.data.split == "lake"
    if config.eval.val_episodes == 0 or config.train.eval_every == 0 or no_val:
        return None
    tasks = build_tasks(config, "val")
    if is_rl(config):
        val_tasks = tasks.sample_batch(config.eval.val_episodes)

        def validate_rl() -> dict[str, float]:
            result = rl_adaptation(config, learner, val_tasks, sweep=False)
            return {"return": result.mean, "return_pre": float(result.by_steps[0].mean())}

        return validate_rl

    def validate() -> dict[str, float]:
        episodes = tasks.episodes(config.eval.val_episodes)  # type: ignore[attr-defined]
        options: dict[str, Any] = {
            "batch_size": config.eval.batch_size,
            "transductive": config.eval.transductive,
            "progress": False,  # inside the training bar
        }
        if parallel is not None:
            n = config.eval.val_episodes
            result = parallel.meta_test(learner, episodes, n, **options)
        else:
            result = meta_test(learner, episodes, **options)
        return {result.metric: result.mean}

    return validate


def evaluate_learner(
    config: RunConfig,
    learner: Any,
    subset: Subset,
    n_episodes: int,
    *,
    progress: bool = False,
    parallel: DataParallel | None = None,
) -> EvalResult:
    """Meta-test ``learner`` on ``n_episodes`` fixed episodes (RL: tasks) of ``subset``.

    With ``parallel``, the episodes are split over the ranks and every rank gets all values
    (RL tasks are not split: their rollout noise is one stream over all tasks).
    """
    tasks = build_tasks(config, subset)
    if is_rl(config):
        return rl_adaptation(config, learner, tasks.sample_batch(n_episodes))
    episodes = tasks.episodes(n_episodes)  # type: ignore[attr-defined]
    options: dict[str, Any] = {
        "inner_steps": list(config.eval.inner_steps) or None,
        "batch_size": config.eval.batch_size,
        "transductive": config.eval.transductive,
    }
    if parallel is not None:
        options["progress"] = progress and parallel.is_main
        return parallel.meta_test(learner, episodes, n_episodes, **options)
    return meta_test(learner, episodes, progress=progress, **options)


def write_result(result: EvalResult, path: Path, config: RunConfig, subset: str) -> dict[str, Any]:
    """Write a meta-test result as JSON (mean, 95% CI, episodes, and per-step values)."""
    row: dict[str, Any] = {
        "preset": config.name,
        "subset": subset,
        "metric": result.metric,
        "mean": result.mean,
        "ci95": result.ci95,
        "episodes": result.n,
        "transductive": config.eval.transductive,
    }
    steps = result.steps_summary()
    if steps:
        row["by_inner_steps"] = {str(k): {"mean": v.mean, "ci95": v.ci95} for k, v in steps.items()}
    atomic_write_text(json.dumps(row, indent=2) + "\n", path)
    return row


def rl_adaptation(
    config: RunConfig, learner: Any, tasks: list[Any], *, sweep: bool = True
) -> EvalResult:
    """Mean return on each of ``tasks`` after 0, 1, ... policy-gradient steps (MAML's test).

    ``values`` are the returns after the algorithm's own number of test steps; ``by_steps``
    holds every number of steps up to that one, or with ``sweep`` up to the largest of
    ``config.eval.inner_steps``. The rollouts' noise is seeded by ``config.eval.seed``, so
    every checkpoint is scored on the same draws.
    """
    from metalearn.rl import adaptation_returns  # gymnasium is imported for RL runs only

    algo = config.algorithm
    own = algo.inner_steps if algo.eval_inner_steps is None else algo.eval_inner_steps
    n_steps = max((own, *config.eval.inner_steps)) if sweep else own
    torch.manual_seed(config.eval.seed)
    returns = adaptation_returns(learner, tasks, n_steps=n_steps).double()
    by_steps = {k: returns[:, k] for k in range(n_steps + 1)}
    return EvalResult("return", returns[:, own], by_steps)


def write_adaptation(result: EvalResult, directory: Path, config: RunConfig) -> None:
    """Write an RL result's ``adaptation.md`` table and ``adaptation.png`` plot."""
    from metalearn.rl import write_adaptation_report

    returns = torch.stack([result.by_steps[k] for k in sorted(result.by_steps)], dim=1)
    write_adaptation_report({config.name: returns}, directory, title=config.description)
