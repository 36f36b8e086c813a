"""How a learner runs a meta-batch: one ``vmap`` call, chunks of tasks, or tasks on threads.

This is execution strategy only; the maths is :class:`~metalearn.algorithms.base.Learner`'s
per-task ``episode_loss`` (training) or ``predict(adapt(...))`` (meta-test), and every path here
returns what the reference loop over tasks returns (the tests check it in float64).

* :func:`tasks_per_chunk` decides, from the learner's settings and the tasks' size, how many
  tasks go in one ``vmap`` call (``None``: all of them; 1: one task at a time, without ``vmap``).
* :func:`map_tasks` runs a per-task function over a stacked batch that way and stacks the
  results: one-task chunks run on :func:`threads_for_tasks` threads at once, each with its own
  replica of the learner's modules and one intra-op thread.
* :func:`batched_meta_loss` is :func:`map_tasks` over ``episode_loss`` that takes each chunk's
  meta-gradient as soon as the chunk is done (only one chunk's graph is alive at a time) and
  returns a loss that hands that gradient out on ``backward`` (:class:`_PrecomputedGradient`).

The measurements behind the defaults are in BENCHMARKS.md ("MAML throughput"). Must not import
``metalearn.data`` or ``metalearn.training``.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn
from torch.func import vmap

from metalearn.episode import BATCH_DIMS, Episode
from metalearn.types import Metrics

__all__ = ["TaskResult", "batched_meta_loss", "map_tasks", "tasks_per_chunk", "threads_for_tasks"]

TaskResult = tuple[Tensor, Metrics]
"""What a per-task function returns (a loss or outputs, and metrics), and, stacked over tasks
(leading dim), what :func:`map_tasks` returns."""


class BatchedLearner(Protocol):
    """The settings a learner exposes to choose its execution strategy (``Learner`` has them)."""

    chunk_size: int | None
    chunk_numel: int | None
    thread_numel: int | None
    task_threads: int | None

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The parameters (the meta-gradient is taken with respect to those needing grad)."""

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """The buffers (shared, like the parameters, by the threads' replicas)."""


LearnerT = TypeVar("LearnerT", bound=BatchedLearner)
TaskFn = Callable[[LearnerT, Episode], TaskResult]
# a chunk's per-task values, metrics and share of the meta-gradient (None when not eager)
_ChunkResult = tuple[Tensor, Metrics, tuple[Tensor | None, ...] | None]


def threads_for_tasks(learner: BatchedLearner) -> int:
    """Return ``learner.task_threads``, or torch's intra-op thread count when it is ``None``."""
    return torch.get_num_threads() if learner.task_threads is None else learner.task_threads


