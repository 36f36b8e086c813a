"""The Learner interface shared by every algorithm, gradient-based and metric-based.

A learner adapts to a support set (returning a task state: fast weights, prototypes, ...) and
predicts for query inputs from that state. ``episode_loss`` and ``meta_loss`` build the
meta-training objective from those two, so that one training loop and one evaluation routine
serve every algorithm. ``meta_loss``'s loop over tasks is the reference; how the same tasks
run together (``vmap``, chunks, threads) is :mod:`metalearn.algorithms.batching`. Must not
import ``metalearn.data`` or ``metalearn.training``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metalearn.algorithms.batching import batched_meta_loss
from metalearn.episode import Episode
from metalearn.types import Metrics
from metalearn.utils.stats import accuracy

__all__ = ["Learner", "require_n_way"]

StateT = TypeVar("StateT")


def require_n_way(n_way: int | None) -> int:
    """Return ``n_way``, or raise a clear error for regression episodes (``n_way=None``)."""
    if n_way is None:
        raise ValueError(
            "this learner classifies and needs n_way; got a regression episode (n_way=None)"
        )
    return n_way


class Learner(nn.Module, ABC, Generic[StateT]):
    """A meta-learning algorithm: how to adapt to a support set and predict for queries.

    Subclasses implement :meth:`adapt` and :meth:`predict`. The query loss is cross-entropy on
    logits for classification episodes and mean squared error for regression (``n_way=None``).

    Attributes:
        batched: the default path of :meth:`meta_loss` and of the meta-test (``True``: tasks
            run together, see :mod:`metalearn.algorithms.batching`; ``False``: a Python loop).
            Each algorithm sets it from measurement.
        chunk_size: tasks per ``vmap`` call in the batched path (1: one task at a time,
            without ``vmap``); ``None``: chosen from :attr:`chunk_numel`, or all at once. With
            chunks, each chunk's meta-gradient is taken as soon as the chunk is done, so only
            one chunk's graph is held in memory; the returned loss then carries that gradient
            for the learner's own parameters, not a graph (nor a second-order graph).
        chunk_numel: input elements per ``vmap`` call when :attr:`chunk_size` is ``None``
            (``None``: the whole meta-batch at once).
        thread_numel: input elements per task from which tasks run one at a time, each on one
            of :attr:`task_threads` threads (``None``: never).
        task_threads: when chunks hold one task, the threads that run tasks concurrently, each
            with one intra-op thread (1: tasks in turn, with torch's intra-op threads;
            ``None``: as many as torch's intra-op threads). ``torch.func`` transforms may not
            run in two threads at once, so chunks of several tasks (``vmap``) run in turn.
    """

    batched: bool = True
    chunk_size: int | None = None
    chunk_numel: int | None = None
    thread_numel: int | None = None
    task_threads: int | None = 1

    @abstractmethod
    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int | None) -> StateT:
        """Return the task-specific state learned from one task's support set.

        Args:
            support_x: ``(n_support, *x_shape)`` inputs.
            support_y: ``(n_support,)`` labels in ``[0, n_way)``, or ``(n_support, y_dim)``
                regression targets.
            n_way: number of classes; ``None`` for regression.
        """

    @abstractmethod
    def predict(self, state: StateT, query_x: Tensor) -> Tensor:
        """Return logits ``(n_query, n_way)``, or predictions ``(n_query, y_dim)`` (regression)."""

    def query_loss(self, output: Tensor, query_y: Tensor, n_way: int | None) -> Tensor:
        """Cross-entropy on logits (classification) or mean squared error (regression)."""
        if n_way is None:
            return F.mse_loss(output, query_y)
        return F.cross_entropy(output, query_y)

    def metrics(self, output: Tensor, query_y: Tensor, loss: Tensor, n_way: int | None) -> Metrics:
        """Return the detached metrics of one episode: ``loss`` and ``accuracy`` or ``mse``."""
        if n_way is None:
            return {"loss": loss.detach(), "mse": loss.detach()}
        return {"loss": loss.detach(), "accuracy": accuracy(output.detach(), query_y)}

    def episode_loss(self, episode: Episode) -> tuple[Tensor, Metrics]:
        """Adapt on one episode's support set and return the query loss and metrics."""
        state = self.adapt(episode.support_x, episode.support_y, episode.n_way)
        output = self.predict(state, episode.query_x)
        loss = self.query_loss(output, episode.query_y, episode.n_way)
        return loss, self.metrics(output, episode.query_y, loss, episode.n_way)

    def meta_loss(self, batch: Episode, *, batched: bool | None = None) -> tuple[Tensor, Metrics]:
        """Return the mean episode loss and metrics over a stacked meta-batch.

        Args:
            batch: a stacked :class:`Episode` (leading task dim), or a single episode.
            batched: ``True`` runs the tasks together (:mod:`metalearn.algorithms.batching`:
                ``vmap``, chunks or task threads, as :attr:`chunk_size` and the like say),
                ``False`` runs this reference loop over the tasks; ``None`` takes
                :attr:`batched`. Both give the same loss, metrics and meta-gradient.
        """
        if not batch.is_batched:
            return self.episode_loss(batch)
        if self.batched if batched is None else batched:
            return batched_meta_loss(self, _episode_loss, batch)
        results = [self.episode_loss(episode) for episode in batch.unbind()]
        losses = torch.stack([loss for loss, _ in results])
        names = results[0][1].keys()
        return losses.mean(), {k: torch.stack([m[k] for _, m in results]).mean() for k in names}


def _episode_loss(learner: Learner[StateT], episode: Episode) -> tuple[Tensor, Metrics]:
    """``learner.episode_loss(episode)``, as a per-task function of the batching module."""
    return learner.episode_loss(episode)
