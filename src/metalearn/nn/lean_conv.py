"""The conv -> BatchNorm -> ReLU -> 2x2 max-pool block, fast: :func:`lean_conv_block`.

:class:`~metalearn.nn.backbones.ConvBlock` computes ``max_pool2d(relu(task_batch_norm(conv(x))))``
(its reference path); this module computes the same function with less elementwise work and
memory, which on CPU, not the convolutions, bounds second-order MAML (BENCHMARKS.md):

* The max-pool is taken before the normalisation's affine map and the ReLU. That is the same
  function: both are per-channel and non-decreasing once the sign of the BatchNorm weight is
  folded into the conv filter (a flipped filter flips the normalised channel), and the ReLU
  commutes with the max. The statistics still come from the full-resolution conv output. The
  elementwise work after the pool, forward and in the first- and second-order backward passes,
  is then a quarter of the size. Gradients are those of the plain order, ties included (both
  pick the first maximum of a pooling window), unless a BatchNorm weight is exactly zero or
  rounding makes two different values equal after the affine map.
* Conv outputs of more than ``_LARGE_NUMEL`` elements (a task's 75 query images in the first
  two blocks) take autograd functions that keep only the conv output for backward
  (:class:`_PooledStandardization`), or, for a first block whose conv is cheap and whose output
  is the network's largest tensor, not even that: the conv is redone in slices
  (:class:`_ConvPooledStandardization`). Their backward passes are differentiable, so second
  order flows through them, and they run under ``vmap``.
* With ``channels_last=True`` (outside ``torch.func`` transforms, which cannot query memory
  formats) the block runs on channels-last tensors: PyTorch's CPU max-pool of a channels-first
  tensor is a scalar loop per plane, 7x slower than its channels-last kernel for a first block
  of 300 images, and oneDNN's convolutions are native in that layout (BENCHMARKS.md).

The batch statistics are MAML's transductive ones (every forward pass normalises with its own
batch); inductive normalisation (fixed statistics) takes the reference path. Must not import
``metalearn.data`` or ``metalearn.algorithms``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from metalearn.nn.normalization import center_and_inv_std

__all__ = ["lean_conv_block"]


def lean_conv_block(
    x: Tensor,
    conv_weight: Tensor,
    conv_bias: Tensor | None,
    norm_weight: Tensor,
    norm_bias: Tensor,
    eps: float,
    *,
    recompute_conv: bool,
    channels_last: bool = False,
) -> Tensor:
    """Return ``max_pool2d(relu(batch_norm(conv2d(x, padding=1))), 2)``, lean (module doc).

    Args:
        x: ``(n, C_in, H, W)`` inputs.
        conv_weight: ``(C, C_in, 3, 3)`` filters.
        conv_bias: ``(C,)`` conv bias, or ``None``.
        norm_weight: ``(C,)`` BatchNorm scale.
        norm_bias: ``(C,)`` BatchNorm shift.
        eps: added to the batch variance.
        recompute_conv: for a large conv output, redo the conv in slices rather than keep it.
        channels_last: compute in the channels-last memory format (ignored inside ``vmap`` or
            ``torch.func.grad``); the values are the same up to rounding.
    """
    if channels_last and _outside_transforms():
        # both operands (a channels-first weight makes oneDNN reorder it at every call), and
        # ``to`` rather than ``contiguous``: a one-channel tensor counts as either format, and
        # only explicit channels-last strides make the conv's output channels-last
        x = x.to(memory_format=torch.channels_last)
        conv_weight = conv_weight.to(memory_format=torch.channels_last)
    # Flipping a channel's filter flips its normalised output: with the sign of the BN weight
    # folded into the conv, the affine scale |weight| / std is non-negative and the max-pool
    # commutes with it (and nothing full-size is saved for the sign's product).
    sign = torch.where(norm_weight < 0, -1.0, 1.0).to(x.dtype).detach()
    weight = conv_weight * sign.view(-1, 1, 1, 1)
    bias = None if conv_bias is None else conv_bias * sign
    if x.shape[0] * weight.shape[0] * x.shape[2] * x.shape[3] <= _LARGE_NUMEL:
        # elementary ops: for small tensors the autograd functions' Python calls cost more
        # than the memory they save (and their backward needs the GIL, which threads share)
        z = F.conv2d(x, weight, bias, padding=1)
        centered, inv_std = center_and_inv_std(z, eps)
        pooled = F.max_pool2d(centered, 2)
    elif recompute_conv:
        pooled, inv_std, _ = _ConvPooledStandardization.apply(x, weight, bias, eps)
    else:
        z = F.conv2d(x, weight, bias, padding=1)
        pooled, inv_std, _ = _PooledStandardization.apply(z, eps)
    scale = (norm_weight * sign * inv_std).view(1, -1, 1, 1)
    return torch.relu(torch.addcmul(norm_bias.view(1, -1, 1, 1), pooled, scale))


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


def _outside_transforms() -> bool:
    """Whether no ``torch.func`` transform runs: memory formats can be queried and set."""
    return torch._C._functorch.peek_interpreter_stack() is None


def _is_channels_last(z: Tensor) -> bool:
    """Whether the conv output ``z`` is channels-last (else it is channels-first)."""
    return _outside_transforms() and not z.is_contiguous()


def _standardization_grad(
    z: Tensor, offset: Tensor, slope: Tensor, indices: Tensor, grad_pooled: Tensor
) -> Tensor:
    """Return the gradient with respect to ``z`` (one full-size tensor, routed in place)."""
    if _is_channels_last(z):  # the pooling indices count within each plane, not in memory
        routed = torch.ops.aten.max_pool2d_with_indices_backward(
            grad_pooled, z, [2, 2], [2, 2], [0, 0], [1, 1], False, indices
        )
        return routed.addcmul_(z, slope).add_(offset)
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

    The same values as pooling :func:`~metalearn.nn.normalization.center_and_inv_std`'s centred
    output (the
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
    the batch's sum (the conv is linear). Nothing full-size is saved for backward either
    (BENCHMARKS.md has the memory this saves).
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
