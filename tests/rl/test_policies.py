"""Gaussian MLP policy: shapes, functional_call, log-probabilities and KL vs torch.distributions."""

import torch
from torch.distributions import Independent, Normal, kl_divergence
from torch.testing import assert_close

from metalearn.rl.policies import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob


def test_policy_has_two_hidden_layers_of_100_and_a_state_independent_log_std():
    policy = GaussianMLPPolicy(2, 3, init_log_std=-0.5)
    widths = [m.out_features for m in policy.mean if isinstance(m, torch.nn.Linear)]
    assert widths == [100, 100, 3]
    mean, log_std = policy(torch.randn(7, 2))
    assert mean.shape == (7, 3)
    assert_close(log_std, torch.full((3,), -0.5))


def test_distribution_uses_the_given_params_not_the_modules():
    policy = GaussianMLPPolicy(2, 2, (8,))
    params = {name: torch.zeros_like(p) for name, p in policy.named_parameters()}
    mean, log_std = policy.distribution(params, torch.randn(4, 2))
    assert (mean == 0).all()
    assert (log_std == 0).all()
    assert not (policy.mean[0].weight == 0).all()


def test_log_prob_and_kl_match_torch_distributions():
    mean_p, mean_q, actions = torch.randn(3, 5, 2, dtype=torch.float64).unbind(0)
    log_std_p = torch.tensor([0.3, -0.2], dtype=torch.float64)
    log_std_q = torch.tensor([-0.1, 0.4], dtype=torch.float64)
    p = Independent(Normal(mean_p, log_std_p.exp()), 1)
    q = Independent(Normal(mean_q, log_std_q.exp()), 1)
    assert_close(gaussian_log_prob(mean_p, log_std_p, actions), p.log_prob(actions))
    assert_close(gaussian_kl(mean_p, log_std_p, mean_q, log_std_q), kl_divergence(p, q))


def test_sample_has_the_policy_mean_and_std():
    policy = GaussianMLPPolicy(1, 1, (4,), init_log_std=-1.0)
    params = dict(policy.named_parameters())
    obs = torch.zeros(20000, 1)
    actions = policy.sample(params, obs)
    mean, _ = policy.distribution(params, obs[:1])
    assert not actions.requires_grad
    assert_close(actions.mean(), mean[0, 0].detach(), atol=0.01, rtol=0)  # std of mean ~ 0.0026
    assert_close(actions.std(), torch.tensor(torch.e**-1), atol=0.01, rtol=0)
