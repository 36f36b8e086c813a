"""The Learner interface shared by every algorithm, gradient-based and metric-based.

A learner adapts to a support set (returning a task state: fast weights, prototypes, ...) and
predicts for query inputs from that state. ``episode_loss`` and ``meta_loss`` build the
meta-training objective from those two, so that one training loop and one evaluation routine
serve every algorithm. Must not import ``metalearn.data`` or ``metalearn.training``.
"""

from __future__ import annotations

import copy
import itertools
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

from metalearn.episode import BATCH_DIMS, Episode
from metalearn.types import Metrics
from metalearn.utils.stats import accuracy

__all__ = ["Learner", "require_n_way"]

StateT = TypeVar("StateT")
# a chunk's per-task losses, metrics and share of the meta-gradient (None when not eager)
_ChunkResult = tuple[Tensor, Metrics, tuple[Tensor | None, ...] | None]


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
        vectorize: the default path of :meth:`meta_loss` (``True``: ``vmap`` over tasks;
            ``False``: a Python loop). Each algorithm sets it from measurement.
        chunk_size: tasks per ``vmap`` call in the batched path (1: one task at a time,
            without ``vmap``); ``None`` maps the whole meta-batch at once, unless
            :meth:`tasks_per_chunk` is overridden to choose from the batch. With chunks, each
            chunk's meta-gradient is taken as soon as the chunk is done, so only one chunk's
            graph is held in memory; the returned loss then carries that gradient for the
            learner's own parameters (a later ``backward`` hands it out, scaled by the incoming
            gradient), not a graph to other tensors that require grad, nor a second-order graph
            (``create_graph=True``).
        task_threads: when chunks hold one task, the threads that run tasks concurrently, each
            with one intra-op thread (1: tasks in turn, with torch's intra-op threads;
            ``None``: as many as torch's intra-op threads). ``torch.func`` transforms may not
            run in two threads at once, so chunks of several tasks (``vmap``) run in turn.
    """

    vectorize: bool = True
    chunk_size: int | None = None
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

    def meta_loss(self, batch: Episode, *, vectorize: bool | None = None) -> tuple[Tensor, Metrics]:
        """Return the mean episode loss and metrics over a stacked meta-batch.

        Args:
            batch: a stacked :class:`Episode` (leading task dim), or a single episode.
            vectorize: ``True`` to ``vmap`` over tasks, ``False`` for the reference Python loop;
                ``None`` takes the learner's measured default (:attr:`vectorize`).
        """
        if not batch.is_batched:
            return self.episode_loss(batch)
        if self.vectorize if vectorize is None else vectorize:
            chunk_size = self.tasks_per_chunk(batch)
            if chunk_size is not None and chunk_size < batch.n_tasks:
                return self._chunked_meta_loss(batch, chunk_size)
            losses, metrics = vmap(
                self.episode_loss, in_dims=(BATCH_DIMS,), randomness="different"
            )(batch)
            return losses.mean(), {k: v.mean() for k, v in metrics.items()}
        results = [self.episode_loss(episode) for episode in batch.unbind()]
        losses = torch.stack([loss for loss, _ in results])
        names = results[0][1].keys()
        return losses.mean(), {k: torch.stack([m[k] for _, m in results]).mean() for k in names}

    def tasks_per_chunk(self, batch: Episode) -> int | None:
        """Return the tasks per ``vmap`` call for ``batch`` (``None``: all); :attr:`chunk_size`."""
        return self.chunk_size

    def _chunked_meta_loss(self, batch: Episode, chunk_size: int) -> tuple[Tensor, Metrics]:
        """``vmap`` over chunks of tasks, taking each chunk's meta-gradient right away.

        Only the running chunks' autograd graphs are alive at a time. One-task chunks run on
        :meth:`threads_for_tasks` threads at once, each with one intra-op thread; results are
        combined in task order, so they do not depend on the scheduling of the threads. The
        returned loss carries the summed meta-gradient with respect to ``self.parameters()``
        (see :class:`_PrecomputedGradient`).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        eager = torch.is_grad_enabled() and bool(params)
        n_tasks = batch.n_tasks
        chunks = [
            Episode(
                batch.support_x[start : start + chunk_size],
                batch.support_y[start : start + chunk_size],
                batch.query_x[start : start + chunk_size],
                batch.query_y[start : start + chunk_size],
                batch.n_way,
            )
            for start in range(0, n_tasks, chunk_size)
        ]

        threads = min(self.threads_for_tasks(), len(chunks)) if chunk_size == 1 else 1
        if threads > 1:
            # each thread adapts with its own replica, whose modules functional_call may swap
            # parameters in without racing the other threads; the parameters are shared
            replicas = [self._replica() for _ in range(threads)]
            grad_enabled = torch.is_grad_enabled()  # grad mode is per thread

            def run_share(k: int) -> list[_ChunkResult]:
                with torch.set_grad_enabled(grad_enabled):
                    return [
                        replicas[k]._run_chunk(c, params, eager, n_tasks)
                        for c in chunks[k::threads]
                    ]

            with _intra_op_threads(1):
                # this thread runs the first share: one malloc arena fewer holding a task's peak
                others = [_task_pool(threads - 1).submit(run_share, k) for k in range(1, threads)]
                try:
                    first = run_share(0)
                finally:
                    wait(others)  # never leave a share running after an error
                shares = [first] + [share.result() for share in others]
            results = [shares[i % threads][i // threads] for i in range(len(chunks))]
        else:
            results = [self._run_chunk(chunk, params, eager, n_tasks) for chunk in chunks]
        grads: list[Tensor | None] = [None] * len(params)  # None: unused, as backward leaves it
        for _, _, chunk_grads in results:
            if chunk_grads is not None:
                grads = [
                    total if grad is None else grad if total is None else total + grad
                    for total, grad in zip(grads, chunk_grads, strict=True)
                ]
        loss = torch.cat([losses for losses, _, _ in results]).mean()
        if eager:
            loss = _PrecomputedGradient.apply(loss, grads, *params)
        names = results[0][1].keys()
        return loss, {k: torch.cat([m[k] for _, m, _ in results]).mean() for k in names}

    def _run_chunk(
        self, chunk: Episode, params: Sequence[Tensor], eager: bool, n_tasks: int
    ) -> _ChunkResult:
        """Return one chunk's losses, metrics and (when ``eager``) its meta-gradient share."""
        if chunk.n_tasks == 1:  # one task needs no vmap, whose batching rules add copies
            task_loss, task_metrics = self.episode_loss(chunk.unbind()[0])
            losses = task_loss[None]
            metrics = {k: v[None] for k, v in task_metrics.items()}
        else:
            losses, metrics = vmap(
                self.episode_loss, in_dims=(BATCH_DIMS,), randomness="different"
            )(chunk)
        if not (eager and losses.requires_grad):
            return losses, metrics, None
        grads = torch.autograd.grad(losses.sum() / n_tasks, params, allow_unused=True)
        return losses.detach(), metrics, grads

    def threads_for_tasks(self) -> int:
        """Return :attr:`task_threads`, or torch's intra-op thread count when it is ``None``."""
        return torch.get_num_threads() if self.task_threads is None else self.task_threads

    def _replica(self) -> Learner[StateT]:
        """Return a copy of this learner's modules that shares its parameters and buffers."""
        memo = {id(t): t for t in itertools.chain(self.parameters(), self.buffers())}
        return copy.deepcopy(self, memo)


_TASK_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _task_pool(workers: int) -> ThreadPoolExecutor:
    """Return this process's pool of ``workers`` task threads, created on first use.

    The threads live on between meta-iterations because glibc gives every new thread a malloc
    arena, and each arena keeps the memory of the largest task it served (throwaway
    measurements on the heavy throughput workload: peak RSS 0.56-0.57 GB with a new pool per
    call, 0.48-0.49 GB with this pool). Keyed by process id: a forked child has the pool
    object but not its threads.
    """
    key = (os.getpid(), workers)
    if key not in _TASK_POOLS:
        _TASK_POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix="metalearn-task")
    return _TASK_POOLS[key]


@contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """Set torch's (process-wide) intra-op thread count to ``n`` for the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _PrecomputedGradient(torch.autograd.Function):
    """Identity on a detached loss whose backward hands out gradients computed beforehand."""

    @staticmethod
    def forward(ctx: Any, loss: Tensor, grads: list[Tensor | None], *params: Tensor) -> Tensor:
        ctx.grads = grads
        return loss.clone()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        return (None, None, *(None if g is None else grad_output * g for g in ctx.grads))
