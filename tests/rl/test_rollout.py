"""Batched rollouts: shapes, masks after termination, rewards as the environment gives them."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import metalearn.rl  # noqa: F401
from metalearn.rl import GaussianMLPPolicy, TaskDistribution, TrajectorySampler

ENV_ID = "metalearn/Navigation2D-v0"


def _constant_policy_params(policy, action):
    """Parameters whose mean action is ``action`` everywhere, with std exp(-20)."""
    params = {name: torch.zeros_like(p) for name, p in policy.named_parameters()}
    params["mean.2.bias"] = torch.tensor(action)
    params["log_std"] = torch.full((2,), -20.0)
    return params


@pytest.fixture(scope="module")
def sampler():
    sampler = TrajectorySampler(ENV_ID, 4)
    yield sampler
    sampler.close()


def test_trajectories_are_task_major_with_the_horizon_and_rewards_of_each_task(sampler):
    policy = GaussianMLPPolicy(2, 2, (8,))
    tasks = [{"goal": (0.5, 0.5)}, {"goal": (-0.5, 0.0)}, {"goal": (0.0, -0.2)}]
    traj = sampler.sample(policy, dict(policy.named_parameters()), tasks)
    assert traj.observations.shape == (3, 100, 4, 2)
    assert traj.actions.shape == (3, 100, 4, 2)
    assert traj.rewards.shape == traj.masks.shape == (3, 100, 4)
    assert_close(traj.observations[:, 0], torch.zeros(3, 4, 2))
    # the reward is minus the distance to the task's goal after the clipped action
    next_pos = traj.observations[:, 0] + traj.actions[:, 0].clamp(-0.1, 0.1)
    goals = torch.tensor([t["goal"] for t in tasks]).unsqueeze(1)
    assert_close(traj.rewards[:, 0], -(next_pos - goals).norm(dim=-1), rtol=1e-5, atol=1e-6)
    assert_close(traj.observations[:, 1], next_pos, rtol=1e-5, atol=1e-6)
    assert_close(traj.episode_returns(), traj.rewards.sum(1))


def test_masks_drop_to_zero_after_an_agent_reaches_its_goal(sampler):
    policy = GaussianMLPPolicy(2, 2, (8,))
    params = _constant_policy_params(policy, [0.05, 0.05])  # every step moves by (0.05, 0.05)
    traj = sampler.sample(policy, params, [{"goal": (0.15, 0.15)}])
    # positions 0.05, 0.10, 0.15: the third step reaches the goal and ends the episode
    assert_close(traj.masks[0, :, 0], torch.tensor([1.0] * 3 + [0.0] * 97))
    assert (traj.rewards[0, 3:] == 0).all()
    expected_return = -torch.tensor([0.1, 0.05, 0.0]).mul(2**0.5).sum()
    assert_close(traj.episode_returns()[0], expected_return.expand(4))


def test_per_task_params_drive_each_task_with_its_own_policy(sampler):
    policy = GaussianMLPPolicy(2, 2, (8,))
    right, down = (
        _constant_policy_params(policy, [0.1, 0.0]),
        _constant_policy_params(policy, [0.0, -0.1]),
    )
    stacked = {name: torch.stack([right[name], down[name]]) for name in right}
    traj = sampler.sample(policy, stacked, [{"goal": (0.5, 0.5)}] * 2, per_task=True)
    assert_close(traj.observations[0, 10, 0], torch.tensor([1.0, 0.0]), atol=1e-5, rtol=0)
    assert_close(traj.observations[1, 10, 0], torch.tensor([0.0, -1.0]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="leading dim 3"):
        sampler.sample(policy, stacked, [{"goal": (0.5, 0.5)}] * 3, per_task=True)


def test_rollouts_are_reproducible_from_torch_seed(sampler):
    policy = GaussianMLPPolicy(2, 2, (8,))
    params = dict(policy.named_parameters())
    tasks = TaskDistribution(ENV_ID, seed=3).sample_batch(2)
    torch.manual_seed(5)
    first = sampler.sample(policy, params, tasks)
    torch.manual_seed(5)
    second = sampler.sample(policy, params, tasks)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_task_distribution_resumes_from_its_state_dict():
    tasks = TaskDistribution(ENV_ID, seed=7)
    tasks.sample_batch(3)
    state = tasks.state_dict()
    expected = tasks.sample_batch(4)
    fresh = TaskDistribution(ENV_ID, seed=0)
    fresh.load_state_dict(state)
    assert fresh.sample_batch(4) == expected
    assert TaskDistribution(ENV_ID, seed=7).sample_batch(3) != TaskDistribution(
        ENV_ID, seed=8
    ).sample_batch(3)


def test_cheetah_sampler_rolls_out_a_200_step_horizon():
    pytest.importorskip("mujoco")
    sampler = TrajectorySampler("metalearn/HalfCheetahVel-v0", 2)
    policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, (8,))
    traj = sampler.sample(policy, dict(policy.named_parameters()), [{"velocity": 1.0}])
    sampler.close()
    assert (sampler.obs_dim, sampler.act_dim) == (17, 6)
    assert traj.rewards.shape == (1, 200, 2)
    assert (traj.masks == 1).all()
    assert np.isfinite(traj.rewards.numpy()).all()
