"""The heads of Baseline and Baseline++ (Chen et al., 2019) and their per-episode fit.

The fit follows ``methods/baselinefinetune.py`` of wyharveychen/CloserLookFewShot: SGD with
learning rate 0.01, momentum 0.9, dampening 0.9, weight decay 1e-3 (on the bias too), batches
of 4 support examples, 100 epochs over the support set. The cosine head is that code's
``distLinear``: ``s * g_c * cos(x, v_c)`` with a learned per-class gain ``g_c`` (weight
normalization) and ``s = 2`` up to 200 classes, else 10. Must not import ``metalearn.data`` or
``metalearn.training``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metalearn.errors import ConfigError

__all__ = ["CosineLinear", "FitSettings", "chen_scale", "cosine_logits", "fit_sgd"]

_EPS = 1e-5  # added to the feature norm, as distLinear does


def chen_scale(n_classes: int) -> float:
    """Baseline++'s fixed logit scale: 2 up to 200 classes, 10 above (Omniglot's 4,112)."""
    return 2.0 if n_classes <= 200 else 10.0


def cosine_logits(features: Tensor, direction: Tensor, gain: Tensor, scale: float) -> Tensor:
    r"""Return ``scale * gain_c * cos(x, v_c)``: Baseline++'s logits ``(n, n_classes)``.

    .. math:: \mathrm{logit}_c(x) = s\, g_c \frac{\langle x, v_c \rangle}{(\lVert x \rVert +
        10^{-5}) \lVert v_c \rVert}

    Args:
        features: ``(n, d)``.
        direction: ``(n_classes, d)`` class weight vectors ``v_c`` (only their direction counts).
        gain: ``(n_classes,)`` per-class gains ``g_c`` (weight normalization's magnitude).
        scale: the fixed scale ``s``.
    """
    x = features / (features.norm(dim=-1, keepdim=True) + _EPS)
    weight = gain.unsqueeze(-1) * direction / direction.norm(dim=-1, keepdim=True)
    return scale * x @ weight.T


class CosineLinear(nn.Module):
    """Baseline++'s classifier: :func:`cosine_logits` with learned directions and gains.

    Initialized as ``nn.Linear(d, n, bias=False)``, with the gains set to the initial row norms
    (what ``torch.nn.utils.weight_norm`` does), so the first logits are ``s`` times the plain
    linear ones over the feature norm.
    """

    def __init__(self, in_features: int, out_features: int, scale: float | None = None) -> None:
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.direction = nn.Parameter(
            torch.empty(out_features, in_features).uniform_(-bound, bound)
        )
        self.gain = nn.Parameter(self.direction.detach().norm(dim=1).clone())
        self.scale = chen_scale(out_features) if scale is None else scale

    def forward(self, features: Tensor) -> Tensor:
        """Return logits ``(n, out_features)``."""
        return cosine_logits(features, self.direction, self.gain, self.scale)


@dataclass(frozen=True)
class FitSettings:
    """How each episode's head is fitted (defaults: Chen et al.'s ``baselinefinetune.py``)."""

    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.9
    weight_decay: float = 1e-3
    batch_size: int = 4
    epochs: int = 100

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.batch_size >= 1 and self.epochs >= 0):
            raise ConfigError(
                f"head fit lr={self.lr}, batch_size={self.batch_size}, epochs={self.epochs}: "
                "need lr > 0, batch_size >= 1 and epochs >= 0"
            )


def fit_sgd(
    params: list[Tensor],
    loss_of: Callable[[Tensor], Tensor],
    n: int,
    fit: FitSettings,
    generator: torch.Generator,
) -> None:
    """Minimize ``loss_of(indices)`` over ``params`` (in place) by SGD on mini-batches of ``n``.

    Each epoch visits the ``n`` examples once in a fresh random order, in batches of
    ``fit.batch_size`` (the last may be smaller), as ``baselinefinetune.py`` does. The update
    is ``torch.optim.SGD``'s (weight decay added to the gradient, momentum buffer started at
    the first gradient, then ``b = momentum * b + (1 - dampening) * g``), written out because
    the optimizer class costs more per call than a whole 5-way head fit.
    """
    device = params[0].device
    buffers: list[Tensor] | None = None
    for _ in range(fit.epochs):
        for idx in torch.randperm(n, generator=generator).split(fit.batch_size):
            grads = torch.autograd.grad(loss_of(idx.to(device)), params)
            with torch.no_grad():
                steps = [g + fit.weight_decay * p for g, p in zip(grads, params, strict=True)]
                if buffers is None:
                    buffers = steps
                else:
                    for b, d in zip(buffers, steps, strict=True):
                        b.mul_(fit.momentum).add_(d, alpha=1 - fit.dampening)
                for p, b in zip(params, buffers, strict=True):
                    p.sub_(fit.lr * b)
