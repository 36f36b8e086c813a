"""The linear feature baseline of rllab and the MAML code: a ridge regression of returns.

Features per step are ``[o, o^2, t/100, (t/100)^2, (t/100)^3, 1]`` with ``o`` the observation
clipped to ``[-10, 10]`` and ``t`` the time step. It is refit on each batch of trajectories
before computing that batch's advantages, as in cbfinn/maml_rl's ``LinearFeatureBaseline``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["LinearFeatureBaseline", "linear_features"]


def linear_features(observations: Tensor) -> Tensor:
    """Return features ``(..., T, B, 2 * obs_dim + 4)`` of observations ``(..., T, B, obs_dim)``."""
    T = observations.shape[-3]
    o = observations.clamp(-10.0, 10.0)
    t = torch.arange(T, dtype=o.dtype, device=o.device) / 100.0
    t = t.reshape(T, 1, 1).expand(*o.shape[:-1], 1)
    return torch.cat([o, o**2, t, t**2, t**3, torch.ones_like(t)], dim=-1)


class LinearFeatureBaseline:
    r"""Least-squares value estimate on :func:`linear_features`, with a ridge penalty.

    .. math:: w = (X^T X + c I)^{-1} X^T G

    over the steps inside episodes, separately for each leading index (task) of a batch
    ``(..., T, B)``. If the solve yields NaN, ``c`` grows tenfold (up to five tries), as in
    rllab. The solve runs in float64.

    Args:
        reg_coeff: the ridge coefficient ``c``.
    """

    def __init__(self, reg_coeff: float = 1e-5) -> None:
        self.reg_coeff = reg_coeff
        self.coeffs: Tensor | None = None

    def fit(self, observations: Tensor, returns: Tensor, masks: Tensor) -> LinearFeatureBaseline:
        """Fit to ``returns (..., T, B)`` of ``observations (..., T, B, obs_dim)``; return self.

        ``coeffs`` becomes ``(..., n_features)``.
        """
        X = linear_features(observations.double()) * masks.double().unsqueeze(-1)
        X = X.flatten(-3, -2)
        y = (returns.double() * masks.double()).flatten(-2).unsqueeze(-1)
        gram, target = X.mT @ X, X.mT @ y
        eye = torch.eye(X.shape[-1], dtype=X.dtype, device=X.device)
        reg = self.reg_coeff
        for _ in range(5):
            coeffs = torch.linalg.lstsq(gram + reg * eye, target).solution.squeeze(-1)
            if not torch.isnan(coeffs).any():
                break
            reg *= 10
        self.coeffs = coeffs
        return self

    def predict(self, observations: Tensor) -> Tensor:
        """Return values ``(..., T, B)`` (zeros before the first fit), in the input's dtype."""
        if self.coeffs is None:
            return observations.new_zeros(observations.shape[:-1])
        features = linear_features(observations.double())
        values = features @ self.coeffs.unsqueeze(-2).unsqueeze(-1)
        return values.squeeze(-1).to(observations.dtype)