def tasks_per_chunk(learner: BatchedLearner, batch: Episode) -> int | None:
    """Return the tasks per ``vmap`` call for ``batch`` (``None``: all; 1: one by one).

    ``chunk_size`` when set. Otherwise, with ``chunk_numel`` set: tasks with at least
    ``thread_numel`` input elements (support and query) run one at a time, on several threads
    when there are (CPU only: threads are for CPU ops); smaller tasks go ``chunk_numel // numel``
    to a ``vmap`` call (tiny tasks, or tasks on an accelerator, all at once).
    """
    if learner.chunk_size is not None or learner.chunk_numel is None:
        return learner.chunk_size
    numel = (batch.support_x[0].numel() + batch.query_x[0].numel()) if batch.is_batched else 1
    on_cpu = batch.support_x.device.type == "cpu"
    large = learner.thread_numel is not None and numel >= learner.thread_numel
    if on_cpu and large and threads_for_tasks(learner) > 1:
        return 1
    return max(1, learner.chunk_numel // max(1, numel))


def map_tasks(learner: LearnerT, task_fn: TaskFn[LearnerT], batch: Episode) -> TaskResult:
    """Return ``task_fn(learner, episode)`` of every task of ``batch``, stacked (leading dim).

    Runs the tasks as :func:`tasks_per_chunk` says; graphs to the parameters are kept (nothing
    is differentiated early). Equals ``torch.stack`` of the loop over ``batch.unbind()``.
    """
    chunk_size = tasks_per_chunk(learner, batch)
    if chunk_size is None or chunk_size >= batch.n_tasks:
        return _vmap(task_fn, learner, batch)
    results = _run_chunks(learner, task_fn, _chunks(batch, chunk_size), None)
    return _cat([(values, metrics) for values, metrics, _ in results])


def batched_meta_loss(
    learner: LearnerT, task_loss: TaskFn[LearnerT], batch: Episode
) -> tuple[Tensor, Metrics]:
    """Return the mean of ``task_loss`` over ``batch`` and the mean metrics, batched.

    In chunks (see :func:`tasks_per_chunk`), each chunk's share of the meta-gradient is taken
    right away, so only the running chunks' graphs are alive; the returned loss then carries
    the summed gradient for the learner's parameters (a later ``backward`` hands it out, scaled
    by the incoming gradient), not a graph to other tensors nor a second-order graph.
    """
    chunk_size = tasks_per_chunk(learner, batch)
    if chunk_size is None or chunk_size >= batch.n_tasks:
        losses, metrics = _vmap(task_loss, learner, batch)
        return losses.mean(), {k: v.mean() for k, v in metrics.items()}
    params = [p for p in learner.parameters() if p.requires_grad]
    eager = torch.is_grad_enabled() and bool(params)
    gradient = partial(_chunk_gradient, params, batch.n_tasks) if eager else None
    results = _run_chunks(learner, task_loss, _chunks(batch, chunk_size), gradient)
    grads: list[Tensor | None] = [None] * len(params)  # None: unused, as backward leaves it
    for _, _, chunk_grads in results:
        if chunk_grads is not None:
            grads = [
                total if grad is None else grad if total is None else total + grad
                for total, grad in zip(grads, chunk_grads, strict=True)
            ]
    losses, metrics = _cat([(values, metrics) for values, metrics, _ in results])
    loss = losses.mean()
    if eager:
        loss = _PrecomputedGradient.apply(loss, grads, *params)
    return loss, {k: v.mean() for k, v in metrics.items()}


def _vmap(task_fn: TaskFn[LearnerT], learner: LearnerT, batch: Episode) -> TaskResult:
    result: TaskResult = vmap(
        partial(task_fn, learner), in_dims=(BATCH_DIMS,), randomness="different"
    )(batch)
    return result


def _chunks(batch: Episode, chunk_size: int) -> list[Episode]:
    def part(t: Tensor, start: int) -> Tensor:
        return t[start : start + chunk_size]

    return [
        Episode(
            part(batch.support_x, start),
            part(batch.support_y, start),
            part(batch.query_x, start),
            part(batch.query_y, start),
            batch.n_way,
        )
        for start in range(0, batch.n_tasks, chunk_size)
    ]


def _cat(results: Sequence[TaskResult]) -> TaskResult:
    names = results[0][1].keys()
    values = torch.cat([v for v, _ in results])
    return values, {k: torch.cat([m[k] for _, m in results]) for k in names}


def _chunk_gradient(
    params: Sequence[Tensor], n_tasks: int, losses: Tensor
) -> tuple[Tensor | None, ...] | None:
    """Return the chunk's share of the gradient of the mean loss (``None``: no graph)."""
    if not losses.requires_grad:
        return None
    return torch.autograd.grad(losses.sum() / n_tasks, params, allow_unused=True)


Gradient = Callable[[Tensor], tuple[Tensor | None, ...] | None]


def _run_chunk(
    learner: LearnerT, task_fn: TaskFn[LearnerT], chunk: Episode, gradient: Gradient | None
) -> _ChunkResult:
    """Return one chunk's values, metrics and (with ``gradient``) its meta-gradient share."""
    if chunk.n_tasks == 1:  # one task needs no vmap, whose batching rules add copies
        value, task_metrics = task_fn(learner, chunk.unbind()[0])
        values, metrics = value[None], {k: v[None] for k, v in task_metrics.items()}
    else:
        values, metrics = _vmap(task_fn, learner, chunk)
    grads = None if gradient is None else gradient(values)
    if grads is None:
        return values, metrics, None
    return values.detach(), metrics, grads


def _run_chunks(
    learner: LearnerT, task_fn: TaskFn[LearnerT], chunks: list[Episode], gradient: Gradient | None
) -> list[_ChunkResult]:
    """Run the chunks in order, or one-task chunks on several threads; results in task order."""
    one_task = chunks[0].n_tasks == 1
    threads = min(threads_for_tasks(learner), len(chunks)) if one_task else 1
    if threads <= 1:
        return [_run_chunk(learner, task_fn, chunk, gradient) for chunk in chunks]
    # each thread adapts with its own replica, whose modules functional_call may swap
    # parameters in without racing the other threads; the parameters are shared
    replicas = [_replica(learner) for _ in range(threads)]
    grad_enabled = torch.is_grad_enabled()  # grad mode is per thread

    def run_share(k: int) -> list[_ChunkResult]:
        with torch.set_grad_enabled(grad_enabled):
            return [_run_chunk(replicas[k], task_fn, c, gradient) for c in chunks[k::threads]]

    with _intra_op_threads(1):
        # this thread runs the first share: one malloc arena fewer holding a task's peak
        others = [_task_pool(threads - 1).submit(run_share, k) for k in range(1, threads)]
        try:
            first = run_share(0)
        finally:
            wait(others)  # never leave a share running after an error
        shares = [first] + [share.result() for share in others]
    return [shares[i % threads][i // threads] for i in range(len(chunks))]


def _replica(learner: LearnerT) -> LearnerT:
    """Return a copy of ``learner``'s modules that shares its parameters and buffers."""
    memo = {id(t): t for t in itertools.chain(learner.parameters(), learner.buffers())}
    return copy.deepcopy(learner, memo)


_TASK_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _task_pool(workers: int) -> ThreadPoolExecutor:
    """Return this process's pool of ``workers`` task threads, created on first use.

    The threads live on between meta-iterations because glibc gives every new thread a malloc
    arena, and each arena keeps the memory of the largest task it served (BENCHMARKS.md).
    Keyed by process id: a forked child has the pool object but not its threads.
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
