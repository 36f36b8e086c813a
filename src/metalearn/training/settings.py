"""The one outer loop's settings and result: :class:`TrainConfig` and :class:`TrainResult`.

The settings are checked when they are made. Must not import ``metalearn.data`` or
``metalearn.rl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalearn.errors import ConfigError
from metalearn.training.best import metric_rule

__all__ = ["TrainConfig", "TrainResult"]


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
    patience: int = 0
    """Stop early once this many validations in a row have not improved on the best (whose
    weights are in ``best.pt``); 0 trains all ``steps``."""
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
            (self.patience >= 0, "patience", "must be >= 0 (0: off)"),
            (
                not (self.patience and not self.eval_every),
                "patience",
                "needs validations (eval_every >= 1)",
            ),
            (self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: last step only)"),
            (self.log_every >= 1, "log_every", "must be >= 1"),
        ]
        for ok, name, constraint in checks:
            if not ok:
                value = getattr(self, name)
                raise ConfigError(f"TrainConfig.{name}={value!r} {constraint}; set a valid {name}")
        metric_rule(self.val_metric)


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
        stopped_early: ``TrainConfig.patience`` ran out before ``steps``.
    """

    step: int
    train_metrics: dict[str, float]
    val_metrics: dict[str, float]
    best: dict[str, Any] | None
    elapsed_s: float
    history: list[dict[str, Any]] = field(repr=False)
    run_dir: Path | None = None
    stopped_early: bool = False
