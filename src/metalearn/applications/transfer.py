"""Transfer learning: batches of labelled images over every class, for plain classifiers.

:class:`ClassBatches` is the task source of Baseline/Baseline++ pretraining and of
``metalearn finetune``: each "task" of the training loop is one image with its class, so a
meta-batch of ``meta_batch_size`` tasks is an ordinary mini-batch (Chen et al. use 16).
"""

from __future__ import annotations

from typing import Any

import torch

from metalearn.algorithms.baseline import LabelledBatch
from metalearn.data.base import ClassDataset
from metalearn.errors import DatasetError

__all__ = ["ClassBatches", "all_examples"]


class ClassBatches:
    """Mini-batches of ``(image, class)`` drawn uniformly over every example of a dataset.

    Examples are drawn with replacement (Chen et al.'s loader shuffles epochs; at their 5
    epochs over Omniglot the difference is immaterial, and the sampler's whole state is one
    generator, which checkpoints exactly).

    Args:
        dataset: the classes; labels are its class ids.
        seed: seed of the draws.
    """

    def __init__(self, dataset: ClassDataset, seed: int = 0) -> None:
        self.dataset = dataset
        sizes = dataset.class_sizes
        if len(sizes) < 2:
            raise DatasetError(f"a classifier needs at least 2 classes; got {len(sizes)}")
        self.ends = sizes.cumsum(0)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.ends)

    def sample_batch(self, n_tasks: int) -> LabelledBatch:
        """Return ``n_tasks`` examples ``x`` ``(n, *shape)`` float32 and their labels ``y``."""
        flat = torch.randint(int(self.ends[-1]), (n_tasks,), generator=self.generator)
        classes = torch.searchsorted(self.ends, flat, right=True)
        starts = self.ends[classes] - self.dataset.class_sizes[classes]
        x = self.dataset.gather(classes, (flat - starts).unsqueeze(-1)).squeeze(1)
        return LabelledBatch(x, classes)

    def sample(self) -> LabelledBatch:
        """Return a batch of one example."""
        return self.sample_batch(1)

    def state_dict(self) -> dict[str, Any]:
        """The draw state, for checkpoints."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.set_state(state["generator"])


def all_examples(dataset: ClassDataset) -> LabelledBatch:
    """Return every example of ``dataset`` with its class id, class by class."""
    sizes = dataset.class_sizes
    classes = torch.arange(len(sizes)).repeat_interleave(sizes)
    starts = sizes.cumsum(0) - sizes
    indices = torch.arange(len(classes)) - starts[classes]
    return LabelledBatch(dataset.gather(classes, indices.unsqueeze(-1)).squeeze(1), classes)
