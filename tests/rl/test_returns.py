"""Discounted returns and GAE: hand-computed values, and vectorised == loop reference."""

import pytest
import torch
from torch.testing import assert_close

from metalearn.rl.returns import discounted_returns, discounted_returns_loop, gae, gae_loop


def _random_episodes(shape=(3, 7, 5)):
    """Rewards, values and non-increasing masks ``(N, T, B)`` with some early terminations."""
    N, T, B = shape
    rewards = torch.randn(N, T, B, dtype=torch.float64)
    values = torch.randn(N, T, B, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (N, 1, B))
    masks = (torch.arange(T).reshape(1, T, 1) < lengths).to(torch.float64)
    return rewards * masks, values, masks


def test_discounted_returns_by_hand():
    rewards = torch.tensor([[1.0], [2.0], [4.0]])
    # G_2 = 4, G_1 = 2 + 0.5 * 4 = 4, G_0 = 1 + 0.5 * 4 = 3
    assert_close(
        discounted_returns(rewards, torch.ones(3, 1), 0.5), torch.tensor([[3.0], [4.0], [4.0]])
    )
    # the episode ends after step 1: G_1 = 2, G_0 = 1 + 0.5 * 2 = 2, G_2 = 0
    masks = torch.tensor([[1.0], [1.0], [0.0]])
    expected = torch.tensor([[2.0], [2.0], [0.0]])
    assert_close(discounted_returns(rewards * masks, masks, 0.5), expected)


def test_gae_by_hand():
    rewards = torch.tensor([[1.0], [2.0]])
    values = torch.tensor([[0.5], [1.0]])
    # delta_1 = 2 - 1 = 1 (no bootstrap at the end); delta_0 = 1 + 0.9 * 1 - 0.5 = 1.4
    # A_1 = 1; A_0 = 1.4 + 0.9 * 0.5 * 1 = 1.85
    advantages = gae(rewards, values, torch.ones(2, 1), gamma=0.9, lam=0.5)
    assert_close(advantages, torch.tensor([[1.85], [1.0]]))


@pytest.mark.parametrize("gamma", [0.0, 0.9, 0.99, 1.0])
def test_vectorised_discounted_returns_equal_the_loop(gamma):
    rewards, _, masks = _random_episodes()
    assert_close(
        discounted_returns(rewards, masks, gamma), discounted_returns_loop(rewards, masks, gamma)
    )
    assert_close(
        discounted_returns(rewards[0], masks[0], gamma),
        discounted_returns_loop(rewards[0], masks[0], gamma),
    )


@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 1.0), (0.99, 0.95), (0.9, 0.0), (1.0, 0.5)])
def test_vectorised_gae_equals_the_loop(gamma, lam):
    rewards, values, masks = _random_episodes()
    expected = gae_loop(rewards, values, masks, gamma, lam)
    assert_close(gae(rewards, values, masks, gamma, lam), expected)
    assert_close(gae(rewards[1], values[1], masks[1], gamma, lam), expected[1])


def test_gae_with_lambda_one_is_returns_minus_values():
    rewards, values, masks = _random_episodes()
    expected = (discounted_returns(rewards, masks, 0.97) - values) * masks
    assert_close(gae(rewards, values, masks, 0.97, 1.0), expected)


def test_outputs_are_zero_after_the_episode_ended():
    rewards, values, masks = _random_episodes()
    outside = masks == 0
    assert outside.any()
    assert (discounted_returns(rewards, masks, 0.99)[outside] == 0).all()
    assert (gae(rewards, values, masks, 0.99, 0.95)[outside] == 0).all()
