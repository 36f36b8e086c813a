"""The reporting maths, in one place: accuracy and mean with a 95% confidence interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["MeanCI", "accuracy", "mean_ci95"]


class MeanCI(NamedTuple):
    """A mean, the half-width of its 95% confidence interval, and the sample size."""

    mean: float
    ci95: float
    n: int


def mean_ci95(values: Sequence[float] | Tensor) -> MeanCI:
    """Return the mean and the half-width ``1.96 * s / sqrt(n)`` of its 95% CI.

    ``s`` is the sample standard deviation (ddof=1), as in the MAML, ProtoNet and Matching
    Networks papers. With one value the half-width is 0.

    Examples:
        >>> r = mean_ci95([0.5, 0.7, 0.9])
        >>> round(r.mean, 4), round(r.ci95, 4), r.n
        (0.7, 0.2263, 3)
    """
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    n = x.numel()
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value")
    half_width = 1.96 * x.std(unbiased=True).item() / math.sqrt(n) if n > 1 else 0.0
    return MeanCI(x.mean().item(), half_width, n)


def accuracy(logits: Tensor, targets: Tensor) -> Tensor:
    """Return the fraction of ``argmax(logits, -1)`` equal to ``targets``.

    Args:
        logits: ``(..., n, n_way)`` scores.
        targets: ``(..., n)`` int64 labels.

    Returns:
        A scalar tensor (averaged over the last dim, then over any leading dims).
    """
    return (logits.argmax(-1) == targets).to(logits.dtype).mean()
