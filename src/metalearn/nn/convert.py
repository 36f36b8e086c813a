"""One-call conversion of a user's network to metalearn's per-task BatchNorm.

Gradient learners (MAML and its relatives) refuse ``torch.nn`` BatchNorm layers: their running
statistics leak information between tasks and cannot be updated under ``vmap``, and their
second-order meta-gradient under ``vmap`` is wrong. :func:`convert_batchnorm` swaps each one for
a :class:`~metalearn.nn.backbones.TaskBatchNorm` that normalises with the statistics of the
batch it is given (one task's support or query set), carrying over the learned scale and shift.
This module must not import ``metalearn.data`` or ``metalearn.algorithms``.
"""

from __future__ import annotations

from torch import nn

from metalearn.nn.backbones import TaskBatchNorm

__all__ = ["convert_batchnorm"]


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``torch.nn`` BatchNorm layer of ``module`` by a :class:`TaskBatchNorm`.

    The replacement keeps the layer's ``num_features``, ``eps`` and affine ``weight`` and
    ``bias`` (copied values, on the same device and dtype); running statistics and momentum are
    dropped, since every forward pass normalises with its own batch's statistics, as the
    original does in training mode. The module is changed in place and returned, so
    ``MAML(convert_batchnorm(my_resnet), ...)`` works in one line.

    Args:
        module: a network, or a single BatchNorm layer (which is then returned converted).

    Returns:
        ``module`` with its BatchNorm layers replaced (a new module if ``module`` itself is one).

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        >>> convert_batchnorm(net)[1]
        TaskBatchNorm(8, eps=1e-05, affine=True)
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return _task_batch_norm(module)
    for name, child in module.named_children():
        converted = convert_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def _task_batch_norm(layer: nn.modules.batchnorm._BatchNorm) -> TaskBatchNorm:
    """Return a :class:`TaskBatchNorm` with ``layer``'s size, ``eps`` and affine parameters."""
    replacement = TaskBatchNorm(layer.num_features, eps=layer.eps, affine=layer.affine)
    if layer.affine:
        weight, bias = layer.weight, layer.bias
        replacement.weight = nn.Parameter(weight.detach().clone(), weight.requires_grad)
        replacement.bias = nn.Parameter(bias.detach().clone(), bias.requires_grad)
    return replacement
