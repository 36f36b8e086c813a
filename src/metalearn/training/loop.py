"""The one outer loop: sample a meta-batch, step, log, validate, checkpoint, resume.

:func:`meta_train` knows nothing about any algorithm. It sees a :class:`MetaObjective` (every
:class:`~metalearn.algorithms.base.Learner` is one; meta-RL plugs in through the same protocol)
and a :class:`~metalearn.episode.TaskSource`. Must not import ``metalearn.data`` or
``metalearn.rl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor, nn

from metalearn.episode import Episode, TaskSource
from metalearn.errors import CheckpointError, ConfigError, TrainingDivergedError
from metalearn.training.best import metric_rule
from metalearn.training.checkpoint import (
    BEST_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    load_checkpoint,
    save_checkpoint,
)
from metalearn.training.logger import (
    MetricsLogger,
    MetricWindow,
    format_postfix,
    progress_bar,
    progress_enabled,
)
from metalearn.training.state import TrainState
from metalearn.training.tensorboard import TensorBoardLogger
from metalearn.types import Metrics
from metalearn.utils.io import atomic_write_text, remove_stale_temp_files, run_lock
from metalearn.utils.seeding import get_rng_state, seed_everything, set_rng_state

if TYPE_CHECKING:
    from metalearn.training.distributed import DataParallel

__all__ = ["MetaObjective", "TrainConfig", "TrainResult", "meta_train"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`meta_train`, the one outer loop."""

    steps: int = 10_000
    """Outer (meta) steps to run in total; a resumed run continues up to this step."""
    meta_batch_size: int = 32
    """Tasks per outer step (``tasks.sample_batch(meta_batch_size)``)."""
    outer_lr: float = 1e-3
    """Learning rate of the outer (meta) optimizer."""
    optimizer: str = "adam"
    """Outer optimizer: ``"adam"`` or ``"sgd"`` (plain SGD is Reptile's outer step)."""
    grad_clip: float | None = None
    """Clip the meta-gradient to this global L2 norm; ``None`` leaves it as it is."""
    lr_decay_every: int = 0
    """Multiply the outer learning rate by ``lr_decay_gamma`` every this many outer steps
    (ProtoNet: 2000 episodes, one per step); 0 keeps it constant."""
    lr_decay_gamma: float = 0.5
    """Factor of each learning-rate decay, in ``(0, 1]``."""
    lr_anneal: bool = False
    """Anneal the outer learning rate linearly from ``outer_lr`` to 0 over ``steps`` (Reptile's
    outer step size); not combined with ``lr_decay_every``."""
    eval_every: int = 500
    """Call ``validate()`` every this many steps and at the last one; 0 never validates."""
    checkpoint_every: int = 500
    """Write ``checkpoint.pt`` every this many steps and at the last one; 0: the last only."""
    log_every: int = 10
    """Append a train row (means over the steps since the previous row) to ``metrics.jsonl``
    and refresh the progress bar every this many steps."""
    val_metric: str = "auto"
    """Validation metric that selects ``best.pt``: ``"auto"`` (the first reported of accuracy,
    return, mse, loss), one of those names, or ``"max:NAME"`` / ``"min:NAME"`` for any other.
    Higher is better for accuracy and return, lower for mse and loss."""
    seed: int = 0
    """Seed of the global generators (Python, NumPy, torch) at the start of a fresh run."""
    progress: bool = True
    """Draw a progress bar (only when stderr is a terminal and ``CI`` is unset)."""
    tensorboard: bool = False
    """Also write the metric rows as TensorBoard scalars to ``<run_dir>/tensorboard`` (needs
    a run_dir and ``pip install 'metalearn[tensorboard]'``)."""

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 0, "steps", "must be >= 0"),
            (self.meta_batch_size >= 1, "meta_batch_size", "must be >= 1"),
            (math.isfinite(self.outer_lr) and self.outer_lr > 0, "outer_lr", "must be > 0"),
            (self.optimizer in ("adam", "sgd"), "optimizer", "must be 'adam' or 'sgd'"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 or None"),
            (0 < self.lr_decay_gamma <= 1, "lr_decay_gamma", "must be in (0, 1]"),
            (self.lr_decay_every >= 0, "lr_decay_every", "must be >= 0 (0: off)"),
            (
                not (self.lr_anneal and self.lr_decay_every),
                "lr_anneal",
                "cannot be combined with lr_decay_every (choose one schedule)",
            ),
            (self.eval_every >= 0, "eval_every", "must be >= 0 (0: off)"),
            (self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: last step only)"),
            (self.log_every >= 1, "log_every", "must be >= 1"),
        ]
        for ok, name, constraint in checks:
            if not ok:
                value = getattr(self, name)
                raise ConfigError(f"TrainConfig.{name}={value!r} {constraint}; set a valid {name}")
        metric_rule(self.val_metric)


