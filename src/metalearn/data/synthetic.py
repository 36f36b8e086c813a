"""Gaussian-cluster classes: a tiny, fast class-indexed dataset for tests and the demo."""

from __future__ import annotations

import torch

from metalearn.data.base import TensorClassDataset
from metalearn.data.stream import check_count

__all__ = ["gaussian_clusters"]


def gaussian_clusters(
    n_classes: int,
    n_per_class: int,
    dim: int,
    *,
    seed: int = 0,
    noise: float = 0.5,
) -> TensorClassDataset:
    """Return ``n_classes`` Gaussian clusters of ``n_per_class`` points each in ``dim`` dims.

    Class centres are drawn from ``N(0, I)`` and points from ``N(centre, noise**2 I)``, all from
    a generator seeded with ``seed``. Two centres are about ``sqrt(2 * dim)`` apart and a point
    lies about ``noise * sqrt(dim)`` from its centre, so with the default ``noise = 0.5``
    nearest-centre classification is easy but not trivial.

    Args:
        n_classes: number of classes, named ``"cluster0"``, ``"cluster1"``, ...
        n_per_class: points per class.
        dim: dimension of a point.
        seed: seed of the centres and the points.
        noise: standard deviation of the points around their centre.

    Returns:
        A dataset whose examples are ``(dim,)`` float32 vectors.

    Raises:
        EpisodeSpecError: if a count is below 1.
        ValueError: if ``noise`` is negative.
    """
    check_count("n_classes", n_classes, 1)
    check_count("n_per_class", n_per_class, 1)
    check_count("dim", dim, 1)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, 1, dim, generator=generator)
    points = centres + noise * torch.randn(n_classes, n_per_class, dim, generator=generator)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    names = [f"cluster{c}" for c in range(n_classes)]
    return TensorClassDataset(points.reshape(-1, dim), y, names)
