"""The one outer loop: sample a meta-batch, take the outer step, log, validate, checkpoint.

:func:`meta_train` knows nothing about any algorithm. It sees a
:class:`~metalearn.training.objective.MetaObjective` (every
:class:`~metalearn.algorithms.base.Learner` is one; meta-RL plugs in through the same protocol)
and a :class:`~metalearn.episode.TaskSource`. The outer step is :meth:`_Loop.outer_step`:
``meta_loss``, backward, the non-finite check, gradient clipping, the optimizer step. Its
settings are :class:`~metalearn.training.settings.TrainConfig`; what it advances and
checkpoints is :class:`~metalearn.training.state.TrainState`; the run folder's lock, fresh
start and resume are :mod:`metalearn.training.run_folder`. Must not import
``metalearn.data`` or ``metalearn.rl``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from metalearn.episode import Episode, TaskSource
from metalearn.errors import ConfigError, TrainingDivergedError
from metalearn.training.best import metric_rule
from metalearn.training.checkpoint import BEST_FILE, CHECKPOINT_FILE, METRICS_FILE, save_checkpoint
from metalearn.training.finite import check_finite_step, check_finite_weights
from metalearn.training.logger import (
    MetricsLogger,
    MetricWindow,
    format_postfix,
    progress_bar,
    progress_enabled,
)
from metalearn.training.objective import MetaObjective, named_parameters
from metalearn.training.run_folder import locked_run_folder, start_or_resume
from metalearn.training.settings import TrainConfig, TrainResult
from metalearn.training.state import TrainState
from metalearn.training.tensorboard import TensorBoardLogger
from metalearn.types import Metrics
from metalearn.utils.seeding import get_rng_state, set_rng_state

if TYPE_CHECKING:
    from metalearn.training.distributed import DataParallel

__all__ = ["MetaObjective", "TrainConfig", "TrainResult", "meta_train"]

logger = logging.getLogger(__name__)


def meta_train(
    objective: MetaObjective,
    tasks: TaskSource,
    cfg: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    validate: Callable[[], Mapping[str, float]] | None = None,
    resume: bool = False,
    extra_state: dict[str, Any] | None = None,
    parallel: DataParallel | None = None,
    allow_change: Collection[str] = (),
) -> TrainResult:
    """Meta-train ``objective`` on batches from ``tasks``: the one outer loop.

    Each step samples ``tasks.sample_batch(cfg.meta_batch_size)`` (an :class:`Episode` is moved
    to the objective's device), then either calls ``objective.meta_update(batch)`` when the
    objective has that hook, or runs ``meta_loss`` → backward → clip → optimizer step → lr
    schedule. Validation runs in eval mode with the global RNG state saved and restored around
    it, so it never changes the training trajectory.

    With a ``run_dir`` it writes ``metrics.jsonl`` (train and val rows), ``checkpoint.pt``
    (every ``cfg.checkpoint_every`` steps and at the end) and ``best.pt`` (at each validation
    that improves on the best so far, see ``TrainConfig.val_metric``), all atomically.

    Args:
        objective: a :class:`MetaObjective` (a :class:`~metalearn.algorithms.base.Learner`, or
            a meta-RL objective).
        tasks: the training task source; its ``state_dict`` is checkpointed.
        cfg: loop settings.
        run_dir: the run folder, or ``None`` to keep nothing on disk.
        validate: returns validation metrics, e.g. ``{"accuracy": 0.93}``; called every
            ``cfg.eval_every`` steps and at the last step. With ``cfg.patience`` the loop stops
            (and checkpoints) once that many validations in a row did not improve on the best;
            resuming such a run trains no further.
        resume: continue bit-exactly from ``run_dir/checkpoint.pt`` up to ``cfg.steps``.
            Metric rows after the checkpoint's step are dropped, to be written again (they
            equal an uninterrupted run's when ``checkpoint_every`` is a multiple of
            ``log_every``, so that no log window straddles the checkpoint).
        extra_state: plain data saved in every checkpoint. ``{"config": to_dict(run_config)}``
            (what ``metalearn train`` passes) is also written to ``run_dir/config.json`` on a
            fresh start, so that ``metalearn evaluate`` and ``plot`` work on the run.
        parallel: split every meta-batch over the ranks of a process group
            (:class:`~metalearn.training.distributed.DataParallel`); every rank reads the
            checkpoint on resume, rank 0 alone writes files and draws the progress bar.
        allow_change: on resume, ``TrainConfig`` fields that may differ from the checkpoint's
            although they shape the trajectory (e.g. ``("outer_lr",)`` after a divergence).

    While it runs, ``run_dir`` is locked (``run_dir/.lock``): a second process training there
    gets :class:`~metalearn.utils.io.RunFolderLockedError`. Temporary files that killed writes
    left behind are deleted at the start.

    Returns:
        The final step, last train and validation metrics, best validation and logged rows.

    Raises:
        CheckpointError: on resume, if the checkpoint is missing, corrupt or does not match
            this run; on a fresh start, if ``run_dir`` already holds a checkpoint.
        ConfigError: if ``resume`` has no ``run_dir``, ``validate()`` lacks the metric, or
            ``cfg.patience`` is set without ``validate``.
        TrainingDivergedError: if the loss or a meta-gradient is NaN or infinite at any step;
            nothing of that step is written.
    """
    run_dir = None if run_dir is None else Path(run_dir)
    if cfg.patience and validate is None:
        raise ConfigError("TrainConfig.patience stops on validations: give a validation set")
    if parallel is not None:
        parallel.setup(objective, cfg.meta_batch_size)
    writes = parallel is None or parallel.is_main  # only rank 0 writes files (and locks)
    state = TrainState(objective, tasks, cfg, extra_state, parallel)
    log_path = None if run_dir is None or not writes else run_dir / METRICS_FILE
    # checks the tensorboard package before anything is written; it writes at the first row
    mirror = TensorBoardLogger(run_dir) if cfg.tensorboard and writes else None
    metrics_log = MetricsLogger(log_path, mirror=mirror)
    with locked_run_folder(run_dir if writes else None):
        start_or_resume(state, metrics_log, run_dir, resume, allow_change)
        loop = _Loop(state, metrics_log, run_dir if writes else None, validate)
        objective.train()
        enabled = progress_enabled(cfg.progress) and writes
        with progress_bar(cfg.steps, initial=state.step, desc="meta-train", enabled=enabled) as bar:
            while state.step < cfg.steps and not loop.patience_ran_out():
                loop.step()
                bar.update()
                bar.set_postfix(loop.postfix, refresh=False)
        metrics_log.close()
    if loop.patience_ran_out() and state.best is not None:
        logger.info(
            "stopped early at step %d: %d validations without improvement on step %d's",
            state.step, cfg.patience, state.best["step"],
        )  # fmt: skip
    if parallel is not None:
        parallel.barrier()  # the other ranks may read what rank 0 wrote last
    return replace(loop.result(), run_dir=run_dir)


class _Loop:
    """One call of :func:`meta_train`: a step and what follows it (log, validate, save)."""

    def __init__(
        self,
        state: TrainState,
        log: MetricsLogger,
        run_dir: Path | None,
        validate: Callable[[], Mapping[str, float]] | None,
    ) -> None:
        self.state, self.cfg, self.log, self.run_dir = state, state.cfg, log, run_dir
        self.validate = validate
        self.rule = metric_rule(state.cfg.val_metric)
        first = next(iter(state.objective.parameters()), None)
        self.device = None if first is None else first.device
        self.window = MetricWindow()
        self.postfix: dict[str, str] = {}
        self.t_start = time.perf_counter()

    def elapsed(self) -> float:
        return self.state.elapsed_s + time.perf_counter() - self.t_start

    def step(self) -> None:
        state, cfg = self.state, self.cfg
        self.window.start()
        batch = state.tasks.sample_batch(cfg.meta_batch_size)
        if state.parallel is not None:  # every rank draws the whole batch and keeps its slice
            batch = state.parallel.shard(batch)
        if isinstance(batch, Episode) and self.device is not None:
            batch = batch.to(self.device)
        with nullcontext() if state.parallel is None else state.parallel.rank_rng():
            self.window.add(self.outer_step(batch))
        state.step += 1
        on_step_end = getattr(state.objective, "on_step_end", None)
        if on_step_end is not None:  # schedules (MAML++'s annealing) follow the loop's steps
            on_step_end(state.step)
        last = state.step == cfg.steps
        if state.step % cfg.log_every == 0 or last:
            self._log_train()
        if (
            self.validate is not None
            and cfg.eval_every
            and (state.step % cfg.eval_every == 0 or last)
        ):
            self._validate(self.validate)
        if self.run_dir is not None and (
            (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0)
            or last
            or self.patience_ran_out()
        ):
            save_checkpoint(state.payload(self.elapsed()), self.run_dir / CHECKPOINT_FILE)

    def patience_ran_out(self) -> bool:
        """Whether the last ``cfg.patience`` validations did not improve on the best."""
        cfg, best = self.cfg, self.state.best
        if not cfg.patience or best is None:
            return False
        return self.state.step - best["step"] >= cfg.patience * cfg.eval_every

    def outer_step(self, batch: Any) -> Metrics:
        """One outer step on ``batch``; return its metrics (means over the ranks).

        ``meta_loss`` → backward → gradients averaged over the ranks → a non-finite loss or
        gradient stops the run → clip → optimizer step → learning-rate schedule. An objective
        with its own ``meta_update`` (meta-RL's TRPO) takes the step instead; its weights must
        be finite afterwards.
        """
        state, step = self.state, self.state.step + 1
        if state.hook is not None:
            hook_metrics = self._mean_over_ranks(dict(state.hook(batch)))
            check_finite_weights(state.objective.parameters(), step)
            return hook_metrics
        assert state.optimizer is not None  # built whenever there is no hook
        state.optimizer.zero_grad(set_to_none=True)
        loss, metrics = state.objective.meta_loss(batch)
        loss.backward()
        metrics = self._mean_over_ranks({"loss": loss.detach(), **metrics})
        params = [p for group in state.optimizer.param_groups for p in group["params"]]
        if state.parallel is not None:
            state.parallel.all_reduce_gradients(params)
        # after the all-reduce, so that every rank sees a non-finite gradient of any rank
        check_finite_step(loss, named_parameters(state.objective), step)
        if self.cfg.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            metrics["grad_norm"] = norm.detach()
        state.optimizer.step()
        if state.scheduler is not None:
            state.scheduler.step()
        return metrics

    def _mean_over_ranks(self, metrics: Metrics) -> Metrics:
        parallel = self.state.parallel
        return dict(metrics) if parallel is None else parallel.reduce_metrics(metrics)

    def _log_train(self) -> None:
        means, seconds_per_step = self.window.flush()
        loss = means.get("loss", 0.0)
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the meta-training loss is {loss} at step {self.state.step}: lower "
                "TrainConfig.outer_lr or set grad_clip, then resume from the last checkpoint"
            )
        row: dict[str, Any] = {"step": self.state.step, "split": "train", **means}
        if self.state.lr is not None:
            row["lr"] = self.state.lr
        row["tasks_per_s"] = self.cfg.meta_batch_size / max(seconds_per_step, 1e-12)
        row["elapsed_s"] = self.elapsed()
        self.log.write(row)
        self.postfix = format_postfix(means)

    def _validate(self, validate: Callable[[], Mapping[str, float]]) -> None:
        state = self.state
        rng = get_rng_state()  # validation must not shift the training trajectory
        state.objective.eval()
        try:
            metrics = {name: float(value) for name, value in validate().items()}
        finally:
            state.objective.train()
            set_rng_state(rng)
        rule = self.rule.resolve(metrics)
        assert rule.name is not None  # resolve() always names the metric
        value = metrics[rule.name]
        self.log.write({"step": state.step, "split": "val", **metrics, "elapsed_s": self.elapsed()})
        logger.info("step %d: validation %s=%.6g", state.step, rule.name, value)
        if rule.is_better(value, None if state.best is None else state.best["value"]):
            state.best = {"metric": rule.name, "value": value, "step": state.step}
            if self.run_dir is not None:
                save_checkpoint(state.payload(self.elapsed()), self.run_dir / BEST_FILE)

    def result(self) -> TrainResult:
        def last(split: str) -> dict[str, float]:
            rows = [r for r in self.log.rows if r["split"] == split]
            skip = ("step", "split", "elapsed_s")
            return {k: v for k, v in rows[-1].items() if k not in skip} if rows else {}

        return TrainResult(
            step=self.state.step,
            train_metrics=last("train"),
            val_metrics=last("val"),
            best=self.state.best,
            elapsed_s=self.elapsed(),
            history=list(self.log.rows),
            run_dir=self.run_dir,
            stopped_early=self.patience_ran_out(),
        )
