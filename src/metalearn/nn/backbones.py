"""Backbones of the few-shot papers: the 4-block conv net (Conv4) and the sinusoid MLP.

Normalisation follows MAML's convention: every forward pass normalises with the statistics of
the batch it is given (one task's support or query set), also at test time, and no running
statistics are kept, so nothing leaks between tasks. :class:`TaskBatchNorm` implements this with
elementary tensor operations (mean, variance, affine) rather than ``F.batch_norm``. Two reasons:

* ``F.batch_norm`` with running statistics cannot run under ``torch.func.vmap`` (it would update
  a shared buffer in place from batched inputs).
* Without running statistics it runs, but its second-order meta-gradient under ``vmap`` is
  wrong: in float64 it differs from finite differences by 0.4% to 2% relative (measured on
  PyTorch 2.13), while the elementary-op version agrees to round-off
  (``tests/nn/test_backbones.py`` checks this).

:class:`ConvBlock` takes the max-pool before the normalisation's affine map and the ReLU (the
same function, a quarter of the elementwise work), because on CPU those memory-bound passes,
not the convolutions, dominate second-order MAML. Its normalisation statistics and pooling are
one autograd function that keeps only the conv output for backward (or, for a first block, not
even that: the cheap conv is redone in slices), since full-resolution tensors are most of a
task's memory.

Every parameter is a plain ``nn.Parameter`` and there are no buffers, so the models work with
``torch.func.functional_call`` and per-task fast weights. The classifier layer is called
``head``, which is what ANIL adapts. This module must not import ``metalearn.data`` or
``metalearn.algorithms``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MLP", "Conv4", "ConvBlock", "TaskBatchNorm"]


class TaskBatchNorm(nn.Module):
    r"""Batch normalisation over the current batch only (per task), written with elementary ops.

    Normalises each channel (dim 1) with the mean and biased variance over every other dim, as
    ``nn.BatchNorm2d(track_running_stats=False)`` does in both training and evaluation mode.

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta

    Args:
        num_features: channels ``C`` of inputs ``(n, C)`` or ``(n, C, H, W)``.
        eps: added to the variance for numerical stability.
        affine: learn a per-channel scale ``weight`` (init 1) and shift ``bias`` (init 0).
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

    def forward(self, x: Tensor) -> Tensor:
        """Return the normalised ``x``, same shape ``(n, C, *spatial)``."""
        centered, inv_std = self.center_and_inv_std(x)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.weight is None or self.bias is None:
            return centered * inv_std.view(shape)
        return torch.addcmul(self.bias.view(shape), centered, (self.weight * inv_std).view(shape))

    def center_and_inv_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``x - mean`` and ``1 / sqrt(var + eps)`` (per channel, shape ``(C,)``).

        Args:
            x: ``(n, C, *spatial)`` inputs.
        """
        dims = [0, *range(2, x.dim())]
        count = x.numel() // x.shape[1]
        # sum * (1/count) rather than mean: the backward of sum is a free expand, that of mean
        # a full-size division (the passes over full-size tensors dominate on CPU)
        centered = x - x.sum(dim=dims, keepdim=True) * (1.0 / count)
        # a product and a sum: measured faster in second-order MAML than a vector norm (whose
        # backward divides by the norm) or square() (whose backward doubles in an extra pass)
        var = (centered * centered).sum(dim=dims) * (1.0 / count)
        return centered, torch.rsqrt(var + self.eps)

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr``."""
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


