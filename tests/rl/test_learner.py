"""MAML-RL learner: vmapped == loop, exact Fisher products, first/second order, TRPO bound."""

import pytest
import torch
from torch.testing import assert_close

from metalearn.errors import ConfigError
from metalearn.rl import GaussianMLPPolicy, TaskDistribution, TrajectorySampler
from metalearn.rl.learner import MetaRLLearner
from metalearn.rl.policies import gaussian_kl
from metalearn.rl.trpo import flat, kl_hessian_vector_product

ENV_ID = "metalearn/Navigation2D-v0"


@pytest.fixture(scope="module")
def sampler():
    sampler = TrajectorySampler(ENV_ID, 4, env_kwargs={"max_episode_steps": 20})
    yield sampler
    sampler.close()


@pytest.fixture(scope="module")
def tasks():
    return TaskDistribution(ENV_ID, seed=1).sample_batch(3)


def _learner(sampler, dtype=torch.float64, **kwargs):
    policy = GaussianMLPPolicy(2, 2, (16, 16)).to(dtype)
    return MetaRLLearner(policy, sampler, **kwargs)


def _grad(loss, params):
    return torch.autograd.grad(loss, list(params.values()))


def _task(data, i):
    """Task ``i`` of stacked rollout data, as unbatched tensors."""
    supports = [type(b)(*(t[i] for t in b)) for b in data.supports]
    query = type(data.query)(*(t[i] for t in data.query))
    return supports, query, data.old_mean[i], data.old_log_std[i], data.old_log_probs[i]


@pytest.mark.parametrize("first_order", [False, True])
def test_vmapped_surrogate_and_kl_equal_a_loop_over_tasks(sampler, tasks, first_order):
    learner = _learner(sampler, first_order=first_order)
    data, _ = learner.collect(tasks)
    params = learner.meta_params()
    losses, kls = [], []
    for i in range(len(tasks)):
        supports, query, old_mean, old_log_std, old_log_probs = _task(data, i)
        fast = learner.adapt_policy(params, supports)
        log_probs = learner.policy.log_prob(fast, query.observations, query.actions)
        ratio = torch.exp(log_probs - old_log_probs)
        losses.append(-(ratio * query.advantages * query.masks).sum() / query.masks.sum())
        mean, log_std = learner.policy.distribution(fast, query.observations)
        kl = gaussian_kl(old_mean, old_log_std, mean, log_std)
        kls.append((kl * query.masks).sum() / query.masks.sum())
    loop_loss = torch.stack(losses).mean()
    vmapped = learner.surrogate_loss(params, data)
    assert_close(vmapped, loop_loss)
    assert_close(_grad(vmapped, params), _grad(loop_loss, params))
    assert_close(learner.mean_kl(params, data), torch.stack(kls).mean())


def test_surrogate_at_the_old_params_is_minus_mean_advantage_and_kl_is_zero(sampler, tasks):
    learner = _learner(sampler)
    data, _ = learner.collect(tasks)
    params = learner.meta_params()
    q = data.query
    expected = -((q.advantages * q.masks).sum((1, 2)) / q.masks.sum((1, 2))).mean()
    assert_close(learner.surrogate_loss(params, data), expected)
    kl = learner.mean_kl(params, data)
    assert_close(kl, torch.zeros((), dtype=kl.dtype), atol=1e-12, rtol=0)
    for g in _grad(kl, params):
        assert_close(g, torch.zeros_like(g), atol=1e-10, rtol=0)


@pytest.mark.parametrize("inner_steps", [0, 1, 2])
def test_gauss_newton_fisher_equals_the_kl_hessian_at_the_old_params(sampler, tasks, inner_steps):
    learner = _learner(sampler, inner_steps=inner_steps)
    data, _ = learner.collect(tasks)
    leaves = {k: v.detach().requires_grad_(True) for k, v in learner.meta_params().items()}
    hessian = kl_hessian_vector_product(lambda p: learner.mean_kl(p, data), leaves)
    gauss_newton = learner.gauss_newton_fisher(data)(leaves)
    for _ in range(2):
        v = torch.randn(sum(p.numel() for p in leaves.values()), dtype=torch.float64)
        assert_close(gauss_newton(v), hessian(v))


