"""Discounted returns and generalised advantage estimation (GAE) on ``(..., T, B)`` tensors.

Each has a loop reference (``*_loop``, a direct transcription of the recursion) and a
vectorised version that multiplies by a ``(T, T)`` matrix of discount powers; the tests check
that they agree. Time is the second-to-last dim; leading dims (tasks) are batch dims.
``masks`` are 1 for steps inside an episode and 0 after it ended; they must be
non-increasing in time (the layout :class:`metalearn.rl.rollout.Trajectories` has). No value is
bootstrapped past the last step: the horizon is part of the task, as in the MAML code, whose
linear baseline sees the time step.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["discounted_returns", "discounted_returns_loop", "gae", "gae_loop"]


def _discount_matrix(horizon: int, factor: float, like: Tensor) -> Tensor:
    """``M[t, k] = factor ** (k - t)`` for ``k >= t``, else 0: ``(M @ x)[t] = sum_k ...``."""
    steps = torch.arange(horizon, device=like.device)
    exponents = (steps.unsqueeze(0) - steps.unsqueeze(1)).to(like.dtype)
    powers = torch.pow(torch.tensor(factor, dtype=like.dtype, device=like.device), exponents)
    return torch.where(exponents >= 0, powers, torch.zeros((), dtype=like.dtype))


def discounted_returns(rewards: Tensor, masks: Tensor, gamma: float) -> Tensor:
    r"""Discounted reward-to-go ``G_t = sum_{k >= t} gamma^(k - t) m_k r_k``.

    Args:
        rewards: ``(..., T, B)``.
        masks: ``(..., T, B)``, 1 inside the episode.
        gamma: discount factor in ``[0, 1]``.

    Returns:
        ``(..., T, B)`` returns, 0 where ``masks`` is 0.

    Examples:
        >>> discounted_returns(torch.tensor([[1.0], [2.0]]), torch.ones(2, 1), 0.5).flatten()
        tensor([2., 2.])
    """
    M = _discount_matrix(rewards.shape[-2], gamma, rewards)
    return (M @ (rewards * masks)) * masks


def discounted_returns_loop(rewards: Tensor, masks: Tensor, gamma: float) -> Tensor:
    """Reference for :func:`discounted_returns`: ``G_t = m_t (r_t + gamma G_{t+1})``."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0, :])
    for t in reversed(range(rewards.shape[-2])):
        running = masks[..., t, :] * (rewards[..., t, :] + gamma * running)
        returns[..., t, :] = running
    return returns


def _td_errors(rewards: Tensor, values: Tensor, masks: Tensor, gamma: float) -> Tensor:
    """``delta_t = m_t (r_t + gamma m_{t+1} V_{t+1} - V_t)``, with ``V_T = 0``."""
    next_values = torch.cat(
        [(values * masks)[..., 1:, :], torch.zeros_like(values[..., :1, :])], -2
    )
    return masks * (rewards + gamma * next_values - values)


def gae(rewards: Tensor, values: Tensor, masks: Tensor, gamma: float, lam: float) -> Tensor:
    r"""Generalised advantage estimates ``A_t = sum_{k >= t} (gamma lam)^(k - t) delta_k``.

    .. math:: \delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)

    With ``lam = 1`` this is ``G_t - V(s_t)`` (the MAML setting); with ``lam = 0`` it is the
    one-step TD error.

    Args:
        rewards: ``(..., T, B)``.
        values: ``(..., T, B)`` baseline values of the observations.
        masks: ``(..., T, B)``, 1 inside the episode.
        gamma: discount factor.
        lam: GAE's ``lambda`` in ``[0, 1]``.

    Returns:
        ``(..., T, B)`` advantages, 0 where ``masks`` is 0.

    References:
        Schulman, Moritz, Levine, Jordan and Abbeel. "High-Dimensional Continuous Control
        Using Generalized Advantage Estimation." ICLR 2016.
    """
    deltas = _td_errors(rewards, values, masks, gamma)
    return (_discount_matrix(rewards.shape[-2], gamma * lam, rewards) @ deltas) * masks


def gae_loop(rewards: Tensor, values: Tensor, masks: Tensor, gamma: float, lam: float) -> Tensor:
    """Reference for :func:`gae`: ``A_t = m_t (delta_t + gamma lam A_{t+1})``."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0, :])
    next_value = torch.zeros_like(rewards[..., 0, :])
    for t in reversed(range(rewards.shape[-2])):
        delta = rewards[..., t, :] + gamma * next_value - values[..., t, :]
        running = masks[..., t, :] * (delta + gamma * lam * running)
        advantages[..., t, :] = running
        next_value = values[..., t, :] * masks[..., t, :]
    return advantages
