"""Episodes (one task, or a stacked meta-batch of tasks) and the TaskSource protocol.

Learning code sees only what is defined here, never where the episodes came from. This module
imports only :mod:`metalearn.types` from metalearn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["BATCH_DIMS", "Episode", "TaskSource"]


class Episode(NamedTuple):
    """One task, or a stack of tasks along dim 0.

    A NamedTuple is a pytree, so ``torch.func.vmap`` maps over a stacked meta-batch with
    ``in_dims=(BATCH_DIMS,)`` while ``n_way`` stays a static Python value.

    Attributes:
        support_x: ``(n_way * n_shot, *x_shape)``; ``(n_tasks, n_way * n_shot, *x_shape)`` when
            batched.
        support_y: ``(n_way * n_shot,)`` int64 labels in ``[0, n_way)``, or regression targets
            ``(n_shot, *y_shape)``.
        query_x: ``(n_way * n_query, *x_shape)``; batched like ``support_x``.
        query_y: like ``support_y``.
        n_way: number of classes (a Python int, static under vmap); ``None`` for regression.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    n_way: int | None = None

    @property
    def is_batched(self) -> bool:
        """Whether this is a stack of tasks.

        Labels are ``(n,)`` for one classification task and regression targets ``(n, y_dim)``
        for one regression task; a stack adds a leading task dim.
        """
        return self.support_y.dim() >= (2 if self.n_way is not None else 3)

    @property
    def n_tasks(self) -> int:
        """The number of tasks in a stacked episode (1 for a single task)."""
        return self.support_x.shape[0] if self.is_batched else 1

    @staticmethod
    def stack(episodes: Sequence[Episode]) -> Episode:
        """Stack episodes of equal shapes into a meta-batch with a leading task dim.

        Raises:
            ValueError: if ``episodes`` is empty or their ``n_way`` differ.
        """
        if not episodes:
            raise ValueError("cannot stack an empty sequence of episodes")
        n_ways = {e.n_way for e in episodes}
        if len(n_ways) != 1:
            raise ValueError(
                f"cannot stack episodes with different n_way: {sorted(map(str, n_ways))}"
            )
        return Episode(
            torch.stack([e.support_x for e in episodes]),
            torch.stack([e.support_y for e in episodes]),
            torch.stack([e.query_x for e in episodes]),
            torch.stack([e.query_y for e in episodes]),
            episodes[0].n_way,
        )

    def unbind(self) -> list[Episode]:
        """Split a stacked meta-batch into its tasks (the reference loop path)."""
        parts = [t.unbind(0) for t in self[:4]]
        return [Episode(sx, sy, qx, qy, self.n_way) for sx, sy, qx, qy in zip(*parts, strict=True)]

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Episode:
        """Move the tensors to ``device`` and cast the floating ones to ``dtype``."""

        def move(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        sx, sy, qx, qy = (move(t) for t in self[:4])
        return Episode(sx, sy, qx, qy, self.n_way)


BATCH_DIMS = Episode._make((0, 0, 0, 0, None))  # an Episode of dims, not of tensors
"""``in_dims`` for ``vmap`` over a stacked meta-batch of episodes."""


@runtime_checkable
class TaskSource(Protocol):
    """A distribution of tasks: what the training loop and meta-test sample episodes from.

    Implemented structurally by :class:`metalearn.data.TaskSampler`, the sinusoid family and
    the RL task distributions; learning code never imports them.
    """

    def sample(self) -> Any:
        """Return one task (an :class:`Episode` for supervised learning)."""

    def sample_batch(self, n_tasks: int) -> Any:
        """Return ``n_tasks`` tasks (a stacked :class:`Episode` for supervised learning)."""

    def state_dict(self) -> dict[str, Any]:
        """Return the sampler state, for an exact resume."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""
