"""Siamese Networks: a learned weighted L1 similarity, trained on same/different pairs."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metalearn.algorithms.base import Learner, require_n_way
from metalearn.episode import Episode
from metalearn.errors import EpisodeSpecError
from metalearn.nn.functional import embed, embedding_size, pairwise_l1, per_class_max
from metalearn.types import Metrics
from metalearn.utils.stats import accuracy

__all__ = ["Pairs", "SiameseNet", "SiameseState", "sample_pairs"]


class Pairs(NamedTuple):
    """Index pairs into a set of examples, with their targets.

    Attributes:
        first: ``(n_pairs,)`` int64 indices.
        second: ``(n_pairs,)`` int64 indices, never equal to ``first`` at the same position.
        same: ``(n_pairs,)`` float, 1 where both examples share a class, else 0.
    """

    first: Tensor
    second: Tensor
    same: Tensor


def sample_pairs(labels: Tensor, generator: torch.Generator | None = None) -> Pairs:
    """Pair every example with a random example of its class and one of another class.

    The result is balanced (``n`` same and ``n`` different pairs for ``n`` examples) and never
    pairs an example with itself. The draws use ``generator``, or the global torch RNG (which
    checkpoints capture) when it is ``None``. Not ``vmap``-compatible (the checks read values).

    Args:
        labels: ``(n,)`` int64 class of each example.
        generator: source of randomness.

    Returns:
        :class:`Pairs` of ``2 n`` pairs: the same-class pairs first.

    Raises:
        EpisodeSpecError: if a class has a single example, or all examples share one class.
    """
    n = labels.shape[0]
    same_class = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(n, dtype=torch.bool, device=labels.device)
    same_candidates, other_candidates = same_class & ~eye, ~same_class
    lonely = ~same_candidates.any(1)
    if lonely.any():
        raise EpisodeSpecError(
            f"class {labels[lonely][0].item()} has one example in the episode; Siamese pairs "
            "need at least 2 per class (n_shot + n_query >= 2)"
        )
    if not other_candidates.any(1).all():
        raise EpisodeSpecError("the episode has a single class; Siamese pairs need n_way >= 2")
    partners = torch.multinomial(
        torch.cat([same_candidates, other_candidates]).to(torch.float), 1, generator=generator
    ).squeeze(1)
    anchors = torch.arange(n, device=labels.device).repeat(2)
    same = (torch.arange(2 * n, device=labels.device) < n).to(torch.float)
    return Pairs(anchors, partners, same)


class SiameseState(NamedTuple):
    """What :class:`SiameseNet` keeps of a support set.

    Attributes:
        support_embeddings: ``(..., n_support, d)``.
        support_y: ``(..., n_support)`` int64 labels.
        n_way: number of classes.
    """

    support_embeddings: Tensor
    support_y: Tensor
    n_way: int


class SiameseNet(Learner[SiameseState]):
    r"""Siamese Networks.

    Twin encoders (one encoder, shared weights) and a learned weighted L1 distance give the
    logit that two inputs share a class. Training minimises binary cross-entropy over balanced
    same/different pairs drawn from each episode's support and query images
    (:func:`sample_pairs`). A query is classified as the class of its most similar support
    example.

    .. math:: p(x_1, x_2) = \sigma\Big(\sum_k w_k \, |f(x_1)_k - f(x_2)_k| + b\Big)

    ``w`` starts at ``-1/d`` and ``b`` at 0, so the untrained similarity already decreases
    with L1 distance.

    Args:
        encoder: maps inputs ``(n, *x_shape)`` to embeddings ``(n, d)`` (or to features that
            are flattened).
        embedding_dim: the encoder's output size ``d``; by default the encoder's
            ``embedding_dim`` attribute (as :class:`metalearn.nn.backbones.Conv4` has).

    Raises:
        ConfigError: if ``embedding_dim`` is neither given nor an attribute of the encoder.

    References:
        Koch, Zemel and Salakhutdinov. "Siamese Neural Networks for One-shot Image
        Recognition." ICML Deep Learning Workshop 2015.
    """

    batched = False  # measured: see meta_loss

    def __init__(self, encoder: nn.Module, embedding_dim: int | None = None) -> None:
        super().__init__()
        size = embedding_size(encoder, embedding_dim)
        self.encoder = encoder
        self.weight = nn.Parameter(torch.full((size,), -1.0 / size))
        self.bias = nn.Parameter(torch.zeros(()))

    def pair_logits(self, a: Tensor, b: Tensor) -> Tensor:
        """Return the same-class logits ``(...,)`` of aligned pairs ``a``, ``b`` ``(..., d)``."""
        return (a - b).abs() @ self.weight + self.bias

    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Return the same-class logits ``(..., n, m)`` of all pairs of rows of ``a``, ``b``.

        Args:
            a: ``(..., n, d)`` embeddings.
            b: ``(..., m, d)`` embeddings.
        """
        return pairwise_l1(a, b, self.weight) + self.bias

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int | None) -> SiameseState:
        """Return the support embeddings ``(..., n_support, d)`` with their labels."""
        embeddings = embed(self.encoder, support_x, support_y.dim() - 1)
        return SiameseState(embeddings, support_y, require_n_way(n_way))

    def predict(self, state: SiameseState, query_x: Tensor) -> Tensor:
        """Return logits ``(..., n_query, n_way)``: each class's highest pair logit (1-NN)."""
        support = state.support_embeddings
        queries = embed(self.encoder, query_x, support.dim() - 2)
        return per_class_max(self.similarity(queries, support), state.support_y, state.n_way)

    def episode_loss(self, episode: Episode) -> tuple[Tensor, Metrics]:
        """Return the pair loss of one episode (or of a stacked batch) and its metrics.

        Pairs are drawn from the support and query images together. Metrics: ``loss``,
        ``pair_accuracy``, and ``accuracy`` of the queries classified by the support set
        (1-NN, from the same embeddings).
        """
        n_way, batch_dims = require_n_way(episode.n_way), episode.support_y.dim() - 1
        images = torch.cat([episode.support_x, episode.query_x], dim=batch_dims)
        labels = torch.cat([episode.support_y, episode.query_y], dim=-1)
        embeddings = embed(self.encoder, images, batch_dims)  # (..., n, d)
        first, second, same = _sample_task_pairs(labels)
        pair_logits = self.pair_logits(_take(embeddings, first), _take(embeddings, second))
        loss = F.binary_cross_entropy_with_logits(pair_logits, same.to(pair_logits.dtype))
        n_support = episode.support_y.shape[-1]
        support, queries = embeddings[..., :n_support, :], embeddings[..., n_support:, :]
        logits = per_class_max(self.similarity(queries, support), episode.support_y, n_way)
        return loss, {
            "loss": loss.detach(),
            "pair_accuracy": ((pair_logits > 0) == same.bool()).to(loss.dtype).mean(),
            "accuracy": accuracy(logits.detach(), episode.query_y),
        }

    def meta_loss(self, batch: Episode, *, batched: bool | None = None) -> tuple[Tensor, Metrics]:
        """Return the mean pair loss and metrics over a stacked meta-batch.

        ``batched=True`` embeds every task's images at once (the encoder ``vmap``-ped over
        tasks, one kernel per layer) and draws the pairs task by task from the labels, in the
        loop's order, so that both paths agree. Pair sampling is never ``vmap``-ped. ``False``
        (the default, measured as fast or faster with a conv encoder on CPU) loops over tasks.
        """
        if not batch.is_batched or not (self.batched if batched is None else batched):
            return super().meta_loss(batch, batched=False)
        return self.episode_loss(batch)


def _sample_task_pairs(labels: Tensor) -> Pairs:
    """Draw :func:`sample_pairs` for each task of ``labels`` ``(..., n)``, in order.

    Returns:
        :class:`Pairs` of ``(..., 2 n)`` tensors.
    """
    per_task = [sample_pairs(task_labels) for task_labels in labels.reshape(-1, labels.shape[-1])]
    return Pairs(
        *(
            torch.stack(parts).reshape(*labels.shape[:-1], -1)
            for parts in zip(*per_task, strict=True)
        )
    )


def _take(embeddings: Tensor, index: Tensor) -> Tensor:
    """Gather rows ``(..., p, d)`` of ``embeddings`` ``(..., n, d)`` at ``index`` ``(..., p)``."""
    return torch.take_along_dim(embeddings, index.unsqueeze(-1), dim=-2)
