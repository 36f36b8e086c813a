"""What the outer loop advances and checkpoints: objective, optimizer, scheduler, step, best.

:class:`TrainState` builds the outer optimizer and its schedule, and turns itself into a
checkpoint payload and back (bit-exactly, RNG included); the loop
(:mod:`metalearn.training.loop`) takes the steps. Must not import ``metalearn.data``,
``metalearn.rl`` or the loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.optim import SGD, Adam, Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, StepLR

from metalearn.episode import TaskSource
from metalearn.errors import CheckpointError, ConfigError
from metalearn.training.checkpoint import (
    FORMAT_VERSION,
    capture_rng_state,
    check_plain_data,
    restore_rng_state,
)
from metalearn.training.objective import MetaObjective, meta_update_hook
from metalearn.training.settings import TrainConfig

if TYPE_CHECKING:
    from metalearn.training.distributed import DataParallel

__all__ = ["RESUME_MUST_MATCH", "LinearToZero", "TrainState"]

RESUME_MUST_MATCH = (
    "optimizer",
    "outer_lr",
    "meta_batch_size",
    "grad_clip",
    "lr_decay_every",
    "lr_decay_gamma",
    "lr_anneal",
    "val_metric",
    "seed",
)
"""TrainConfig fields a resumed run must share with its checkpoint (they shape the trajectory
or the best-checkpoint choice); ``steps`` (unless ``lr_anneal``) and the every-N settings may
change, and so may the fields a resume names in ``allow_change`` (e.g. ``outer_lr`` after a
divergence: the learning rates of the restored optimizer and scheduler are rescaled to it)."""


class LinearToZero:
    """Learning-rate factor ``1 - step / steps`` (0 from ``steps`` on), as in Reptile's code.

    A class rather than a lambda, so that ``LambdaLR.state_dict`` stores it in checkpoints.
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __call__(self, step: int) -> float:
        """Return the factor of the learning rate after ``step`` outer steps."""
        return max(0.0, 1.0 - step / max(1, self.steps))


