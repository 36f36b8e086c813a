"""Gaussian MLP policies usable with ``torch.func.functional_call`` and a params dict.

The log-probability and KL of diagonal Gaussians are written with elementary tensor operations
(no ``torch.distributions``), so they work under ``torch.func.grad`` and ``vmap`` alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from metalearn.types import Params

__all__ = ["GaussianMLPPolicy", "gaussian_kl", "gaussian_log_prob"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Log-density of ``actions`` under a diagonal Gaussian, summed over the action dim.

    Args:
        mean: ``(..., act_dim)``.
        log_std: ``(act_dim,)`` or ``(..., act_dim)``.
        actions: ``(..., act_dim)``.

    Returns:
        ``(...)`` log-probabilities.
    """
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z**2 - log_std - _LOG_SQRT_2PI).sum(-1)


def gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    r"""``KL(p || q)`` between diagonal Gaussians, summed over the action dim.

    .. math:: \sum_j \log\frac{\sigma_{q,j}}{\sigma_{p,j}}
        + \frac{\sigma_{p,j}^2 + (\mu_{p,j} - \mu_{q,j})^2}{2 \sigma_{q,j}^2} - \frac12

    Args:
        mean_p: ``(..., act_dim)`` mean of ``p``.
        log_std_p: log-std of ``p``, broadcastable to ``mean_p``.
        mean_q: mean of ``q``, broadcastable to ``mean_p``.
        log_std_q: log-std of ``q``, broadcastable to ``mean_p``.

    Returns:
        ``(...)`` divergences.
    """
    var_ratio = torch.exp(2 * (log_std_p - log_std_q))
    mean_term = ((mean_p - mean_q) * torch.exp(-log_std_q)) ** 2
    return (log_std_q - log_std_p + 0.5 * (var_ratio + mean_term) - 0.5).sum(-1)


class GaussianMLPPolicy(nn.Module):
    """A Gaussian policy: an MLP gives the mean; the log-std is a state-independent parameter.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hidden_sizes: widths of the hidden layers (the MAML paper: two of 100 units).
        activation: ``"relu"`` (the MAML code's choice) or ``"tanh"``.
        init_log_std: initial log standard deviation of every action dimension.

    Examples:
        >>> policy = GaussianMLPPolicy(2, 2)
        >>> mean, log_std = policy(torch.zeros(5, 2))
        >>> tuple(mean.shape), tuple(log_std.shape)
        ((5, 2), (2,))
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (100, 100),
        *,
        activation: Literal["relu", "tanh"] = "relu",
        init_log_std: float = 0.0,
    ) -> None:
        super().__init__()
        act_cls = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        layers: list[nn.Module] = []
        width = obs_dim
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), act_cls()]
            width = hidden
        layers.append(nn.Linear(width, act_dim))
        self.mean = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        for module in self.mean:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """Return the mean ``(..., act_dim)`` and the log-std ``(act_dim,)``."""
        return self.mean(observations), self.log_std

    def distribution(self, params: Params, observations: Tensor) -> tuple[Tensor, Tensor]:
        """The mean and log-std under ``params`` (a dict of this module's parameters)."""
        mean, log_std = functional_call(self, params, (observations,))
        return mean, log_std

    def log_prob(self, params: Params, observations: Tensor, actions: Tensor) -> Tensor:
        """Log-probabilities ``(...)`` of ``actions (..., act_dim)`` under ``params``."""
        return gaussian_log_prob(*self.distribution(params, observations), actions)

    def sample(self, params: Params, observations: Tensor) -> Tensor:
        """Draw actions ``(..., act_dim)`` (from torch's global generator) without gradient."""
        with torch.no_grad():
            mean, log_std = self.distribution(params, observations)
            return mean + torch.exp(log_std) * torch.randn_like(mean)
