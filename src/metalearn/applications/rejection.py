"""Rejection ("none of these"): a threshold calibrated on validation classes.

A classifier adapted to a support set always names one of its classes, even for an input far
from all of them (random noise gets 0.96-0.99 softmax probability). A :class:`Rejection` scores
each prediction by how close the input is to its nearest class (the largest logit: minus the
squared distance to the nearest prototype for ProtoNet, the log attention mass for Matching
Networks, the best pair similarity for Siamese networks; or the largest softmax probability) and
answers ``unknown`` below a threshold. The threshold is calibrated on query images of validation
episodes (classes seen neither in training nor at test time), as the score that a target
fraction of known-class queries reach (e.g. 95% recall); test classes are never used for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from metalearn.algorithms.inductive import adapt_inductive, predict_inductive
from metalearn.data import TaskSampler
from metalearn.data.base import ClassDataset
from metalearn.episode import Episode

__all__ = [
    "UNKNOWN",
    "Rejection",
    "Score",
    "auroc",
    "calibrate_on_classes",
    "calibrate_rejection",
    "episode_scores",
    "known_scores",
]

UNKNOWN = "unknown"
"""The class name :class:`~metalearn.applications.Personalized` answers for a rejected input."""

Score = Literal["max_logit", "max_prob"]


def known_scores(logits: Tensor, score: Score = "max_logit") -> Tensor:
    """Return ``(n,)`` scores of logits ``(n, n_way)``: higher means closer to a known class."""
    if score == "max_logit":
        return logits.max(-1).values
    if score == "max_prob":
        return logits.softmax(-1).max(-1).values
    raise ValueError(f"score={score!r} is not one of 'max_logit', 'max_prob'")


@dataclass(frozen=True)
class Rejection:
    """A calibrated rejection rule: an input whose score is below ``threshold`` is unknown.

    Attributes:
        threshold: the lowest score still answered with a class.
        score: ``"max_logit"`` or ``"max_prob"`` (:func:`known_scores`).
        target_recall: the fraction of known-class queries the threshold was set to keep.
        recall: the fraction it kept on the calibration queries (at least ``target_recall``).
        n_queries: the number of calibration queries.
    """

    threshold: float
    score: Score
    target_recall: float
    recall: float
    n_queries: int

    def accepts(self, logits: Tensor) -> Tensor:
        """Return ``(n,)`` booleans: whether each row of logits is answered with a class."""
        return known_scores(logits, self.score) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Return plain data, for a personal model file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rejection:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def episode_scores(learner: Any, episode: Episode, score: Score = "max_logit") -> Tensor:
    """Adapt ``learner`` to one episode's support set; return its queries' scores ``(n_query,)``.

    Scored inductively, as personal models predict, so the threshold fits their scores.
    """
    with torch.no_grad():
        state = adapt_inductive(learner, episode.support_x, episode.support_y, episode.n_way)
        return known_scores(predict_inductive(learner, state, episode.query_x), score)


def calibrate_rejection(
    learner: Any,
    episodes: Iterable[Episode],
    *,
    target_recall: float = 0.95,
    score: Score = "max_logit",
) -> Rejection:
    """Set the threshold that keeps ``target_recall`` of the known-class queries of ``episodes``.

    Args:
        learner: an adapted-and-predicting learner (any ``Learner``), in evaluation mode.
        episodes: single (unstacked) validation episodes; never the test classes.
        target_recall: the fraction of known-class queries to keep, in ``(0, 1)``.
        score: how a prediction is scored (:func:`known_scores`).

    Raises:
        ValueError: for a ``target_recall`` outside ``(0, 1)`` or no episodes.
    """
    if not 0 < target_recall < 1:
        raise ValueError(f"target_recall={target_recall} must be in (0, 1), e.g. 0.95")
    scores = [episode_scores(learner, episode, score) for episode in episodes]
    if not scores:
        raise ValueError("calibration needs at least one validation episode")
    ordered = torch.cat(scores).double().sort().values
    n = len(ordered)
    # the k-th lowest score: at least n - k >= target_recall * n scores reach it (rounded
    # first, so that (1 - 0.9) * 20 = 1.9999999999999996 counts as 2)
    k = math.floor(round((1 - target_recall) * n, 9))
    threshold = float(ordered[k])
    recall = float((ordered >= threshold).double().mean())
    return Rejection(threshold, score, target_recall, recall, n)


def calibrate_on_classes(
    learner: Any,
    dataset: ClassDataset,
    *,
    n_way: int,
    n_shot: int,
    n_episodes: int = 300,
    n_query: int = 5,
    target_recall: float = 0.95,
    score: Score = "max_logit",
    seed: int = 0,
) -> Rejection:
    """Calibrate on ``n_episodes`` episodes of ``dataset`` (the validation classes).

    The episodes are shaped like the support set the threshold will serve (``n_way`` classes,
    ``n_shot`` examples each), since the scores depend on both; ``n_way`` is capped at the
    number of classes of ``dataset``.
    """
    sampler = TaskSampler(dataset, min(n_way, dataset.n_classes), n_shot, n_query, seed=seed)
    return calibrate_rejection(
        learner, sampler.episodes(n_episodes), target_recall=target_recall, score=score
    )


def auroc(known: Tensor, unknown: Tensor) -> float:
    """Return the area under the ROC curve of telling ``known`` scores from ``unknown`` ones.

    The probability that a random known input scores higher than a random unknown one (ties
    count one half): 1 separates perfectly, 0.5 is chance.
    """
    known, unknown = known.double().flatten(), unknown.double().flatten()
    greater = (known[:, None] > unknown[None, :]).double().sum()
    ties = (known[:, None] == unknown[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (len(known) * len(unknown)))