class TrainState:
    """The mutable state of one meta-training run.

    Args:
        objective: the learner (or meta-RL objective) being meta-trained.
        tasks: the task source batches come from.
        cfg: the loop settings.
        extra_state: plain data stored in every checkpoint (e.g. the resolved run config).
        parallel: averages gradients and metrics over data-parallel ranks, or ``None``.

    Attributes:
        hook: the objective's own ``meta_update`` (then there is no optimizer), or ``None``.
        optimizer: the outer optimizer over the trainable parameters, or ``None``.
        scheduler: its learning-rate schedule (``TrainConfig.lr_anneal``, ``lr_decay_every``).
        step: outer steps completed.
        best: ``{"metric", "value", "step"}`` of the best validation so far, or ``None``.
        elapsed_s: training seconds before this process started (non-zero after a resume).
    """

    def __init__(
        self,
        objective: MetaObjective,
        tasks: TaskSource,
        cfg: TrainConfig,
        extra_state: dict[str, Any] | None,
        parallel: DataParallel | None = None,
    ) -> None:
        self.objective, self.tasks, self.cfg = objective, tasks, cfg
        self.parallel = parallel
        self.extra_state = {} if extra_state is None else extra_state
        check_plain_data(self.extra_state, "extra_state")
        self.hook = meta_update_hook(objective)
        self.optimizer, self.scheduler = self._build_optimizer()
        self.step = 0
        self.best: dict[str, Any] | None = None
        self.elapsed_s = 0.0

    def _build_optimizer(self) -> tuple[Optimizer | None, LRScheduler | None]:
        if self.hook is not None:
            return None, None  # the objective steps itself (e.g. meta-RL's TRPO)
        params = [p for p in self.objective.parameters() if p.requires_grad]
        if not params:
            raise ConfigError(
                f"{type(self.objective).__name__} has no trainable parameters; meta_train "
                "needs at least one parameter with requires_grad=True"
            )
        cfg = self.cfg
        optimizer: Optimizer = (
            Adam(params, lr=cfg.outer_lr) if cfg.optimizer == "adam" else SGD(params, cfg.outer_lr)
        )
        if cfg.lr_anneal:
            return optimizer, LambdaLR(optimizer, LinearToZero(cfg.steps))
        if not cfg.lr_decay_every:
            return optimizer, None
        return optimizer, StepLR(optimizer, cfg.lr_decay_every, cfg.lr_decay_gamma)

    @property
    def lr(self) -> float | None:
        """The current outer learning rate (``None`` when the objective updates itself)."""
        return None if self.optimizer is None else float(self.optimizer.param_groups[0]["lr"])

    def payload(self, elapsed_s: float) -> dict[str, Any]:
        """Return the checkpoint dict (see :mod:`metalearn.training.checkpoint`)."""
        return {
            "format_version": FORMAT_VERSION,
            "step": self.step,
            "elapsed_s": elapsed_s,
            "objective_class": _class_name(self.objective),
            "learner": self.objective.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "tasks": self.tasks.state_dict(),
            "rng": capture_rng_state(),
            "best": self.best,
            "train_config": dataclasses.asdict(self.cfg),
            "extra_state": self.extra_state,
        }

    def restore(
        self, payload: dict[str, Any], path: Path, allow_change: Collection[str] = ()
    ) -> None:
        """Load a checkpoint payload read from ``path`` into this state.

        Args:
            payload: the checkpoint.
            path: where it was read (for messages).
            allow_change: :data:`RESUME_MUST_MATCH` fields that may differ from the checkpoint's.

        Raises:
            CheckpointError: if it was written for another objective class, with different
                trajectory settings (:data:`RESUME_MUST_MATCH`), or does not load.
        """
        self._check_matches(payload, path, allow_change)
        try:
            self.objective.load_state_dict(payload["learner"])
            if self.optimizer is not None:
                self.optimizer.load_state_dict(payload["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(payload["scheduler"])
            self.tasks.load_state_dict(payload["tasks"])
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise CheckpointError(
                f"{path} does not load into this run ({type(e).__name__}: {str(e)[:300]}); "
                "resume with the objective, optimizer and task source the run was started with"
            ) from e
        self._rescale_lr(payload["train_config"].get("outer_lr", self.cfg.outer_lr))
        restore_rng_state(payload["rng"])
        self.step = int(payload["step"])
        self.best = payload.get("best")
        self.elapsed_s = float(payload.get("elapsed_s", 0.0))

    def _rescale_lr(self, saved_outer_lr: float) -> None:
        """Scale the restored learning rates by ``outer_lr / saved_outer_lr`` (allowed change)."""
        if self.optimizer is None or saved_outer_lr == self.cfg.outer_lr:
            return
        factor = self.cfg.outer_lr / saved_outer_lr
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
        if self.scheduler is not None:
            self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]
            self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _check_matches(
        self, payload: dict[str, Any], path: Path, allow_change: Collection[str]
    ) -> None:
        saved_class = payload.get("objective_class")
        if saved_class != _class_name(self.objective):
            raise CheckpointError(
                f"{path} holds a {saved_class}, not a {_class_name(self.objective)}: resume "
                "with the learner the run was started with"
            )
        saved, current = payload["train_config"], dataclasses.asdict(self.cfg)
        # an annealed learning rate is a function of the total steps
        must_match = RESUME_MUST_MATCH + (("steps",) if self.cfg.lr_anneal else ())
        for name in must_match:
            if name in allow_change:
                continue
            if name in saved and saved[name] != current[name]:
                raise CheckpointError(
                    f"{path} was trained with TrainConfig.{name}={saved[name]!r}, this run has "
                    f"{current[name]!r}: resume with the same {name}, allow the change explicitly "
                    f"(allow_change; on the command line --allow-change train.{name}), or start "
                    "a new run"
                )


def _class_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
