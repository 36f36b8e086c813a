"""Backbones of the few-shot papers: the 4-block conv net (Conv4) and the sinusoid MLP.

Normalisation follows MAML's convention, per task: :class:`TaskBatchNorm`
(:mod:`metalearn.nn.normalization`) normalises with the statistics of the batch it is given and
keeps no running statistics. Every parameter is a plain ``nn.Parameter`` and there are no
buffers, so the models work with ``torch.func.functional_call`` and per-task fast weights. The
classifier layer is called ``head``, which is what ANIL adapts. This module must not import
``metalearn.data`` or ``metalearn.algorithms``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metalearn.nn.lean_conv import lean_conv_block
from metalearn.nn.normalization import TaskBatchNorm

__all__ = ["MLP", "Conv4", "ConvBlock", "TaskBatchNorm"]


class ConvBlock(nn.Module):
    """conv3x3 (padding 1) -> :class:`TaskBatchNorm` -> ReLU -> 2x2 max-pool (or a strided conv).

    Args:
        in_channels: input channels.
        out_channels: conv filters.
        strided: use a stride-2 conv and no pooling (MAML's Omniglot variant).

    Attributes:
        lean: compute the pooled block with :func:`~metalearn.nn.lean_conv.lean_conv_block`
            (default ``True``): the same function with a quarter of the elementwise work and
            less memory kept for backward. ``False`` runs the reference order below.
        recompute_conv: for the lean path, redo a large conv output in slices of the batch, in
            forward and in backward, rather than keep it; by default when
            ``4 * in_channels <= out_channels`` (a first block), where the conv is cheap and its
            output the network's largest.
        channels_last: for the lean path, compute in the channels-last memory format (default
            ``True``; measured faster on CPU, BENCHMARKS.md); the output keeps that format.
    """

    def __init__(self, in_channels: int, out_channels: int, *, strided: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2 if strided else 1, padding=1)
        self.norm = TaskBatchNorm(out_channels)
        self.strided = strided
        self.lean = True
        self.recompute_conv = 4 * in_channels <= out_channels
        self.channels_last = True

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(n, in_channels, H, W)`` to ``(n, out_channels, H // 2, W // 2)``."""
        if self.lean and not self.strided and self.norm.per_batch:
            # same function, pooled before the affine map and lean in memory (CPU-bound MAML);
            # it computes batch statistics only, so recorded or fixed ones take this reference
            return self._lean_forward(x)
        h = torch.relu(self.norm(self.conv(x)))
        return h if self.strided else F.max_pool2d(h, 2)

    def _lean_forward(self, x: Tensor) -> Tensor:
        weight, bias = self.norm.weight, self.norm.bias
        assert weight is not None  # the block's TaskBatchNorm is affine
        assert bias is not None
        conv = self.conv
        return lean_conv_block(
            x, conv.weight, conv.bias, weight, bias, self.norm.eps,
            recompute_conv=self.recompute_conv, channels_last=self.channels_last,
        )  # fmt: skip


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
