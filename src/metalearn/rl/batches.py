"""Policy-gradient batches: trajectories with advantages, and a meta-batch's rollout data.

Advantages come from the linear feature baseline refit on each batch and GAE, then are
standardised per task, as in rllab and the MAML code.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from metalearn.rl.baseline import LinearFeatureBaseline
from metalearn.rl.returns import discounted_returns, gae
from metalearn.rl.rollout import Trajectories

__all__ = [
    "PolicyGradientBatch",
    "RolloutData",
    "masked_mean",
    "normalize_advantages",
    "policy_gradient_batch",
]


class PolicyGradientBatch(NamedTuple):
    """Trajectories ready for a policy-gradient loss: ``(N, T, B, ...)`` or ``(T, B, ...)``.

    Attributes:
        observations: ``(N, T, B, obs_dim)``.
        actions: ``(N, T, B, act_dim)``.
        advantages: ``(N, T, B)``, 0 outside episodes.
        masks: ``(N, T, B)``, 1 inside episodes.
    """

    observations: Tensor
    actions: Tensor
    advantages: Tensor
    masks: Tensor


class RolloutData(NamedTuple):
    """A meta-batch's rollouts, stacked over tasks (leading dim ``N``).

    Attributes:
        supports: one :class:`PolicyGradientBatch` per inner step (the data each step used).
        query: the post-adaptation batch.
        old_mean: ``(N, T, B, act_dim)`` the adapted policies' means on ``query``.
        old_log_std: ``(N, act_dim)`` their log-stds.
        old_log_probs: ``(N, T, B)`` their log-probabilities of ``query.actions``.
    """

    supports: list[PolicyGradientBatch]
    query: PolicyGradientBatch
    old_mean: Tensor
    old_log_std: Tensor
    old_log_probs: Tensor


def masked_mean(x: Tensor, masks: Tensor) -> Tensor:
    """Mean of ``x`` over the steps inside episodes (all dims)."""
    return (x * masks).sum() / masks.sum()


def normalize_advantages(advantages: Tensor, masks: Tensor) -> Tensor:
    """Standardise advantages ``(..., T, B)`` per leading index over the steps inside episodes."""
    count = masks.sum((-2, -1), keepdim=True)
    mean = (advantages * masks).sum((-2, -1), keepdim=True) / count
    var = ((advantages - mean) ** 2 * masks).sum((-2, -1), keepdim=True) / count
    return (advantages - mean) / (var.sqrt() + 1e-8) * masks


def policy_gradient_batch(
    trajectories: Trajectories, *, gamma: float, gae_lambda: float, normalize: bool = True
) -> PolicyGradientBatch:
    """Fit the linear baseline per task and compute GAE advantages (shapes as the input).

    Args:
        trajectories: ``(N, T, B, ...)`` or ``(T, B, ...)``.
        gamma: discount factor.
        gae_lambda: GAE's lambda.
        normalize: standardise the advantages per task (rllab's ``center_adv``).
    """
    obs, actions, rewards, masks = trajectories
    returns = discounted_returns(rewards, masks, gamma)
    values = LinearFeatureBaseline().fit(obs, returns, masks).predict(obs)
    advantages = gae(rewards, values, masks, gamma, gae_lambda)
    if normalize:
        advantages = normalize_advantages(advantages, masks)
    return PolicyGradientBatch(obs, actions, advantages, masks)
