"""The functional inner loop shared by MAML, first-order MAML, ANIL, Meta-SGD, Reptile and meta-RL.

Parameters are ``dict[str, Tensor]``; nothing is cloned or mutated. ``torch.func.grad`` works
under ``torch.no_grad()``, so evaluation can adapt without building a second-order graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from metalearn.types import Params

__all__ = ["gradient_descent", "sgd_step"]


def sgd_step(params: Params, grads: Params, lr: float | Tensor | Mapping[str, Tensor]) -> Params:
    r"""Return ``params - lr * grads``, with ``lr`` a scalar or a per-parameter mapping.

    .. math:: \theta' = \theta - \alpha \odot \nabla_\theta L
    """
    if isinstance(lr, Mapping):
        return {name: p - lr[name] * grads[name] for name, p in params.items()}
    return {name: p - lr * grads[name] for name, p in params.items()}


def gradient_descent(
    loss_fn: Callable[[Params], Tensor],
    params: Params,
    *,
    steps: int,
    lr: float | Tensor | Mapping[str, Tensor],
    first_order: bool = False,
) -> Params:
    """Take ``steps`` differentiable gradient steps on ``loss_fn`` from ``params``.

    Args:
        loss_fn: maps parameters to a scalar loss (the support loss of one task).
        params: the starting parameters (only these are adapted).
        steps: number of inner steps (0 returns ``params`` unchanged).
        lr: inner learning rate: a scalar, or a mapping from parameter name to a tensor
            broadcastable to that parameter (Meta-SGD).
        first_order: detach the inner gradients (first-order MAML): the meta-gradient then
            ignores second derivatives.

    Returns:
        The adapted parameters ``fast_params``.
    """
    for _ in range(steps):
        grads = torch.func.grad(loss_fn)(params)
        if first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        params = sgd_step(params, grads, lr)
    return params
