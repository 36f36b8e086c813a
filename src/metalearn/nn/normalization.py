"""Batch normalisation per task (MAML's convention), written with elementary tensor ops.

Every forward pass normalises with the statistics of the batch it is given (one task's support
or query set), also at test time, and no running statistics are kept, so nothing leaks between
tasks. :class:`TaskBatchNorm` implements this with elementary operations (mean, variance,
affine) rather than ``F.batch_norm``, for two reasons:

* ``F.batch_norm`` with running statistics cannot run under ``torch.func.vmap`` (it would update
  a shared buffer in place from batched inputs).
* Without running statistics it runs, but its second-order meta-gradient under ``vmap`` is
  wrong: in float64 it differs from finite differences by 0.4% to 2% relative (measured on
  PyTorch 2.13), while the elementary-op version agrees to round-off
  (``tests/nn/test_backbones.py`` checks this).

Inductive normalisation: within :func:`recording_statistics`, every :class:`TaskBatchNorm` of a
model records the statistics of the batch it normalises (a task's support set); within
:func:`fixed_statistics`, it normalises with recorded ones instead of its batch's, so that each
input's output depends only on that input and the support set (``metalearn predict`` and
personal models; the papers' meta-test is transductive).

Must not import ``metalearn.data`` or ``metalearn.algorithms``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = [
    "Statistics",
    "TaskBatchNorm",
    "center_and_inv_std",
    "fixed_statistics",
    "recording_statistics",
]

Statistics = dict[str, tuple[Tensor, Tensor]]
"""Layer name (in ``model.named_modules()``) -> its ``(mean, inv_std)`` of one batch: the mean
``(1, C, 1, ...)`` and ``1 / sqrt(var + eps)`` ``(C,)``."""


def batch_statistics(x: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """Return the per-channel ``mean`` (kept dims), ``x - mean`` and ``1 / sqrt(var + eps)``.

    Args:
        x: ``(n, C, *spatial)`` inputs; the statistics are over every dim but the channels'.
        eps: added to the (biased) variance.
    """
    dims = [0, *range(2, x.dim())]
    count = x.numel() // x.shape[1]
    # sum * (1/count) rather than mean: the backward of sum is a free expand, that of mean
    # a full-size division (the passes over full-size tensors dominate on CPU)
    mean = x.sum(dim=dims, keepdim=True) * (1.0 / count)
    centered = x - mean
    # a product and a sum: measured faster in second-order MAML than a vector norm (whose
    # backward divides by the norm) or square() (whose backward doubles in an extra pass)
    var = (centered * centered).sum(dim=dims) * (1.0 / count)
    return mean, centered, torch.rsqrt(var + eps)


def center_and_inv_std(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Return ``x - mean`` and ``1 / sqrt(var + eps)`` of :func:`batch_statistics`."""
    _, centered, inv_std = batch_statistics(x, eps)
    return centered, inv_std


class TaskBatchNorm(nn.Module):
    r"""Batch normalisation over the current batch only (per task), written with elementary ops.

    Normalises each channel (dim 1) with the mean and biased variance over every other dim, as
    ``nn.BatchNorm2d(track_running_stats=False)`` does in both training and evaluation mode.

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta

    Args:
        num_features: channels ``C`` of inputs ``(n, C)`` or ``(n, C, H, W)``.
        eps: added to the variance for numerical stability.
        affine: learn a per-channel scale ``weight`` (init 1) and shift ``bias`` (init 0).

    Attributes:
        record: where :func:`recording_statistics` collects this layer's batch statistics
            (``(statistics, name)``), or ``None``.
        fixed: the ``(mean, inv_std)`` :func:`fixed_statistics` normalises with, or ``None``
            (the batch's own statistics).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        self.record: tuple[Statistics, str] | None = None
        self.fixed: tuple[Tensor, Tensor] | None = None

    @property
    def per_batch(self) -> bool:
        """Whether it normalises with its batch's statistics and records none (MAML's mode)."""
        return self.record is None and self.fixed is None

    def forward(self, x: Tensor) -> Tensor:
        """Return the normalised ``x``, same shape ``(n, C, *spatial)``."""
        if self.fixed is not None:
            mean, inv_std = self.fixed
            centered = x - mean
        else:
            mean, centered, inv_std = batch_statistics(x, self.eps)
            if self.record is not None:
                statistics, name = self.record
                statistics[name] = (mean, inv_std)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.weight is None or self.bias is None:
            return centered * inv_std.view(shape)
        return torch.addcmul(self.bias.view(shape), centered, (self.weight * inv_std).view(shape))

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr``."""
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


def _layers(model: nn.Module) -> dict[str, TaskBatchNorm]:
    return {name: m for name, m in model.named_modules() if isinstance(m, TaskBatchNorm)}


@contextmanager
def recording_statistics(model: nn.Module) -> Iterator[Statistics]:
    """Collect the batch statistics of every :class:`TaskBatchNorm` of ``model`` in the block.

    Yields the (filled on each forward pass) :data:`Statistics`; a layer run twice keeps the
    last batch's.
    """
    statistics: Statistics = {}
    layers = _layers(model)
    for name, layer in layers.items():
        layer.record = (statistics, name)
    try:
        yield statistics
    finally:
        for layer in layers.values():
            layer.record = None


@contextmanager
def fixed_statistics(model: nn.Module, statistics: Statistics) -> Iterator[None]:
    """Normalise with ``statistics`` (of :func:`recording_statistics`) in the block.

    Raises:
        ValueError: if a :class:`TaskBatchNorm` of ``model`` has no recorded statistics.
    """
    layers = _layers(model)
    missing = sorted(set(layers) - set(statistics))
    if missing:
        raise ValueError(f"no recorded statistics for the BatchNorm layers {missing}")
    for name, layer in layers.items():
        layer.fixed = statistics[name]
    try:
        yield
    finally:
        for layer in layers.values():
            layer.fixed = None
