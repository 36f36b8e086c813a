"""Personal model files: what ``metalearn adapt``, ``serve`` and ``finetune`` write.

A personal model file holds the run's config and weights, the user's support set (images,
labels, class names), how the images were read (``invert``, ``channels``) and, optionally, the
calibrated "none of these" rule. Loading it rebuilds the learner and re-adapts it to the stored
support set (:class:`~metalearn.applications.Personalized`), which ``metalearn predict`` then
queries. A fine-tuned model stores an empty support set: it predicts with its trained head.

    personal, meta = load_personal("personal.pt")
    images = read_query_images(meta, ["new/a.png", "new/b.png"])
    personal.predict(images)  # [(class name, probability), ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metalearn.algorithms import Learner
from metalearn.applications import Personalized, Rejection, personalize
from metalearn.build import build_learner
from metalearn.config import RunConfig, from_dict, to_dict
from metalearn.data.folders import read_images
from metalearn.data.transforms import to_float
from metalearn.errors import CheckpointError, MetalearnError
from metalearn.registry import get_algorithm
from metalearn.training.checkpoint import first_line

__all__ = [
    "FORMAT",
    "load_personal",
    "payload_of",
    "personal_payload",
    "read_query_images",
    "support_n_way",
]

FORMAT = "metalearn-personal-1"


def support_n_way(config: RunConfig) -> int | None:
    """The ``n_way`` a run's learner adapts a personal support set with.

    A gradient-based learner adapts its fixed ``n_way``-class head, so the support set must
    have that many classes; a metric-based one takes any number (``None``).
    """
    return config.data.n_way if get_algorithm(config.algorithm.name).kind == "gradient" else None


def personal_payload(
    config: RunConfig,
    learner: Learner[Any],
    support: tuple[Tensor, Tensor, list[str]],
    *,
    invert: bool,
    channels: int,
    rejection: Rejection | None = None,
) -> dict[str, Any]:
    """Return the content of a personal model file (:func:`load_personal` reads it back).

    Args:
        config: the run's config.
        learner: the run's learner (its weights are stored).
        support: the support images, labels and class names (empty tensors for a fine-tuned
            model, whose class names are then its head's).
        invert: whether the images were read inverted.
        channels: the image channels the run reads.
        rejection: the calibrated "none of these" rule, if any.
    """
    support_x, support_y, class_names = support
    return {
        "format": FORMAT,
        "config": to_dict(config),
        "learner": learner.state_dict(),
        "support_x": support_x,
        "support_y": support_y,
        "class_names": class_names,
        "invert": invert,
        "channels": channels,
        "rejection": None if rejection is None else rejection.to_dict(),
    }


def payload_of(
    config: RunConfig, personal: Personalized, *, invert: bool, channels: int
) -> dict[str, Any]:
    """:func:`personal_payload` of an adapted :class:`Personalized` model."""
    support = (personal.support_x, personal.support_y, personal.class_names)
    return personal_payload(
        config,
        personal.learner,
        support,
        invert=invert,
        channels=channels,
        rejection=personal.rejection,
    )


def load_personal(path: str | Path) -> tuple[Personalized, dict[str, Any]]:
    """Load a personal model file and re-adapt its learner to the stored support set.

    Returns:
        The personalized model and the file's content (its ``config`` as a ``RunConfig``).

    Raises:
        CheckpointError: for a missing, unreadable, foreign or damaged file (one line).
    """
    not_personal = f"{path} is not a personal model written by `metalearn adapt`"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no personal model at {path}: run `metalearn adapt` first") from None
    except OSError as e:
        raise CheckpointError(f"cannot read personal model {path}: {e.strerror or e}") from e
    except Exception as e:  # torch.load raises almost anything on bytes it did not write
        raise CheckpointError(f"{not_personal} ({type(e).__name__})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(not_personal)
    try:
        config: RunConfig = from_dict(payload["config"])
        learner = build_learner(config)
        if not isinstance(learner, Learner):  # a meta-RL policy adapts on rollouts, not images
            raise CheckpointError(f"{not_personal}: it holds a meta-RL policy")
        learner.load_state_dict(payload["learner"])
    except MetalearnError:
        raise  # e.g. a device this machine lacks: its own message says what to do
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{not_personal}: it is damaged ({first_line(e)})") from e
    personal = personalize(
        learner, payload["support_x"], payload["support_y"], payload["class_names"]
    )
    if payload.get("rejection") is not None:
        personal.rejection = Rejection.from_dict(payload["rejection"])
    return personal, {**payload, "config": config}


def read_query_images(
    meta: dict[str, Any], paths: Sequence[str | Path], *, invert: bool | None = None
) -> Tensor:
    """Read image files as the personal model's support set was read, for ``predict``.

    Args:
        meta: the file's content, as :func:`load_personal` returns it.
        paths: image files.
        invert: map dark strokes on a light page to 1 on 0; ``None``: as for the support set.

    Returns:
        ``(len(paths), channels, size, size)`` float32 in ``[0, 1]``.

    Raises:
        CorruptImageError: naming the first file that cannot be decoded.
    """
    size = meta["config"].data.image_size
    invert = meta["invert"] if invert is None else invert
    files = [Path(path) for path in paths]
    return to_float(torch.from_numpy(read_images(files, (size, size), meta["channels"], invert)))