class ConvBlock(nn.Module):
    """conv3x3 (padding 1) -> :class:`TaskBatchNorm` -> ReLU -> 2x2 max-pool (or a strided conv).

    The max-pool is taken before the normalisation's affine map and the ReLU, which is the same
    function: both are per-channel and non-decreasing once the sign of the BatchNorm weight is
    folded into the conv filter (which flips the normalised channel), and the ReLU commutes with
    the max. The statistics still come from the full-resolution conv output. The elementwise
    work after the pool, in the forward pass and in the first- and second-order backward
    passes, is then a quarter of the size, which measurably speeds up second-order MAML (those
    passes are memory-bound on CPU).
    Gradients are those of the plain order, ties included (both pick the first maximum of a
    pooling window), unless a BatchNorm weight is exactly zero or rounding makes two different
    values equal after the affine map.

    Conv outputs of more than ``2**19`` elements (a task's 75 query images in the first two blocks)
    take autograd functions that keep less for backward: the statistics and the pool keep only
    the conv output, and with :attr:`recompute_conv` not even that.

    Args:
        in_channels: input channels.
        out_channels: conv filters.
        strided: use a stride-2 conv and no pooling (MAML's Omniglot variant).

    Attributes:
        recompute_conv: redo a large conv output in slices of the batch, in forward and in
            backward, rather than keep it; by default when ``4 * in_channels <= out_channels``
            (a first block), where the conv is cheap and its output the network's largest.
    """

    def __init__(self, in_channels: int, out_channels: int, *, strided: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2 if strided else 1, padding=1)
        self.norm = TaskBatchNorm(out_channels)
        self.strided = strided
        self.recompute_conv = 4 * in_channels <= out_channels

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(n, in_channels, H, W)`` to ``(n, out_channels, H // 2, W // 2)``."""
        if self.strided:
            return torch.relu(self.norm(self.conv(x)))
        weight, bias = self.norm.weight, self.norm.bias
        assert weight is not None  # the block's TaskBatchNorm is affine
        assert bias is not None
        # Flipping a channel's filter flips its normalised output: with the sign of the BN
        # weight folded into the conv, the affine scale |weight| / std is non-negative and the
        # max-pool commutes with it (and nothing full-size is saved for the sign's product).
        sign = torch.where(weight < 0, -1.0, 1.0).to(x.dtype).detach()
        conv = self.conv
        conv_weight = conv.weight * sign.view(-1, 1, 1, 1)
        conv_bias = None if conv.bias is None else conv.bias * sign
        if x.shape[0] * conv.out_channels * x.shape[2] * x.shape[3] <= _LARGE_NUMEL:
            # elementary ops: for small tensors the autograd functions' Python calls cost more
            # than the memory they save (and their backward needs the GIL, which threads share)
            z = F.conv2d(x, conv_weight, conv_bias, padding=1)
            centered, inv_std = self.norm.center_and_inv_std(z)
            pooled = F.max_pool2d(centered, 2)
        elif self.recompute_conv:
            pooled, inv_std, _ = _ConvPooledStandardization.apply(
                x, conv_weight, conv_bias, self.norm.eps
            )
        else:
            z = F.conv2d(x, conv_weight, conv_bias, padding=1)
            pooled, inv_std, _ = _PooledStandardization.apply(z, self.norm.eps)
        scale = (weight * sign * inv_std).view(1, -1, 1, 1)
        return torch.relu(torch.addcmul(bias.view(1, -1, 1, 1), pooled, scale))


_STAT_DIMS = (0, 2, 3)  # per channel of (n, C, H, W)
# conv outputs of more elements (2 MB in float32) take the autograd functions below, and a
# redone conv runs in slices of this size
_LARGE_NUMEL = 2**19


def _pooled_standardization(z: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``max_pool2d(z, 2) - mean``, ``1 / sqrt(var + eps)`` and the pooling indices."""
    inv_count = 1.0 / (z.numel() // z.shape[1])
    mean = z.sum(dim=_STAT_DIMS, keepdim=True) * inv_count
    # two passes and a temporary rather than var_mean (measured 3x slower for these dims); no
    # autograd records the in-place square here
    centered = z - mean
    var = centered.mul_(centered).sum(dim=_STAT_DIMS) * inv_count
    pooled, indices = F.max_pool2d(z, 2, return_indices=True)
    return pooled - mean, torch.rsqrt(var + eps), indices


def _standardization_slopes(
    mean: Tensor, inv_std: Tensor, grad_pooled: Tensor, grad_inv_std: Tensor, count: int
) -> tuple[Tensor, Tensor]:
    """Return ``(offset, slope)`` of the gradient with respect to ``z``.

    That gradient is ``offset + slope * z`` plus ``grad_pooled`` routed to the maxima
    (d inv_std / dz = -inv_std^3 (z - mean) / count, d(-mean) / dz = -1 / count).
    """
    slope = (grad_inv_std * inv_std.pow(3) * (-1.0 / count)).view(1, -1, 1, 1)
    offset = grad_pooled.sum(dim=_STAT_DIMS, keepdim=True) * (-1.0 / count) - slope * mean
    return offset, slope


def _standardization_grad(
    z: Tensor, offset: Tensor, slope: Tensor, indices: Tensor, grad_pooled: Tensor
) -> Tensor:
    """Return the gradient with respect to ``z`` (one full-size tensor, routed in place)."""
    grad_z = torch.addcmul(offset, z, slope)
    n, c = z.shape[:2]
    grad_z.view(n, c, -1).scatter_add_(2, indices.view(n, c, -1), grad_pooled.view(n, c, -1))
    return grad_z


def _conv_mean(x: Tensor, weight: Tensor, bias: Tensor | None, count: int) -> Tensor:
    """Return the per-channel mean ``(1, C, 1, 1)`` of ``conv2d(x, weight, bias, padding=1)``.

    One conv of the batch's sum gives it, the conv being linear.
    """
    total = F.conv2d(x.sum(0, keepdim=True), weight, None, padding=1)
    mean = total.sum(dim=_STAT_DIMS, keepdim=True) * (1.0 / count)
    return mean if bias is None else mean + bias.view(1, -1, 1, 1)


def _batch_slices(n: int, item_numel: int) -> list[slice]:
    """Split ``n`` items into slices of about ``_LARGE_NUMEL`` elements (one item or more)."""
    step = max(1, _LARGE_NUMEL // item_numel)
    return [slice(start, start + step) for start in range(0, n, step)]


class _PooledStandardization(torch.autograd.Function):
    """:func:`_pooled_standardization` of a conv output ``z``, lean in memory.

    The same values as pooling :meth:`TaskBatchNorm.center_and_inv_std`'s centred output (the
    max commutes with subtracting a constant), but the only full-resolution tensor kept for
    backward is ``z`` itself, and the backward allocates one more: elementary ops would keep
    the centred copy and pass through four full-size temporaries. The backward is written with
    differentiable ops, so second-order gradients flow through it; ``generate_vmap_rule`` lets
    it run under ``vmap``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(z: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        return _pooled_standardization(z, eps)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float], output: tuple[Tensor, ...]) -> None:
        z, _ = inputs
        _, inv_std, indices = output
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(z, inv_std, indices)

    @staticmethod
    def backward(
        ctx: Any, grad_pooled: Tensor, grad_inv_std: Tensor, _: Tensor | None
    ) -> tuple[Tensor, None]:
        z, inv_std, indices = ctx.saved_tensors
        count = z.numel() // z.shape[1]
        mean = z.sum(dim=_STAT_DIMS, keepdim=True) * (1.0 / count)
        offset, slope = _standardization_slopes(mean, inv_std, grad_pooled, grad_inv_std, count)
        return _standardization_grad(z, offset, slope, indices, grad_pooled), None