def test_first_order_meta_gradient_is_the_query_gradient_at_the_fast_params(sampler, tasks):
    learner = _learner(sampler, first_order=True)
    data, _ = learner.collect(tasks)
    params = learner.meta_params()
    meta_grad = _grad(learner.surrogate_loss(params, data), params)
    expected = [torch.zeros_like(p) for p in params.values()]
    for i in range(len(tasks)):
        supports, query, _, _, old_log_probs = _task(data, i)
        fast = {
            k: v.detach().requires_grad_(True)
            for k, v in learner.adapt_policy(params, supports).items()
        }
        log_probs = learner.policy.log_prob(fast, query.observations, query.actions)
        ratio = torch.exp(log_probs - old_log_probs)
        loss = -(ratio * query.advantages * query.masks).sum() / query.masks.sum()
        for e, g in zip(expected, _grad(loss, fast), strict=True):
            e += g / len(tasks)
    assert_close(meta_grad, expected)
    second_order = _learner(sampler)
    second_order.load_state_dict(learner.state_dict())
    full_grad = _grad(second_order.surrogate_loss(params, data), params)
    assert (flat(full_grad) - flat(meta_grad)).norm() > 1e-3 * flat(meta_grad).norm()


@pytest.mark.parametrize("max_kl", [0.01, 0.002])
def test_trpo_update_respects_the_kl_bound_and_improves_the_surrogate(sampler, tasks, max_kl):
    learner = _learner(sampler, dtype=torch.float32, max_kl=max_kl)
    data, _ = learner.collect(tasks)
    with torch.no_grad():
        before = learner.surrogate_loss(learner.meta_params(), data)
    metrics = learner.trpo_update(data)
    assert metrics["accepted"] == 1
    with torch.no_grad():
        after = learner.surrogate_loss(learner.meta_params(), data)
        kl = learner.mean_kl(learner.meta_params(), data)
    assert kl <= max_kl * (1 + 1e-4)  # float32 recomputation
    assert kl > 0
    assert after < before
    assert_close(after, metrics["loss_after"])


def test_meta_update_changes_the_policy_and_reports_returns(sampler, tasks):
    learner = _learner(sampler, dtype=torch.float32)
    before = {k: v.detach().clone() for k, v in learner.meta_params().items()}
    metrics = learner.meta_update(tasks)
    assert set(metrics) == {
        "loss",
        "loss_after",
        "kl",
        "accepted",
        "backtracks",
        "return_pre",
        "return_post",
    }
    assert all(v.dim() == 0 for v in metrics.values())
    assert metrics["return_pre"] < 0
    assert any(not torch.equal(before[k], v) for k, v in learner.meta_params().items())


def test_meta_loss_is_differentiable_in_every_parameter(sampler, tasks):
    learner = _learner(sampler, dtype=torch.float32)
    loss, metrics = learner.meta_loss(tasks)
    loss.backward()
    assert_close(metrics["loss"], loss.detach())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.parameters())


def test_zero_inner_steps_is_plain_trpo_on_the_task_mixture(sampler, tasks):
    learner = _learner(sampler, dtype=torch.float32, inner_steps=0)
    data, metrics = learner.collect(tasks)
    assert data.supports == []
    assert_close(metrics["return_pre"], metrics["return_post"])


def test_each_inner_step_collects_its_own_batch(sampler, tasks):
    learner = _learner(sampler, dtype=torch.float32, inner_steps=2)
    data, _ = learner.collect(tasks)
    assert len(data.supports) == 2
    assert not torch.equal(data.supports[0].actions, data.supports[1].actions)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inner_steps": -1}, "inner_steps >= 0"),
        ({"max_kl": 0.0}, "max_kl > 0"),
        ({"ls_backtrack_ratio": 1.0}, "ls_backtrack_ratio < 1"),
        ({"fisher": "exact"}, "fisher='exact'"),
    ],
)
def test_invalid_settings_raise_config_error(sampler, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _learner(sampler, **kwargs)
