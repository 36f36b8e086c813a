"""The functional inner loop shared by MAML, first-order MAML, ANIL, Meta-SGD, Reptile and meta-RL.

Parameters are ``dict[str, Tensor]``; nothing is cloned or mutated. Under ``torch.no_grad()``
evaluation adapts without building a second-order graph.

Inside a ``torch.func`` transform (``vmap`` over tasks) the inner gradient is ``torch.func.grad``;
elsewhere it is ``torch.autograd.grad``, which gives the same values and, unlike functorch's
transforms, may run in several threads at once (the task threads of
:class:`metalearn.algorithms.base.Learner`).
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
        if torch._C._functorch.peek_interpreter_stack() is not None:  # inside vmap or grad
            grads = torch.func.grad(loss_fn)(params)
            if first_order:
                grads = {name: g.detach() for name, g in grads.items()}
        else:
            grads = _autograd_grads(loss_fn, params, create_graph=not first_order)
        params = sgd_step(params, grads, lr)
    return params


def _autograd_grads(
    loss_fn: Callable[[Params], Tensor], params: Params, *, create_graph: bool
) -> Params:
    """``torch.func.grad(loss_fn)(params)`` with ``torch.autograd.grad`` (no functorch levels).

    The gradient keeps its graph to ``params`` when ``create_graph`` and grad mode is on (as
    ``torch.func.grad`` does), and is detached otherwise.
    """
    create_graph = create_graph and torch.is_grad_enabled()
    with torch.enable_grad():
        inputs = {
            name: p if p.requires_grad else p.detach().requires_grad_()
            for name, p in params.items()
        }
        loss = loss_fn(inputs)
        grads = torch.autograd.grad(loss, list(inputs.values()), create_graph=create_graph)
    return dict(zip(inputs, grads, strict=True))
