"""What the outer loop trains: the :class:`MetaObjective` protocol and its optional hooks.

Every :class:`~metalearn.algorithms.base.Learner` is a :class:`MetaObjective`; meta-RL's
:class:`~metalearn.rl.learner.MetaRLLearner` is one with its own outer step. Must not import
``metalearn.data`` or ``metalearn.rl``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from torch import Tensor, nn

from metalearn.types import Metrics

__all__ = ["MetaObjective", "meta_update_hook", "named_parameters"]


class MetaObjective(Protocol):
    """What :func:`~metalearn.training.loop.meta_train` trains: a module with a ``meta_loss``.

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


def meta_update_hook(objective: object) -> Callable[[Any], Metrics] | None:
    """Return the objective's own ``meta_update(batch) -> Metrics`` method, if it has one."""
    hook = getattr(objective, "meta_update", None)
    return hook if callable(hook) else None


def named_parameters(objective: MetaObjective) -> list[tuple[str, nn.Parameter]]:
    """The objective's parameters by name (``parameter i`` when it cannot name them)."""
    named = getattr(objective, "named_parameters", None)
    if callable(named):
        return list(named())
    return [(f"parameter {i}", p) for i, p in enumerate(objective.parameters())]
