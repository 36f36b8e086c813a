"""N-way K-shot episodes from a class-indexed dataset, by tensor indexing only."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metalearn.data.base import ClassDataset
from metalearn.data.stream import EpisodeStream, check_count
from metalearn.episode import Episode
from metalearn.errors import EpisodeSpecError

__all__ = ["TaskSampler"]


class TaskSampler(EpisodeStream):
    """Samples N-way K-shot episodes from a :class:`~metalearn.data.ClassDataset`.

    Each task draws ``n_way`` distinct classes in random order and gives the ``j``-th of them
    label ``j``, so the class-to-label map is a uniformly random permutation of
    ``0..n_way-1`` in every episode and a learner cannot memorise class identities. Within a
    class, ``n_shot + n_query`` distinct examples are drawn; the first ``n_shot`` go to the
    support set, so no example is in both sets. Both sets are grouped by label:
    ``support_y = [0]*n_shot + [1]*n_shot + ...``.

    Sampling is tensor indexing over the dataset's one tensor (no DataLoader), driven by a
    ``torch.Generator``: the same seed gives the same episodes in any process, and
    :meth:`state_dict` / :meth:`load_state_dict` resume the stream exactly. :meth:`episodes`
    gives a fixed evaluation set that does not disturb the training stream.

    Args:
        dataset: the classes to sample from.
        n_way: classes per task.
        n_shot: support examples per class.
        n_query: query examples per class.
        seed: seed of the training stream and the default evaluation set.

    Raises:
        EpisodeSpecError: if ``n_way``, ``n_shot`` or ``n_query`` is below 1, ``n_way`` exceeds
            the number of classes, or a class holds fewer than ``n_shot + n_query`` examples
            (the message names the class).

    Examples:
        >>> from metalearn.data import TaskSampler, gaussian_clusters
        >>> sampler = TaskSampler(gaussian_clusters(10, 8, 4), n_way=5, n_shot=1, n_query=3)
        >>> batch = sampler.sample_batch(32)
        >>> batch.support_x.shape, batch.query_y.shape
        (torch.Size([32, 5, 4]), torch.Size([32, 15]))
    """

    def __init__(
        self, dataset: ClassDataset, n_way: int, n_shot: int, n_query: int, *, seed: int = 0
    ) -> None:
        super().__init__(seed=seed)
        self.n_way = check_count("n_way", n_way, 1)
        self.n_shot = check_count("n_shot", n_shot, 1)
        self.n_query = check_count("n_query", n_query, 1)
        self.dataset = dataset
        self._sizes = dataset.class_sizes.long()
        _check_dataset(dataset, self._sizes, n_way, n_shot + n_query)
        self._max_size = int(self._sizes.max())
        self._equal_sizes = bool((self._sizes == self._max_size).all())
        self._support_y = torch.arange(n_way).repeat_interleave(n_shot)
        self._query_y = torch.arange(n_way).repeat_interleave(n_query)

    def __repr__(self) -> str:
        return (
            f"TaskSampler({self.n_way}-way {self.n_shot}-shot, {self.n_query} queries per "
            f"class, {self.dataset.n_classes} classes, seed={self.seed})"
        )

    def _spec(self) -> dict[str, Any]:
        return {
            "family": "classification",
            "n_way": self.n_way,
            "n_shot": self.n_shot,
            "n_query": self.n_query,
            "n_classes": self.dataset.n_classes,
        }

    def _draw(self, n_tasks: int, generator: torch.Generator) -> Episode:
        n_classes = self.dataset.n_classes
        # The top-n_way of i.i.d. uniforms is a uniformly random ordered subset of the classes.
        keys = torch.rand(n_tasks, n_classes, generator=generator)
        classes = keys.topk(self.n_way, dim=1).indices  # (n_tasks, n_way)
        indices = self._draw_indices(classes, generator)  # (n_tasks, n_way, n_shot + n_query)
        # Two gathers write each set contiguously: slicing one gather would cost another copy.
        support = self.dataset.gather(classes, indices[..., : self.n_shot])
        query = self.dataset.gather(classes, indices[..., self.n_shot :])
        support = support.reshape(n_tasks, self.n_way * self.n_shot, *support.shape[3:])
        query = query.reshape(n_tasks, self.n_way * self.n_query, *query.shape[3:])
        return Episode(
            support,
            self._support_y.expand(n_tasks, -1).clone(),
            query,
            self._query_y.expand(n_tasks, -1).clone(),
            self.n_way,
        )

    def _draw_indices(self, classes: Tensor, generator: torch.Generator) -> Tensor:
        """Return ``n_shot + n_query`` distinct example indices within each drawn class."""
        n_tasks, n_way = classes.shape
        keys = torch.rand(n_tasks, n_way, self._max_size, generator=generator)
        if not self._equal_sizes:
            # Indices past a smaller class's end get key -1, so top-k never picks them.
            too_far = torch.arange(self._max_size) >= self._sizes[classes].unsqueeze(-1)
            keys.masked_fill_(too_far, -1.0)
        return keys.topk(self.n_shot + self.n_query, dim=-1).indices


def _check_dataset(dataset: ClassDataset, sizes: Tensor, n_way: int, needed: int) -> None:
    if n_way > dataset.n_classes:
        raise EpisodeSpecError(
            f"n_way = {n_way} exceeds the {dataset.n_classes} classes of the dataset; "
            f"use n_way <= {dataset.n_classes} or a dataset with more classes"
        )
    small = torch.nonzero(sizes < needed).flatten()
    if small.numel():
        c = int(small[0])
        others = f" (and {small.numel() - 1} more classes)" if small.numel() > 1 else ""
        raise EpisodeSpecError(
            f"class {dataset.class_name(c)!r} has {int(sizes[c])} examples{others}; "
            f"n_shot + n_query = {needed} requires at least {needed}; lower n_shot or n_query "
            "or drop the small classes"
        )
