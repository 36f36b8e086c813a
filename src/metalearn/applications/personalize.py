"""Personalization: adapt a meta-trained learner to one user's few labelled examples.

A :class:`Personalized` model keeps the user's support set and the learner's adapted state, and
predicts a class and its probability for new inputs. Its file holds the support set rather than
the adapted state, so that any learner (fast weights, prototypes, support embeddings) is saved
the same way and re-adapts exactly when loaded. Predictions are inductive
(:mod:`metalearn.algorithms.inductive`): an image's prediction depends only on it and the
support set, never on the other images of the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metalearn.algorithms.base import Learner
from metalearn.algorithms.inductive import InductiveState, adapt_inductive, predict_inductive
from metalearn.data.folders import list_class_folders, list_images, read_labelled_images
from metalearn.data.transforms import Channels, to_float
from metalearn.errors import EpisodeSpecError

__all__ = ["Personalized", "load_support_folder", "personalize"]


def load_support_folder(
    root: str | Path, image_size: int, *, channels: Channels = 1, invert: bool = False
) -> tuple[Tensor, Tensor, list[str]]:
    """Read ``root/<class>/<images>`` as a support set.

    Returns:
        ``support_x`` ``(n, channels, image_size, image_size)`` float32 in ``[0, 1]``,
        ``support_y`` ``(n,)`` labels in class-folder order, and the class names.

    Raises:
        DataRootNotFoundError, DatasetError, CorruptImageError: for a missing or empty folder,
            an empty class folder or an unreadable image (the message names it).
    """
    folders = list_class_folders(Path(root))
    files = [list_images(folder) for folder in folders]
    x, y = read_labelled_images(files, (image_size, image_size), channels, invert)
    return to_float(x), y, [folder.name for folder in folders]


@dataclass
class Personalized:
    """A learner adapted to one user's support set.

    Attributes:
        learner: the meta-trained learner (in eval mode).
        state: the adapted state with the support set's BatchNorm statistics.
        class_names: the user's class names, in label order.
        support_x: ``(n_support, *x_shape)`` the user's examples.
        support_y: ``(n_support,)`` their labels.
    """

    learner: Learner[Any]
    state: InductiveState[Any]
    class_names: list[str]
    support_x: Tensor
    support_y: Tensor

    def predict_proba(self, x: Tensor) -> Tensor:
        """Return class probabilities ``(n, n_classes)`` for inputs ``(n, *x_shape)``."""
        with torch.no_grad():
            return predict_inductive(self.learner, self.state, x).softmax(-1)

    def predict(self, x: Tensor) -> list[tuple[str, float]]:
        """Return the predicted class name and its probability for each input."""
        probabilities, labels = self.predict_proba(x).max(-1)
        return [
            (self.class_names[i], p)
            for i, p in zip(labels.tolist(), probabilities.tolist(), strict=True)
        ]


def personalize(
    learner: Learner[Any],
    support_x: Tensor,
    support_y: Tensor,
    class_names: list[str],
    *,
    n_way: int | None = None,
) -> Personalized:
    """Adapt ``learner`` to a user's support set (the entry point of personalization).

    Args:
        learner: a meta-trained learner.
        support_x: ``(n_support, *x_shape)`` the user's examples.
        support_y: ``(n_support,)`` labels in ``[0, len(class_names))``.
        class_names: a name per class.
        n_way: the number of classes the learner's output layer has, for gradient learners
            with a fixed head; ``None`` accepts any number (metric learners).

    Raises:
        EpisodeSpecError: if the support set has another number of classes than ``n_way``,
            or fewer than 2 classes.
    """
    n_classes = len(class_names)
    if n_classes < 2:
        raise EpisodeSpecError(f"the support set has {n_classes} class; give at least 2 classes")
    if n_way is not None and n_classes != n_way:
        raise EpisodeSpecError(
            f"the support set has {n_classes} classes ({', '.join(class_names)}) but this "
            f"learner's output layer has n_way={n_way}: give {n_way} class folders, or train "
            "a metric learner (protonet, matching, siamese), which takes any number"
        )
    learner.eval()
    with torch.no_grad():
        state = adapt_inductive(learner, support_x, support_y, n_classes)
    return Personalized(learner, state, list(class_names), support_x, support_y)
