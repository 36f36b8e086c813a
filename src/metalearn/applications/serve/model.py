"""The served learner: teaching it a session's examples and predicting one image at a time.

Every call into the learner holds one lock: ``torch.func`` transforms (the gradient learners'
inner loop) may not run in two threads at once, and the CPU's cores already go to torch's
intra-op threads, so concurrent requests queue for the model rather than share it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from metalearn.algorithms.base import Learner
from metalearn.applications.personalize import Personalized, personalize
from metalearn.applications.serve.http import ApiError
from metalearn.data.transforms import Channels, to_float
from metalearn.errors import EpisodeSpecError

__all__ = ["Limits", "ServedModel", "SupportSet"]

SupportSet = tuple[Tensor, Tensor, list[str]]
"""``(support_x, support_y, class_names)``: float images in ``[0, 1]``, labels, names."""


@dataclass(frozen=True)
class Limits:
    """What one request and one session may hold (each refusal names the limit it hit)."""

    max_image_bytes: int = 4 * 2**20
    max_model_bytes: int = 32 * 2**20
    max_json_bytes: int = 4096
    max_pixels: int = 4096 * 4096
    max_classes: int = 30
    max_examples_per_class: int = 30
    max_name_length: int = 40
    max_sessions: int = 64
    session_ttl_seconds: float = 3600.0


@dataclass(frozen=True)
class ServedModel:
    """A trained learner and how its inputs are made, as ``metalearn serve`` serves it.

    Attributes:
        learner: the meta-trained learner (eval mode).
        name: the run's name, shown on the page.
        image_size: side of the square images the learner takes.
        channels: 1 (grayscale) or 3 (RGB).
        invert: map dark strokes on a light page to 1 on 0 (Omniglot runs).
        n_way: the number of classes the learner needs (gradient learners with a fixed
            output layer), or ``None`` for any number (metric learners).
        export: the bytes of a personal model file (``metalearn predict`` reads it).
        load: the support set stored in a personal model file; raises :class:`ApiError`.
        lock: held by every call into the learner.
    """

    learner: Learner[Any]
    name: str
    image_size: int
    channels: Channels
    invert: bool
    n_way: int | None
    export: Callable[[Personalized], bytes]
    load: Callable[[bytes], SupportSet]
    lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def check_support(self, counts: dict[str, int]) -> None:
        """Refuse to teach a support set the learner cannot take (422, saying what to add).

        Args:
            counts: examples per class, in label order.
        """
        if len(counts) < 2:
            raise ApiError(422, f"add at least 2 classes to teach (there are {len(counts)})")
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            raise ApiError(
                422, f"class {empty[0]!r} has no examples: draw or upload one, or remove it"
            )
        if self.n_way is not None and len(counts) != self.n_way:
            raise ApiError(
                422,
                f"{self.name} is a gradient learner with an output layer of {self.n_way} "
                f"classes: teach exactly {self.n_way} classes (there are {len(counts)})",
            )

    def teach(self, images: list[NDArray[np.uint8]], labels: list[int], names: list[str]) -> Any:
        """Adapt the learner to the examples and return the ``Personalized`` model."""
        device = next(self.learner.parameters()).device
        support_x = to_float(torch.from_numpy(np.stack(images))).to(device)
        support_y = torch.tensor(labels, device=device)
        with self.lock:
            try:
                return personalize(self.learner, support_x, support_y, names, n_way=self.n_way)
            except EpisodeSpecError as exc:
                raise ApiError(422, str(exc)) from None

    def predict(self, personal: Personalized, image: NDArray[np.uint8]) -> list[float]:
        """Return the class probabilities of one image.

        The image is predicted alone, so that its probabilities depend only on it and on the
        taught examples, never on other images sent before or at the same time.
        """
        device = next(self.learner.parameters()).device
        x = to_float(torch.from_numpy(image)).to(device)[None]
        with self.lock:
            probabilities: list[float] = personal.predict_proba(x)[0].tolist()
        return probabilities
