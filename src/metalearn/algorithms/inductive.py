"""Inductive prediction: each query is normalised with its task's support-set statistics.

A learner's ``predict`` normalises a query batch with that batch's own BatchNorm statistics
(MAML's transductive setting, that of the papers' numbers), so a query's output depends on the
other queries. Here the support set's statistics are recorded once at adaptation, under the
adapted state (fast weights, or the encoder of a metric learner), by running ``predict`` on the
support inputs; queries are then normalised with them (:mod:`metalearn.nn.normalization`), one
image at a time, so that a query's output is a function of that image and the support set
only, to the bit (CPU kernels block a batch differently by its size, which moves the rounding).
Works for any :class:`~metalearn.algorithms.base.Learner` whose BatchNorm layers are
:class:`~metalearn.nn.normalization.TaskBatchNorm` (the others have nothing to record). Must not
import ``metalearn.data`` or ``metalearn.training``.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

from metalearn.algorithms.base import Learner
from metalearn.nn.normalization import Statistics, fixed_statistics, recording_statistics

__all__ = ["InductiveState", "adapt_inductive", "predict_inductive"]

StateT = TypeVar("StateT")


@dataclass(frozen=True)
class InductiveState(Generic[StateT]):
    """A task state and the support set's BatchNorm statistics under it.

    Attributes:
        state: what ``learner.adapt`` returned.
        statistics: per BatchNorm layer, the support set's ``(mean, inv_std)``; ``None`` for
            an empty support set (a fine-tuned head), whose queries are then each normalised
            with their own statistics (still a function of the query alone).
    """

    state: StateT
    statistics: Statistics | None


def adapt_inductive(
    learner: Learner[StateT],
    support_x: Tensor,
    support_y: Tensor,
    n_way: int | None,
    **adapt_kwargs: Any,
) -> InductiveState[StateT]:
    """Adapt to the support set and record its statistics under the adapted state.

    ``adapt_kwargs`` go to ``learner.adapt`` (e.g. ``steps`` of a gradient learner).
    """
    state = learner.adapt(support_x, support_y, n_way, **adapt_kwargs)
    if len(support_x) == 0:  # nothing to record (`metalearn finetune` models keep no support)
        return InductiveState(state, None)
    with recording_statistics(learner) as statistics:
        learner.predict(state, support_x)
    return InductiveState(state, statistics)


def predict_inductive(
    learner: Learner[StateT], state: InductiveState[StateT], query_x: Tensor
) -> Tensor:
    """Return ``learner.predict`` of each query alone, normalised with the support statistics."""
    fixed = (
        nullcontext() if state.statistics is None else fixed_statistics(learner, state.statistics)
    )
    with fixed:
        outputs = [learner.predict(state.state, query_x[i : i + 1]) for i in range(len(query_x))]
    return torch.cat(outputs)
