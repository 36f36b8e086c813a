"""Data-parallel meta-training on ``torch.distributed``, as launched by ``torchrun``.

Every rank draws the same full meta-batch (the task stream depends only on its seed and how
many batches it has given) and keeps a contiguous slice of it: rank ``r`` of ``W`` takes tasks
``[r*B/W, (r+1)*B/W)``. Each rank's meta-loss is the mean over its slice, so the mean over
ranks of the slices' meta-gradients is the full batch's; they are averaged with one
all-reduce over one flat buffer, and every rank then takes the same optimizer step from the
same state. Rank 0 alone writes files, logs and draws the progress bar.

:class:`DataParallel` is the strategy object :func:`~metalearn.training.loop.meta_train` takes;
without one the loop is the plain single-process loop. Must not import ``metalearn.data`` or
``metalearn.rl``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from metalearn.episode import Episode
from metalearn.errors import ConfigError
from metalearn.training.evaluation import EvalResult, EvaluatedLearner, meta_test
from metalearn.training.objective import MetaObjective, meta_update_hook
from metalearn.types import Metrics

__all__ = [
    "BACKEND_ENV",
    "DataParallel",
    "elastic_restarts",
    "launched_by_torchrun",
    "restart_count",
]

BACKEND_ENV = "METALEARN_DIST_BACKEND"
"""Environment variable that overrides the backend (default: ``nccl`` on CUDA, else ``gloo``)."""


def launched_by_torchrun() -> bool:
    """Whether this process is a worker of ``torchrun`` (its rendezvous variables are set)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def restart_count() -> int:
    """How many times ``torchrun`` has restarted this worker group (0 on the first attempt)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def _init_process_group(backend: str) -> None:
    """``init_process_group`` from torchrun's variables, keyed by the restart count.

    By default torchrun hands restarted workers the TCP store of the failed ones, which still
    holds their addresses (PyTorch issue 135712): without keys of its own, gloo would connect
    to the dead workers. The restart count is the same for every worker of one host, so this
    covers restarts on one host; across hosts, whose agents count restarts apart, start
    torchrun with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``: every restart then gets a new store.
    """
    store, rank, world_size = next(dist.rendezvous("env://"))
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        store = dist.PrefixStore(f"metalearn-attempt-{restart_count()}", store)
    timeout = timedelta(minutes=30)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


def elastic_restarts() -> bool:
    """Whether ``torchrun`` restarts failed workers (``--max-restarts`` above 0)."""
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0


class DataParallel:
    """Splits each meta-batch over the ranks of a process group and averages what they compute.

    Args:
        group: the process group (default: the global one, which must be initialised).
    """

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        nccl = dist.get_backend(group) == "nccl"  # NCCL reduces CUDA tensors only
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else None

    @classmethod
    def from_env(cls, device: str | torch.device = "cpu") -> DataParallel | None:
        """Join ``torchrun``'s process group; ``None`` when not launched by ``torchrun``.

        The backend is ``$METALEARN_DIST_BACKEND`` if set, else ``nccl`` for a CUDA ``device``
        and ``gloo`` otherwise; with ``nccl``, each process uses GPU ``$LOCAL_RANK``.
        """
        if not launched_by_torchrun():
            return None
        if not dist.is_initialized():
            cuda = torch.device(device).type == "cuda"
            backend = os.environ.get(BACKEND_ENV) or ("nccl" if cuda else "gloo")
            if backend not in ("gloo", "nccl", "mpi", "ucc"):
                raise ConfigError(f"{BACKEND_ENV}={backend!r} is not gloo, nccl, mpi or ucc")
            if cuda:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            _init_process_group(backend)
        return cls()

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes files and logs."""
        return self.rank == 0

    def part(self, n: int) -> range:
        """This rank's contiguous share of ``n`` items (sizes differ by at most one)."""
        return range(self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size)

    def check_meta_batch_size(self, meta_batch_size: int) -> None:
        """Raise ``ConfigError`` unless the meta-batch splits evenly over the ranks."""
        if meta_batch_size % self.world_size:
            raise ConfigError(
                f"meta_batch_size={meta_batch_size} is not divisible by the {self.world_size} "
                "processes; choose a multiple of the number of processes"
            )

    def setup(self, objective: MetaObjective, meta_batch_size: int) -> None:
        """Check the meta-batch splits evenly, and start every rank from rank 0's parameters.

        Raises:
            ConfigError: if ``meta_batch_size`` is not a multiple of the world size, or the
                objective takes its own outer step without a data-parallel hook.
        """
        self.check_meta_batch_size(meta_batch_size)
        if meta_update_hook(objective) is not None:
            if not hasattr(objective, "all_reduce_mean"):
                raise ConfigError(
                    f"{type(objective).__name__} takes its own outer step and has no "
                    "all_reduce_mean hook, so it cannot train on several processes"
                )
            setattr(objective, "all_reduce_mean", self.all_reduce_mean)  # noqa: B010
        with torch.no_grad():  # state_dict's tensors share the parameters' and buffers' memory
            for tensor in objective.state_dict().values():
                if isinstance(tensor, Tensor):
                    dist.broadcast(tensor, 0, group=self.group)

    def shard(self, batch: Any) -> Any:
        """Return this rank's slice of a meta-batch (a stacked :class:`Episode` or a sequence)."""
        if isinstance(batch, Episode):
            part = self.part(batch.n_tasks)
            cut = slice(part.start, part.stop)
            return Episode(
                batch.support_x[cut],
                batch.support_y[cut],
                batch.query_x[cut],
                batch.query_y[cut],
                batch.n_way,
            )
        if isinstance(batch, Sequence):
            part = self.part(len(batch))
            return batch[part.start : part.stop]
        raise TypeError(f"cannot split a meta-batch of type {type(batch).__name__} over ranks")

    @contextmanager
    def rank_rng(self) -> Iterator[None]:
        """Give this rank a torch random stream of its own for one step, then the shared one back.

        Between steps every rank holds the same global generator state, so rank 0's
        checkpoint resumes every rank exactly. Within a step, rank ``r`` draws from a
        generator seeded with a number drawn from that shared state, plus ``r``: the ranks'
        tasks get independent noise (Siamese pairs, RL rollouts), not copies of one another's.
        """
        seed = int(torch.randint(0, 2**62, ()).item())  # advances the shared state alike
        devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + self.rank)
            yield

    def all_reduce_gradients(self, params: Iterable[Tensor]) -> None:
        """Replace each parameter's gradient by its mean over the ranks, in one all-reduce.

        Parameters without a gradient (``None``) are left without one; they must be the same
        on every rank (they are: which parameters a learner uses does not depend on the data).
        """
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        bucket = self.all_reduce_mean(torch.cat([g.reshape(-1) for g in grads]))
        for grad, chunk in zip(grads, bucket.split([g.numel() for g in grads]), strict=True):
            grad.copy_(chunk.view_as(grad))

    def all_reduce_mean(self, tensor: Tensor) -> Tensor:
        """Return the mean of ``tensor`` over the ranks (a new tensor; no gradient flows)."""
        out = tensor.detach().to(self.device or tensor.device, copy=True)
        dist.all_reduce(out, group=self.group)
        out /= self.world_size
        return out.to(tensor.device)

    def reduce_metrics(self, metrics: Mapping[str, Tensor | float]) -> Metrics:
        """Average scalar metrics over the ranks, in one all-reduce (names must match)."""
        names = sorted(metrics)
        if not names:
            return {}
        values = [torch.as_tensor(metrics[name]).detach() for name in names]
        device = values[0].device
        stacked = torch.stack([v.to(device, torch.float64).reshape(()) for v in values])
        means = self.all_reduce_mean(stacked)
        return {name: means[i] for i, name in enumerate(names)}

    def gather(self, values: Tensor) -> Tensor:
        """Concatenate every rank's 1-d ``values`` in rank order (on the CPU)."""
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, values.detach().cpu(), group=self.group)
        return torch.cat(parts)

    def meta_test(
        self, learner: EvaluatedLearner, episodes: Iterable[Episode], n: int, **kwargs: Any
    ) -> EvalResult:
        """``meta_test`` on the ``n`` ``episodes``, split over the ranks.

        Each rank scores its contiguous share and every rank gets all the values, in episode
        order, so the result equals a single process's.
        """
        if n < self.world_size:  # some rank would have nothing to score: every rank does all
            return meta_test(learner, episodes, **kwargs)
        part = self.part(n)
        mine = meta_test(learner, itertools.islice(episodes, part.start, part.stop), **kwargs)
        by_steps = {k: self.gather(v) for k, v in mine.by_steps.items()}
        return EvalResult(mine.metric, self.gather(mine.values), by_steps)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        dist.barrier(group=self.group)

    def close(self) -> None:
        """Leave the process group (after the last collective call)."""
        if dist.is_initialized():
            dist.destroy_process_group()

    def broadcast_object(self, obj: Any) -> Any:
        """Return rank 0's ``obj`` on every rank (picklable objects)."""
        box = [obj]
        dist.broadcast_object_list(box, 0, group=self.group)
        return box[0]
