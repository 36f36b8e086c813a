"""Transfer learning: batches of labelled images over every class, for plain classifiers.

:class:`ClassBatches` is the task source of Baseline/Baseline++ pretraining and of
``metalearn finetune``: each "task" of the training loop is one image with its class, so a
meta-batch of ``meta_batch_size`` tasks is an ordinary mini-batch (Chen et al. use 16).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metalearn.algorithms.baseline import Baseline, LabelledBatch
from metalearn.data.base import ClassDataset, TensorClassDataset
from metalearn.data.folders import list_class_folders, list_images, read_labelled_images
from metalearn.data.transforms import Channels, to_float
from metalearn.errors import ConfigError, DatasetError
from metalearn.training import TrainConfig, TrainResult, meta_train

__all__ = [
    "ClassBatches",
    "LabelledFolders",
    "all_examples",
    "read_labelled_folders",
    "train_with_early_stopping",
    "validation_metrics",
]


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


@dataclass(frozen=True)
class LabelledFolders:
    """A user's class folders, read and split: training and validation examples.

    Attributes:
        train: the training classes (every class has at least one example).
        val_x: ``(n_val, channels, size, size)`` float32 validation images.
        val_y: ``(n_val,)`` their labels.
        class_names: folder names, in label order.
    """

    train: TensorClassDataset
    val_x: Tensor
    val_y: Tensor
    class_names: list[str]


def read_labelled_folders(
    root: str | Path,
    image_size: int,
    *,
    channels: Channels,
    invert: bool,
    val_share: float = 0.2,
    seed: int = 0,
) -> LabelledFolders:
    """Read ``root/train/<class>/*`` and ``root/val/<class>/*`` (or hold out a share of train).

    Images of any size and mode are converted to ``channels`` and ``image_size``. Without
    ``root/val``, each class with at least two images gives ``round(val_share * n)`` of them
    (at least one, never all) to validation, chosen by ``seed``.

    Raises:
        DataRootNotFoundError: if ``root/train`` is missing.
        DatasetError: for fewer than 2 classes, an empty class folder, validation classes that
            are not training classes, or no validation image at all.
        CorruptImageError: for an unreadable image (the message names the file).
    """
    root = Path(root)
    folders = list_class_folders(root / "train")
    names = [f.name for f in folders]
    if len(names) < 2:
        raise DatasetError(f"{root / 'train'} holds {len(names)} class folder; give at least 2")
    size = (image_size, image_size)
    x, y = read_labelled_images([list_images(f) for f in folders], size, channels, invert)
    if (root / "val").is_dir():
        val_folders = list_class_folders(root / "val")
        unknown = sorted({f.name for f in val_folders} - set(names))
        if unknown:
            raise DatasetError(
                f"{root / 'val'} has classes that {root / 'train'} lacks: {', '.join(unknown)}"
            )
        files = [list_images(f) for f in val_folders]
        val_x, val_y_local = read_labelled_images(files, size, channels, invert)
        val_y = torch.tensor([names.index(f.name) for f in val_folders])[val_y_local]
        keep = torch.ones(len(y), dtype=torch.bool)
    else:
        keep = _held_out_mask(y, val_share, seed)
        val_x, val_y = x[~keep], y[~keep]
    if len(val_y) == 0:
        raise DatasetError(
            f"{root} gives no validation image: add {root / 'val'}/<class>/ or more images"
        )
    return LabelledFolders(
        TensorClassDataset(x[keep], y[keep], names), to_float(val_x), val_y, names
    )


def _held_out_mask(y: Tensor, share: float, seed: int) -> Tensor:
    """Return ``True`` for the examples kept for training; the rest validate."""
    generator = torch.Generator().manual_seed(seed)
    keep = torch.ones(len(y), dtype=torch.bool)
    for c in y.unique():
        idx = (y == c).nonzero().squeeze(1)
        n_val = min(len(idx) - 1, max(1, round(share * len(idx))))
        if n_val > 0:
            keep[idx[torch.randperm(len(idx), generator=generator)[:n_val]]] = False
    return keep


def validation_metrics(learner: Baseline, x: Tensor, y: Tensor) -> dict[str, float]:
    """Accuracy and loss of a classifier's trained head on labelled images."""
    assert learner.head is not None  # a fine-tuned classifier always has one
    with torch.no_grad():
        logits = learner.head(learner.features(x))
    return {
        "accuracy": float((logits.argmax(-1) == y).float().mean()),
        "loss": float(torch.nn.functional.cross_entropy(logits, y)),
    }


def train_with_early_stopping(
    learner: Baseline,
    data: LabelledFolders,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    resume: bool,
    extra_state: dict[str, Any],
) -> TrainResult:
    """Train the classifier on ``data.train`` with :func:`meta_train`, stopping early.

    Validation (on ``data.val_x``) runs every ``cfg.eval_every`` steps; training stops once
    ``cfg.patience`` validations in a row have not improved on the best (``best.pt``). A
    killed run resumes from its last checkpoint with ``resume=True``; a run that had stopped
    trains no further.
    """
    if cfg.patience < 1:
        raise ConfigError("early stopping needs TrainConfig.patience >= 1")

    def validate() -> dict[str, float]:
        return validation_metrics(learner, data.val_x, data.val_y)

    return meta_train(
        learner,
        ClassBatches(data.train, seed=cfg.seed),
        cfg,
        run_dir=run_dir,
        validate=validate,
        resume=resume,
        extra_state=extra_state,
    )
