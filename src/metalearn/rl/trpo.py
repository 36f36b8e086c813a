"""Trust-region policy optimisation (TRPO): one step on parameter dicts.

A natural-gradient direction by conjugate gradient, then a backtracking line search that
accepts only steps that improve the loss within the KL bound.

Works on parameter dicts and on loss and KL closures of them, so the same step serves plain
TRPO and MAML-TRPO (whose closures adapt the parameters before scoring them). The KL's
curvature comes by double backprop (:func:`kl_hessian_vector_product`) or, for Gaussian
policies, as a Gauss-Newton product (:func:`gauss_newton_fisher`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple, TypeAlias

import torch
from torch import Tensor

from metalearn.types import Params

__all__ = [
    "FisherBuilder",
    "TRPOResult",
    "conjugate_gradient",
    "flat",
    "gauss_newton_fisher",
    "kl_hessian_vector_product",
    "trpo_step",
]

FisherBuilder: TypeAlias = Callable[[Params], Callable[[Tensor], Tensor]]
"""Maps parameters (requiring grad) to the product ``v -> F v`` with the KL's curvature there."""


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, *, iters: int = 10, tol: float = 1e-10
) -> Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``x -> A x``.

    Args:
        matvec: the product with ``A``.
        b: ``(n,)`` right-hand side.
        iters: at most this many iterations (``n`` iterations solve it exactly in exact
            arithmetic).
        tol: stop once the squared residual norm falls below this.

    Returns:
        ``(n,)`` the approximate solution ``x``.
    """
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    residual_sq = residual @ residual
    for _ in range(iters):
        if residual_sq < tol:
            break
        product = matvec(direction)
        alpha = residual_sq / (direction @ product)
        x = x + alpha * direction
        residual = residual - alpha * product
        new_residual_sq = residual @ residual
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return x


class TRPOResult(NamedTuple):
    """What one TRPO step did.

    Attributes:
        params: the new parameters (the old ones when no step was accepted).
        loss_before: the loss at the old parameters.
        loss_after: the loss at ``params``.
        kl: the mean KL between the old policy and the policy at ``params``.
        accepted: whether the line search accepted a step.
        backtracks: how many times the step was shrunk (the line search's index).
    """

    params: Params
    loss_before: Tensor
    loss_after: Tensor
    kl: Tensor
    accepted: bool
    backtracks: int


def _unflat(vector: Tensor, like: Params) -> Params:
    out, start = {}, 0
    for name, p in like.items():
        out[name] = vector[start : start + p.numel()].view_as(p)
        start += p.numel()
    return out


def flat(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate flattened tensors into one vector (the parameter order of a dict)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def kl_hessian_vector_product(
    kl_fn: Callable[[Params], Tensor], params: Params
) -> Callable[[Tensor], Tensor]:
    """Return ``v -> H v`` with ``H`` the Hessian of ``kl_fn`` at ``params`` (double backprop).

    ``params`` must require grad. The graph is built once and reused for every product.
    """
    leaves = list(params.values())
    kl_grad = flat(
        torch.autograd.grad(kl_fn(params), leaves, create_graph=True, materialize_grads=True)
    )
    return lambda v: flat(
        torch.autograd.grad(kl_grad @ v, leaves, retain_graph=True, materialize_grads=True)
    )


def gauss_newton_fisher(
    outputs: Callable[[Params], tuple[Tensor, Tensor]], masks: Tensor, old_log_std: Tensor
) -> FisherBuilder:
    r"""The Hessian of a mean KL of Gaussian policies at the old parameters, as ``J^T M J``.

    The KL is ``KL(pi_old || pi)`` averaged over the valid steps of each task, then over the
    tasks. ``J`` is the Jacobian of the policies' means and log-stds (``outputs(params)``:
    ``(N, T, B, A)`` means and ``(N, A)`` log-stds of ``N`` tasks) with respect to the
    parameters, and ``M`` the KL's curvature in those outputs (``1 / sigma^2`` for a mean, 2
    for a log-std, times each step's weight in the mean). At the old parameters the KL's
    gradient in the outputs vanishes, so this equals the Hessian exactly (a test checks it),
    but it needs no third derivatives through MAML's adaptation: measured 1.45x faster per
    product than double backprop on 10 tasks x 10 trajectories.

    Args:
        outputs: the policies' means and log-stds as a function of the parameters.
        masks: ``(N, T, B)`` valid steps of each task's episodes.
        old_log_std: ``(N, A)`` log-stds of the old policies.
    """
    n_tasks = masks.shape[0]
    step_weights = masks / masks.sum((-2, -1), keepdim=True) / n_tasks
    mean_weights = step_weights.unsqueeze(-1) * torch.exp(-2 * old_log_std)[:, None, None]
    log_std_weight = 2.0 / n_tasks

    def build(params: Params) -> Callable[[Tensor], Tensor]:
        leaves = list(params.values())
        mean, log_std = outputs(params)
        probes = (
            torch.zeros_like(mean, requires_grad=True),
            torch.zeros_like(log_std, requires_grad=True),
        )
        # J^T u is linear in the probe u, so differentiating it in u gives J v.
        jt_probe = flat(torch.autograd.grad((mean, log_std), leaves, probes, create_graph=True))

        def product(v: Tensor) -> Tensor:
            j_mean, j_log_std = torch.autograd.grad(jt_probe, probes, v, retain_graph=True)
            weighted = (mean_weights * j_mean, log_std_weight * j_log_std)
            return flat(torch.autograd.grad((mean, log_std), leaves, weighted, retain_graph=True))

        return product

    return build


def _natural_step(
    loss_fn: Callable[[Params], Tensor],
    fisher: FisherBuilder,
    params: Params,
    max_kl: float,
    cg_iters: int,
    damping: float,
    reduce: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """Return the loss at ``params`` and the full step ``beta * s``, ``s = -F^{-1} g``."""
    leaves = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    loss = loss_fn(leaves)
    # a parameter the loss ignores gets a zero gradient rather than an error
    grad = flat(torch.autograd.grad(loss, list(leaves.values()), materialize_grads=True))
    grad, loss = reduce(grad), reduce(loss.detach())
    product = fisher(leaves)

    def fisher_vector(v: Tensor) -> Tensor:
        return reduce(product(v)) + damping * v

    direction = conjugate_gradient(fisher_vector, -grad, iters=cg_iters)
    curvature = direction @ fisher_vector(direction)
    beta = torch.sqrt(2 * max_kl / curvature.clamp_min(1e-12))
    return loss.detach(), (beta * direction).detach()


def trpo_step(
    loss_fn: Callable[[Params], Tensor],
    kl_fn: Callable[[Params], Tensor],
    params: Params,
    *,
    fisher: FisherBuilder | None = None,
    max_kl: float = 0.01,
    cg_iters: int = 10,
    cg_damping: float = 1e-5,
    ls_max_steps: int = 15,
    ls_backtrack_ratio: float = 0.8,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> TRPOResult:
    r"""One TRPO step on ``loss_fn`` (to minimise) under ``kl_fn <= max_kl``.

    The step direction solves ``(F + damping I) s = -g`` by conjugate gradient, with ``F`` the
    Hessian of ``kl_fn`` at ``params`` (the Fisher information when ``kl_fn`` is the mean KL
    from the old policy) and ``g`` the gradient of ``loss_fn``. It is scaled to the edge of the
    trust region, ``s^T F s = 2 max_kl``, then shrunk by ``ls_backtrack_ratio`` until the loss
    decreases and the KL is within ``max_kl``.

    Args:
        loss_fn: parameters -> scalar loss, differentiable twice if ``kl_fn`` needs it.
        kl_fn: parameters -> mean KL from the old policy (0 with zero gradient at ``params``).
        params: the current parameters (not modified).
        fisher: builds ``v -> F v`` from parameters that require grad; default: the Hessian
            of ``kl_fn`` by double backprop (:func:`kl_hessian_vector_product`).
        max_kl: the trust-region radius (the MAML paper's 0.01).
        cg_iters: conjugate-gradient iterations.
        cg_damping: added to the Fisher-vector products for stability.
        ls_max_steps: line-search trials before giving up (no step).
        ls_backtrack_ratio: the shrink factor of each trial.
        reduce: applied to the loss, its gradient, the KL and every Fisher-vector product
            before use: with data-parallel ranks that each hold a share of the tasks, the mean
            over the ranks, so that every rank takes the step of the whole meta-batch.

    Returns:
        A :class:`TRPOResult`.

    References:
        Schulman, Levine, Moritz, Jordan and Abbeel. "Trust Region Policy Optimization."
        ICML 2015.
    """
    fisher = fisher or partial(kl_hessian_vector_product, kl_fn)
    reduce = reduce or (lambda t: t)
    loss_before, full_step = _natural_step(
        loss_fn, fisher, params, max_kl, cg_iters, cg_damping, reduce
    )
    old = {name: p.detach() for name, p in params.items()}
    old_flat = flat(list(old.values()))
    with torch.no_grad():
        for backtracks in range(ls_max_steps):
            candidate = _unflat(old_flat + ls_backtrack_ratio**backtracks * full_step, old)
            loss, kl = reduce(loss_fn(candidate)), reduce(kl_fn(candidate))
            if loss < loss_before and kl <= max_kl:
                return TRPOResult(candidate, loss_before, loss, kl, True, backtracks)
    zero = torch.zeros_like(loss_before)
    return TRPOResult(old, loss_before, loss_before, zero, False, ls_max_steps)