class _ConvPooledStandardization(torch.autograd.Function):
    """:func:`_pooled_standardization` of ``conv2d(x, weight, bias, padding=1)``, conv redone.

    For a conv whose input is much smaller than its output (a network's first block: one
    channel in, 64 out) the output is the largest tensor of the whole network and the conv is
    cheap to redo. Forward and backward compute it in slices of the batch (``_LARGE_NUMEL``
    elements), so no full-size tensor is ever alive: the mean comes first, from one conv of
    the batch's sum (the conv is linear). Nothing full-size is saved for backward either. On
    the heavy throughput workload (one MAML task, 75 query images) this and
    :class:`_PooledStandardization` lower the peak of live tensors from 63 to 34 MB (a
    throwaway measurement; BENCHMARKS.md has the recorded peak RSS, 0.79 -> 0.46 GB).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: Tensor, weight: Tensor, bias: Tensor | None, eps: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        count = x.shape[0] * x.shape[2] * x.shape[3]
        mean = _conv_mean(x, weight, bias, count)
        pooled, indices, var = [], [], torch.zeros_like(mean)
        for part in _batch_slices(x.shape[0], weight.shape[0] * count // x.shape[0]):
            z = F.conv2d(x[part], weight, bias, padding=1)
            part_pooled, part_indices = F.max_pool2d(z, 2, return_indices=True)
            pooled.append(part_pooled)
            indices.append(part_indices)
            centered = z.sub_(mean)  # no autograd records these in-place ops
            var = var + centered.mul_(centered).sum(dim=_STAT_DIMS, keepdim=True)
        inv_std = torch.rsqrt(var.flatten() * (1.0 / count) + eps)
        return torch.cat(pooled) - mean, inv_std, torch.cat(indices)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        x, weight, bias, _ = inputs
        _, inv_std, indices = output
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(x, weight, bias, inv_std, indices)

    @staticmethod
    def backward(
        ctx: Any, grad_pooled: Tensor, grad_inv_std: Tensor, _: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        x, weight, bias, inv_std, indices = ctx.saved_tensors
        n, c = grad_pooled.shape[:2]
        count = n * x.shape[2] * x.shape[3]
        mean = _conv_mean(x, weight, bias, count)
        offset, slope = _standardization_slopes(mean, inv_std, grad_pooled, grad_inv_std, count)
        x_grads, weight_grads, bias_grads = [], [], []
        for part in _batch_slices(n, c * count // n):
            z = F.conv2d(x[part], weight, bias, padding=1)
            grad_z = _standardization_grad(z, offset, slope, indices[part], grad_pooled[part])
            del z
            # differentiable, as is F.conv2d's own backward, so second order flows through it
            grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad_z, x[part], weight, None if bias is None else [c],
                stride=[1, 1], padding=[1, 1], dilation=[1, 1], transposed=False,
                output_padding=[0, 0], groups=1, output_mask=ctx.needs_input_grad[:3],
            )  # fmt: skip
            x_grads.append(grad_x)
            weight_grads.append(grad_weight)
            bias_grads.append(grad_bias)
        grad_x = torch.cat(x_grads) if ctx.needs_input_grad[0] else None
        grad_weight = sum(weight_grads[1:], weight_grads[0]) if ctx.needs_input_grad[1] else None
        grad_bias = sum(bias_grads[1:], bias_grads[0]) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None


class Conv4(nn.Module):
    """The 4-block convolutional network of Vinyals et al. and Finn et al.

    Each block (:class:`ConvBlock`) is conv3x3 (padding 1) -> :class:`TaskBatchNorm` -> ReLU ->
    2x2 max-pool. With
    ``strided=True`` the conv has stride 2 and there is no pooling; the final feature map is then
    averaged over space, as in MAML's Omniglot model. The papers use 64 channels for 28x28
    Omniglot and 32 for 84x84 miniImageNet.

    Without ``out_features`` the network is an embedding encoder (ProtoNet, Matching Nets); with
    it, a linear ``head`` turns the embedding into ``out_features`` logits (MAML).

    Args:
        in_channels: input channels (1 for Omniglot, 3 for miniImageNet).
        out_features: size of the linear head (``n_way``), or ``None`` for no head.
        hidden_channels: channels of every block.
        image_size: input height and width, used to size the head (and :attr:`embedding_dim`).
        strided: MAML's Omniglot variant (strided convs, global average pooling).

    Attributes:
        embedding_dim: size of the flattened embedding fed to the head.

    Examples:
        >>> model = Conv4(1, out_features=5)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 5])

    References:
        Vinyals et al. "Matching Networks for One Shot Learning." NeurIPS 2016.
        Finn, Abbeel and Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
        Networks." ICML 2017.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_features: int | None = None,
        *,
        hidden_channels: int = 64,
        image_size: int = 28,
        strided: bool = False,
    ) -> None:
        super().__init__()
        channels = [in_channels] + [hidden_channels] * 4
        self.features = nn.Sequential(
            *(
                ConvBlock(c_in, c_out, strided=strided)
                for c_in, c_out in itertools.pairwise(channels)
            )
        )
        self.strided = strided
        size = image_size
        for _ in range(4):
            size = (size + 1) // 2 if strided else size // 2
        if size < 1:
            raise ValueError(f"image_size={image_size} is too small for 4 blocks; use >= 16")
        self.embedding_dim = hidden_channels * (1 if strided else size * size)
        self.head = nn.Linear(self.embedding_dim, out_features) if out_features else None

    def embed(self, x: Tensor) -> Tensor:
        """Return embeddings ``(n, embedding_dim)`` of images ``(n, in_channels, H, W)``."""
        h = self.features(x)
        return h.mean(dim=(2, 3)) if self.strided else h.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(n, out_features)``, or embeddings when there is no head."""
        h = self.embed(x)
        return h if self.head is None else self.head(h)


class MLP(nn.Module):
    """A ReLU multilayer perceptron; the default is the 1-40-40-1 sinusoid regressor of MAML.

    Args:
        in_features: input size.
        out_features: output size of the final linear layer, called ``head``.
        hidden_sizes: sizes of the hidden layers, each followed by ReLU.

    Examples:
        >>> MLP()(torch.zeros(10, 1)).shape
        torch.Size([10, 1])
    """

    def __init__(
        self, in_features: int = 1, out_features: int = 1, hidden_sizes: Sequence[int] = (40, 40)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for size_in, size_out in itertools.pairwise([in_features, *hidden_sizes]):
            layers += [nn.Linear(size_in, size_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden_sizes[-1] if hidden_sizes else in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        """Return outputs ``(n, out_features)`` for inputs ``(n, in_features)``."""
        return self.head(self.body(x))
