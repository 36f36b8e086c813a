"""Whole runs as Python calls: train a config into a run folder, meta-test, write the results.

What ``metalearn train``, ``evaluate`` and ``demo`` do, without their argument parsing and
printing: :func:`train_and_test` meta-trains a :class:`~metalearn.config.RunConfig` into a run
folder and meta-tests its best checkpoint; :func:`evaluate_learner` meta-tests a learner on a
subset; :func:`write_result` and :func:`write_adaptation` write what they return;
:func:`load_learner` loads a run's checkpoint as ``metalearn evaluate`` does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from metalearn.build import Subset, build_learner, build_tasks, is_rl
from metalearn.config import RunConfig, to_dict, write_config
from metalearn.data.stream import EpisodeStream
from metalearn.errors import CheckpointError, ConfigError, EpisodeSpecError
from metalearn.training import (
    BEST_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    load_checkpoint,
    meta_test,
    meta_train,
    plot_curves,
)
from metalearn.training.checkpoint import first_line
from metalearn.training.distributed import DataParallel
from metalearn.training.evaluation import EvalResult
from metalearn.utils.io import atomic_write_text, run_lock
from metalearn.utils.seeding import seed_everything

__all__ = [
    "BuiltRun",
    "best_checkpoint",
    "build_run",
    "evaluate_learner",
    "load_learner",
    "refuse_finished",
    "rl_adaptation",
    "run_title",
    "train_and_test",
    "write_adaptation",
    "write_result",
]


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
    run_dir: str | Path,
    *,
    resume: bool = False,
    test: bool = True,
    built: BuiltRun | None = None,
    allow_change: tuple[str, ...] = (),
    parallel: DataParallel | None = None,
    report: Callable[[str, EvalResult], None] | None = None,
) -> EvalResult | None:
    """Meta-train ``config`` into ``run_dir``; then meta-test the best learner (``test.json``).

    ``run_dir`` is locked from before ``config.json`` is written until training ends. With
    ``parallel``, every rank trains and tests its share and rank 0 alone locks and writes.
    ``report(label, result)`` (e.g. a print) gets the test result before it is written, so
    that a failed write does not lose it.
    """
    run_dir = Path(run_dir)
    main = parallel is None or parallel.is_main
    built = built or build_run(config, test=test, parallel=parallel)
    with run_lock(run_dir) if main else contextlib.nullcontext():
        if main:
            if not resume:
                refuse_finished(run_dir)  # again, now that no other process can start one
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
    best = load_learner(config, best_checkpoint(run_dir))  # as `evaluate` would load it
    result = evaluate_learner(config, best, "test", config.eval.episodes, parallel=parallel)
    if main:
        if report is not None:
            report(f"test {result.metric}", result)
        write_result(result, run_dir / "test.json", config, "test")
        if is_rl(config):
            write_adaptation(result, run_dir, config)
    return result


def refuse_finished(run_dir: Path) -> None:
    """Refuse to start a new run in a folder that holds a checkpoint.

    Raises:
        CheckpointError: saying how to continue that run instead.
    """
    if (run_dir / CHECKPOINT_FILE).exists():
        raise CheckpointError(
            f"{run_dir} already holds {CHECKPOINT_FILE}: continue it with --resume {run_dir}, "
            "or choose a new --run-dir"
        )


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

    assert isinstance(tasks, EpisodeStream)  # every image and sinusoid task source is one

    def validate() -> dict[str, float]:
        episodes = tasks.episodes(config.eval.val_episodes)
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
    assert isinstance(tasks, EpisodeStream)  # every image and sinusoid task source is one
    episodes = tasks.episodes(n_episodes)
    options: dict[str, Any] = {
        "inner_steps": list(config.eval.inner_steps) or None,
        "batch_size": config.eval.batch_size,
        "transductive": config.eval.transductive,
    }
    if parallel is not None:
        options["progress"] = progress and parallel.is_main
        return parallel.meta_test(learner, episodes, n_episodes, **options)
    return meta_test(learner, episodes, progress=progress, **options)


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


def write_adaptation(result: EvalResult, directory: Path, config: RunConfig) -> None:
    """Write an RL result's ``adaptation.md`` table and ``adaptation.png`` plot."""
    from metalearn.rl import write_adaptation_report

    returns = torch.stack([result.by_steps[k] for k in sorted(result.by_steps)], dim=1)
    write_adaptation_report({config.name: returns}, directory, title=config.description)


def run_title(run_dir: Path, config: RunConfig) -> str:
    """A plot title naming the run folder and, when it differs, the preset."""
    name = run_dir.resolve().name
    return name if name == config.name else f"{name} (preset {config.name})"


def best_checkpoint(run_dir: Path) -> Path:
    """``best.pt`` of a run folder when validation kept one, else ``checkpoint.pt``."""
    return run_dir / BEST_FILE if (run_dir / BEST_FILE).is_file() else run_dir / CHECKPOINT_FILE


def load_learner(config: RunConfig, checkpoint: Path) -> Any:
    """Build the learner of ``config`` with the weights of ``checkpoint``, in eval mode.

    Raises:
        CheckpointError: if the checkpoint is unreadable or holds another learner's weights.
    """
    learner = build_learner(config)
    payload = load_checkpoint(checkpoint)
    try:
        learner.load_state_dict(payload["learner"])
    except RuntimeError as e:
        raise CheckpointError(
            f"{checkpoint} does not match {config.name}'s learner: {first_line(e)}"
        ) from e
    learner.eval()
    return learner
