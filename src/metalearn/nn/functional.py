"""Functions shared by the metric-based learners: class means, distances, similarities.

Every function accepts optional leading batch dims (``...``), so one code path serves one
task and a stacked meta-batch, and none loops in Python over classes or examples (they work
under ``torch.func.vmap``). This module must not import ``metalearn.data`` or
``metalearn.algorithms``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

from metalearn.errors import ConfigError

__all__ = [
    "class_means",
    "squared_euclidean",
    "cosine_similarity",
    "pairwise_l1",
    "per_class_max",
    "embed",
    "embedding_size",
]


def class_means(embeddings: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Return the mean embedding of each class (the prototypes of Snell et al. 2017).

    Computed as ``one_hot(labels).T @ embeddings / counts``: no loop over classes. Every class
    in ``[0, n_classes)`` must occur in ``labels``; an absent class gets a NaN row (0 / 0).

    Args:
        embeddings: ``(..., n, d)``.
        labels: ``(..., n)`` int64 in ``[0, n_classes)``.
        n_classes: number of classes (a Python int).

    Returns:
        ``(..., n_classes, d)``.

    Examples:
        >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
        >>> class_means(x, torch.tensor([0, 0, 1, 1]), 2)
        tensor([[1., 0.],
                [0., 3.]])
    """
    one_hot = F.one_hot(labels, n_classes).to(embeddings.dtype)
    counts = one_hot.sum(-2).unsqueeze(-1)
    return one_hot.transpose(-1, -2) @ embeddings / counts


def squared_euclidean(a: Tensor, b: Tensor) -> Tensor:
    """Return all pairwise squared Euclidean distances ``||a_i - b_j||^2``.

    Computed from differences, not from ``|a|^2 + |b|^2 - 2 a.b``: that expansion cancels
    catastrophically when points are close and can even turn negative.

    Args:
        a: ``(..., n, d)``.
        b: ``(..., m, d)``.

    Returns:
        ``(..., n, m)``.

    Examples:
        >>> squared_euclidean(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
        tensor([[1., 5.]])
    """
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)


def cosine_similarity(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Return all pairwise cosine similarities ``a_i . b_j / (|a_i| |b_j|)``.

    Args:
        a: ``(..., n, d)``.
        b: ``(..., m, d)``.
        eps: lower bound on the norms, so that a zero vector has similarity 0, not NaN.

    Returns:
        ``(..., n, m)`` in ``[-1, 1]``.

    Examples:
        >>> cosine_similarity(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
        tensor([[1.0000, 0.7071]])
    """
    return F.normalize(a, dim=-1, eps=eps) @ F.normalize(b, dim=-1, eps=eps).transpose(-1, -2)


def pairwise_l1(a: Tensor, b: Tensor, weight: Tensor | None = None) -> Tensor:
    """Return all pairwise (weighted) L1 distances ``sum_k w_k |a_ik - b_jk|``.

    With a learned ``weight`` this is the distance of Siamese networks (Koch et al. 2015).

    Args:
        a: ``(..., n, d)``.
        b: ``(..., m, d)``.
        weight: ``(d,)`` per-dimension weights; ``None`` for the plain L1 distance.

    Returns:
        ``(..., n, m)``.

    Examples:
        >>> pairwise_l1(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, -2.0]]))
        tensor([[3.]])
    """
    differences = (a.unsqueeze(-2) - b.unsqueeze(-3)).abs()
    return differences.sum(-1) if weight is None else differences @ weight


def per_class_max(scores: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Return, for each row, the highest score among the columns of each class.

    This is nearest-neighbour classification written as logits: a query's score for a class
    is its similarity to the most similar support example of that class.

    Args:
        scores: ``(..., n, m)`` scores of ``n`` queries against ``m`` support examples.
        labels: ``(..., m)`` int64 class of each support example, in ``[0, n_classes)``.
        n_classes: number of classes (a Python int).

    Returns:
        ``(..., n, n_classes)``; ``-inf`` for a class with no support example.

    Examples:
        >>> per_class_max(torch.tensor([[0.1, 0.9, 0.5]]), torch.tensor([0, 1, 0]), 2)
        tensor([[0.5000, 0.9000]])
    """
    is_member = F.one_hot(labels, n_classes).transpose(-1, -2).bool()  # (..., n_classes, m)
    masked = scores.unsqueeze(-2).masked_fill(~is_member.unsqueeze(-3), float("-inf"))
    return masked.amax(-1)


def embed(encoder: nn.Module, x: Tensor, batch_dims: int = 0) -> Tensor:
    """Apply ``encoder`` to each set of inputs, flattening its outputs into vectors.

    With ``batch_dims > 0`` the encoder is ``vmap``-ped over the leading dims. Its weights are
    shared, so each convolution still runs as one kernel over every image of the meta-batch,
    while batch statistics (BatchNorm without running statistics) stay per set, exactly as in
    a loop over the sets. A reshape to ``(n_sets * n, ...)`` would mix them across sets.
    BatchNorm that updates running statistics cannot run under ``vmap`` in training mode
    (PyTorch raises); such encoders need ``batch_dims=0`` (a learner's loop path).

    Args:
        encoder: maps ``(n, *x_shape)`` to ``(n, d)`` or ``(n, *feature_shape)``.
        x: ``(*batch, n, *x_shape)`` with ``batch_dims`` leading dims.
        batch_dims: how many leading dims index sets (tasks) rather than examples.

    Returns:
        ``(*batch, n, d)``.
    """

    def encode(inputs: Tensor) -> Tensor:
        return torch.flatten(encoder(inputs), 1)

    for _ in range(batch_dims):
        encode = vmap(encode)
    return encode(x)


def embedding_size(encoder: nn.Module, embedding_dim: int | None = None) -> int:
    """Return ``embedding_dim``, or else the encoder's ``embedding_dim`` attribute.

    Raises:
        ConfigError: if neither is given (the message says how to fix it).
    """
    size = embedding_dim if embedding_dim is not None else getattr(encoder, "embedding_dim", None)
    if not isinstance(size, int):
        raise ConfigError(
            f"cannot tell the output size of encoder {type(encoder).__name__}: pass "
            "embedding_dim=<d>, the size of the embeddings it returns"
        )
    return size