class MetaObjective(Protocol):
    """What :func:`meta_train` trains: any ``nn.Module`` with a ``meta_loss``.

    Optional hook: ``on_step_end(step)`` is called after each outer step with the number of
    steps done; schedules of the objective advance there, never in ``meta_loss``.

    Optional hook: an objective with a method ``meta_update(batch) -> Metrics`` takes its own
    outer step (meta-RL's TRPO). The loop then calls it instead of backward, clipping and an
    optimizer step, builds no optimizer, and checkpoints only the objective's ``state_dict``
    (which must hold whatever optimizer state the objective keeps).
    """

    def meta_loss(self, batch: Any) -> tuple[Tensor, Metrics]:
        """Return the scalar outer loss of a meta-batch and its detached metrics."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The meta-parameters."""

    def state_dict(self) -> dict[str, Any]:
        """Everything to checkpoint."""

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        """Restore :meth:`state_dict`."""

    def train(self, mode: bool = True) -> Any:
        """Switch to training mode."""

    def eval(self) -> Any:
        """Switch to evaluation mode."""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`meta_train` returns.

    Attributes:
        step: outer steps completed.
        train_metrics: the last train row's metrics (means over its log window).
        val_metrics: the last validation's metrics (empty without validation).
        best: ``{"metric", "value", "step"}`` of the best validation, or ``None``.
        elapsed_s: training wall-clock seconds, across resumes.
        history: every row this call logged (also in ``metrics.jsonl`` with a ``run_dir``).
        run_dir: the run folder, or ``None``.
    """

    step: int
    train_metrics: dict[str, float]
    val_metrics: dict[str, float]
    best: dict[str, Any] | None
    elapsed_s: float
    history: list[dict[str, Any]] = field(repr=False)
    run_dir: Path | None = None


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
            ``cfg.eval_every`` steps and at the last step.
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
        ConfigError: if ``resume`` has no ``run_dir``, or ``validate()`` lacks the metric.
        TrainingDivergedError: if the loss or a meta-gradient is NaN or infinite at any step;
            nothing of that step is written.
    """
    run_dir = None if run_dir is None else Path(run_dir)
    if parallel is not None:
        parallel.setup(objective, cfg.meta_batch_size)
    writes = parallel is None or parallel.is_main  # only rank 0 writes files (and locks)
    state = TrainState(objective, tasks, cfg, extra_state, parallel)
    log_path = None if run_dir is None or not writes else run_dir / METRICS_FILE
    # checks the tensorboard package before anything is written; it writes at the first row
    mirror = TensorBoardLogger(run_dir) if cfg.tensorboard and writes else None
    metrics_log = MetricsLogger(log_path, mirror=mirror)
    with _locked(run_dir if writes else None):
        _start(state, metrics_log, run_dir, resume, allow_change)
        loop = _Loop(state, metrics_log, run_dir if writes else None, validate)
        objective.train()
        enabled = progress_enabled(cfg.progress) and writes
        with progress_bar(cfg.steps, initial=state.step, desc="meta-train", enabled=enabled) as bar:
            while state.step < cfg.steps:
                loop.step()
                bar.update()
                bar.set_postfix(loop.postfix, refresh=False)
        metrics_log.close()
    if parallel is not None:
        parallel.barrier()  # the other ranks may read what rank 0 wrote last
    return replace(loop.result(), run_dir=run_dir)


RUN_FILES = (CHECKPOINT_FILE, BEST_FILE, METRICS_FILE, "config.json")
"""Files of a run folder written atomically while training (their stale temporaries go)."""


@contextlib.contextmanager
def _locked(run_dir: Path | None) -> Iterator[None]:
    """Hold the run folder's lock; remove the temporaries of killed writes once it is held."""
    if run_dir is None:
        yield
        return
    with run_lock(run_dir):
        for tmp in remove_stale_temp_files(run_dir, RUN_FILES):
            logger.info("removed %s, left by a killed write", tmp)
        yield


def _start(
    state: TrainState,
    log: MetricsLogger,
    run_dir: Path | None,
    resume: bool,
    allow_change: Collection[str] = (),
) -> None:
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
        text = json.dumps(state.extra_state["config"], indent=2) + "\n"
        atomic_write_text(text, run_dir / CONFIG_FILE)


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
            self.window.add(state.update(batch))
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
            (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0) or last
        ):
            save_checkpoint(state.payload(self.elapsed()), self.run_dir / CHECKPOINT_FILE)

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
        )
