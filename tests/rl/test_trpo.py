"""TRPO: conjugate gradient, the KL Hessian-vector product, and a step that keeps its KL bound."""

import pytest
import torch
from torch.testing import assert_close

from metalearn.rl.policies import gaussian_kl, gaussian_log_prob
from metalearn.rl.trpo import conjugate_gradient, flat, kl_hessian_vector_product, trpo_step


def test_conjugate_gradient_solves_a_positive_definite_system():
    A = torch.randn(6, 6, dtype=torch.float64)
    A = A @ A.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=20)
    assert_close(x, torch.linalg.solve(A, b))


def _toy_problem(dtype=torch.float64):
    """A Gaussian policy over 3-dim actions with fixed samples and advantages."""
    old = {
        "mean": torch.tensor([0.1, -0.2, 0.3], dtype=dtype),
        "log_std": torch.zeros(3, dtype=dtype),
    }
    actions = old["mean"] + torch.randn(256, 3, dtype=dtype)
    advantages = actions.sum(-1) - actions.sum(-1).mean()  # rewards moving the mean up
    old_log_probs = gaussian_log_prob(old["mean"], old["log_std"], actions)

    def loss_fn(params):
        ratio = torch.exp(
            gaussian_log_prob(params["mean"], params["log_std"], actions) - old_log_probs
        )
        return -(ratio * advantages).mean()

    def kl_fn(params):
        return gaussian_kl(old["mean"], old["log_std"], params["mean"], params["log_std"])

    return old, loss_fn, kl_fn


def test_kl_hessian_vector_product_equals_the_explicit_hessian():
    old, _, kl_fn = _toy_problem()
    leaves = {k: v.clone().requires_grad_(True) for k, v in old.items()}
    product = kl_hessian_vector_product(kl_fn, leaves)
    H = torch.autograd.functional.hessian(
        lambda x: kl_fn({"mean": x[:3], "log_std": x[3:]}), flat(list(old.values()))
    )
    v = torch.randn(6, dtype=torch.float64)
    assert_close(product(v), H @ v)
    # a Gaussian's Fisher in (mean, log_std) is diag(1 / sigma^2, 2)
    assert_close(H, torch.diag(torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 2.0], dtype=torch.float64)))


@pytest.mark.parametrize("max_kl", [0.01, 0.001])
def test_trpo_step_respects_its_kl_bound_and_improves_the_loss(max_kl):
    old, loss_fn, kl_fn = _toy_problem()
    result = trpo_step(loss_fn, kl_fn, old, max_kl=max_kl)
    assert result.accepted
    measured_kl = kl_fn(result.params)
    assert measured_kl <= max_kl * (1 + 1e-6)
    assert_close(measured_kl, result.kl)
    assert measured_kl > 0.5 * max_kl  # the step goes to the edge of the trust region
    assert loss_fn(result.params) < loss_fn(old)
    assert_close(result.loss_before, loss_fn(old))
    assert result.params["mean"].sum() > old["mean"].sum()  # towards the advantages


def test_trpo_step_takes_no_step_when_the_loss_cannot_improve():
    old, _, kl_fn = _toy_problem()

    def flat_loss(params):  # constant: zero gradient, so no step can decrease it
        return (params["mean"] * 0).sum() + 1.0

    result = trpo_step(flat_loss, kl_fn, old)
    assert not result.accepted
    assert result.backtracks == 15
    for name in old:
        assert torch.equal(result.params[name], old[name])
