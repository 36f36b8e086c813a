"""MAML for reinforcement learning: policy-gradient adaptation, TRPO meta-update.

For each task of a meta-batch: roll out the meta-policy, fit the linear baseline, take
``inner_steps`` vanilla policy-gradient steps through :func:`metalearn.algorithms.inner.
gradient_descent` (each on fresh rollouts of the current fast policy), then roll out the adapted
policy. The outer objective is the importance-weighted surrogate of the adapted policies'
returns as a function of the meta-parameters, maximised by a TRPO step under a mean-KL bound
(:func:`metalearn.rl.trpo.trpo_step`). Must not import ``metalearn.data`` or ``training``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import vmap

from metalearn.algorithms.inner import gradient_descent
from metalearn.errors import ConfigError
from metalearn.rl.batches import (
    PolicyGradientBatch,
    RolloutData,
    masked_mean,
    policy_gradient_batch,
)
from metalearn.rl.policies import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob
from metalearn.rl.rollout import Trajectories, TrajectorySampler
from metalearn.rl.tasks import Task
from metalearn.rl.trpo import FisherBuilder, gauss_newton_fisher, trpo_step
from metalearn.types import Metrics, Params

__all__ = ["MetaRLLearner"]


class MetaRLLearner(nn.Module):
    r"""MAML for RL (MAML-TRPO) on a Gaussian policy: a :class:`MetaObjective` with a TRPO hook.

    .. math:: \theta'_i = \theta - \alpha \nabla_\theta L^{PG}_i(\theta), \qquad
        \max_\theta \sum_i \hat{E}\left[\frac{\pi_{\theta'_i}(a|s)}{\pi_{old,i}(a|s)}
        A_i\right] \ \text{s.t.}\ \bar{D}_{KL} \le \delta

    With ``inner_steps=0`` it is plain TRPO on the mixture of tasks (the paper's "pretrained"
    comparison). The training loop calls :meth:`meta_update` (TRPO) where the objective has it;
    :meth:`meta_loss` gives the surrogate for a plain optimizer instead.

    It is not a :class:`~metalearn.algorithms.base.Learner`: a task is an environment, not a
    support set, and adaptation (:meth:`adapt_policy`) takes policy-gradient steps on fresh
    rollouts. It is tested by :func:`~metalearn.rl.evaluation.adaptation_returns`, not by
    ``meta_test``.

    Args:
        policy: the meta-policy (its parameters are the meta-parameters).
        sampler: rolls out the policy on the task family.
        inner_lr: the inner policy-gradient step size (pytorch-maml-rl's 0.1 for navigation).
        inner_steps: policy-gradient steps per task in meta-training.
        first_order: ignore second derivatives through the adaptation.
        gamma: discount factor.
        gae_lambda: GAE's lambda (1: advantages are returns minus the baseline, as in MAML).
        normalize_advantages: standardise each batch's advantages (rllab's ``center_adv``).
        max_kl: TRPO's trust-region radius.
        cg_iters: conjugate-gradient iterations.
        cg_damping: damping of the Fisher-vector products.
        ls_max_steps: line-search trials.
        ls_backtrack_ratio: line-search shrink factor.
        fisher: the KL curvature's products: ``"gauss-newton"`` (:meth:`gauss_newton_fisher`)
            or ``"hessian"`` (double backprop through the KL; the reference).

    Attributes:
        all_reduce_mean: with data-parallel training, the mean of a tensor over the ranks,
            each holding a share of the meta-batch's tasks (set by the training loop's
            ``DataParallel``); the TRPO step averages its loss, gradient, KL and curvature
            products with it. ``None`` in one process.

    References:
        Finn, Abbeel and Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
        Networks." ICML 2017.
    """

    def __init__(
        self,
        policy: GaussianMLPPolicy,
        sampler: TrajectorySampler,
        *,
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        first_order: bool = False,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        normalize_advantages: bool = True,
        max_kl: float = 0.01,
        cg_iters: int = 10,
        cg_damping: float = 1e-5,
        ls_max_steps: int = 15,
        ls_backtrack_ratio: float = 0.8,
        fisher: Literal["gauss-newton", "hessian"] = "gauss-newton",
    ) -> None:
        super().__init__()
        if inner_steps < 0 or max_kl <= 0 or not 0 < ls_backtrack_ratio < 1:
            raise ConfigError(
                f"need inner_steps >= 0, max_kl > 0 and 0 < ls_backtrack_ratio < 1; got "
                f"{inner_steps}, {max_kl}, {ls_backtrack_ratio}"
            )
        if fisher not in ("gauss-newton", "hessian"):
            raise ConfigError(f"fisher={fisher!r} is not one of 'gauss-newton', 'hessian'")
        self.policy = policy
        self.sampler = sampler
        self.inner_lr, self.inner_steps, self.first_order = inner_lr, inner_steps, first_order
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.normalize_advantages = normalize_advantages
        self.fisher = fisher
        self.max_kl = max_kl
        self.all_reduce_mean: Callable[[Tensor], Tensor] | None = None
        self._trpo_step = partial(
            trpo_step,
            max_kl=max_kl,
            cg_iters=cg_iters,
            cg_damping=cg_damping,
            ls_max_steps=ls_max_steps,
            ls_backtrack_ratio=ls_backtrack_ratio,
        )

    def meta_params(self) -> Params:
        """The meta-parameters, by name (the policy's own tensors)."""
        return dict(self.policy.named_parameters())

    def process(self, trajectories: Trajectories) -> PolicyGradientBatch:
        """Fit the linear baseline per task and compute advantages (shapes as the input)."""
        return policy_gradient_batch(
            trajectories,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            normalize=self.normalize_advantages,
        )

    def inner_loss(self, params: Params, batch: PolicyGradientBatch) -> Tensor:
        """One task's REINFORCE loss ``-mean(log pi(a|s) * A)`` over steps inside episodes."""
        log_probs = self.policy.log_prob(params, batch.observations, batch.actions)
        return -masked_mean(log_probs * batch.advantages, batch.masks)

    def adapt_policy(
        self,
        params: Params,
        batches: Sequence[PolicyGradientBatch],
        *,
        lr: float | None = None,
        first_order: bool | None = None,
    ) -> Params:
        """Take one policy-gradient step per batch of one task; return ``fast_params``."""
        for batch in batches:
            params = gradient_descent(
                partial(self.inner_loss, batch=batch),
                params,
                steps=1,
                lr=self.inner_lr if lr is None else lr,
                first_order=self.first_order if first_order is None else first_order,
            )
        return params

    def adapt_tasks(
        self,
        params: Params,
        batch: PolicyGradientBatch,
        *,
        per_task: bool = False,
        lr: float | None = None,
    ) -> Params:
        """One first-order policy-gradient step for every task of a stacked batch, vmapped.

        Args:
            params: shared parameters, or with ``per_task=True`` stacked ones (leading ``N``).
            batch: the ``N`` tasks' batches.
            per_task: whether ``params`` is stacked.
            lr: the step size (default: ``inner_lr``).

        Returns:
            Stacked fast parameters (leading dim ``N``), without gradient to ``params``.
        """
        step = partial(self.adapt_policy, lr=lr, first_order=True)
        in_dims = (0 if per_task else None, 0)
        with torch.no_grad():
            fast: Params = vmap(lambda p, b: step(p, [b]), in_dims=in_dims)(params, batch)
        return fast

    def collect(self, tasks: Sequence[Task]) -> tuple[RolloutData, Metrics]:
        """Roll out, adapt and roll out again on each task; return the data and mean returns."""
        fast = {name: p.detach() for name, p in self.meta_params().items()}
        supports: list[PolicyGradientBatch] = []
        pre_returns = None
        for step in range(self.inner_steps):
            rollouts = self.sampler.sample(self.policy, fast, tasks, per_task=step > 0)
            pre_returns = rollouts.episode_returns() if step == 0 else pre_returns
            supports.append(self.process(rollouts))
            fast = self.adapt_tasks(fast, supports[-1], per_task=step > 0)
        per_task = self.inner_steps > 0
        rollouts = self.sampler.sample(self.policy, fast, tasks, per_task=per_task)
        query = self.process(rollouts)
        with torch.no_grad():
            distribution = vmap(self.policy.distribution, in_dims=(0 if per_task else None, 0))
            old_mean, old_log_std = distribution(fast, query.observations)
        old_log_probs = gaussian_log_prob(
            old_mean, old_log_std.unsqueeze(-2).unsqueeze(-2), query.actions
        )
        post_returns = rollouts.episode_returns()
        pre = post_returns if pre_returns is None else pre_returns
        data = RolloutData(supports, query, old_mean, old_log_std, old_log_probs)
        return data, {"return_pre": pre.mean(), "return_post": post_returns.mean()}

    def _task_surrogate(
        self,
        params: Params,
        supports: list[PolicyGradientBatch],
        query: PolicyGradientBatch,
        old_log_probs: Tensor,
    ) -> Tensor:
        fast = self.adapt_policy(params, supports)
        log_probs = self.policy.log_prob(fast, query.observations, query.actions)
        ratio = torch.exp(log_probs - old_log_probs)
        return -masked_mean(ratio * query.advantages, query.masks)

    def _task_distribution(
        self, params: Params, supports: list[PolicyGradientBatch], query: PolicyGradientBatch
    ) -> tuple[Tensor, Tensor]:
        return self.policy.distribution(self.adapt_policy(params, supports), query.observations)

    def _task_kl(
        self,
        params: Params,
        supports: list[PolicyGradientBatch],
        query: PolicyGradientBatch,
        old_mean: Tensor,
        old_log_std: Tensor,
    ) -> Tensor:
        mean, log_std = self._task_distribution(params, supports, query)
        return masked_mean(gaussian_kl(old_mean, old_log_std, mean, log_std), query.masks)

    def surrogate_loss(self, params: Params, data: RolloutData) -> Tensor:
        """Minus the importance-weighted advantage of the adapted policies, mean over tasks."""
        per_task = vmap(self._task_surrogate, in_dims=(None, 0, 0, 0))
        return per_task(params, data.supports, data.query, data.old_log_probs).mean()

    def mean_kl(self, params: Params, data: RolloutData) -> Tensor:
        """Mean ``KL(pi_old || pi_adapted)`` over the post-adaptation steps and tasks."""
        per_task = vmap(self._task_kl, in_dims=(None, 0, 0, 0, 0))
        return per_task(params, data.supports, data.query, data.old_mean, data.old_log_std).mean()

    def gauss_newton_fisher(self, data: RolloutData) -> FisherBuilder:
        """The Hessian of :meth:`mean_kl` at the old parameters, as ``J^T M J``.

        ``J`` is the Jacobian of the adapted policies' means and log-stds with respect to the
        meta-parameters (see :func:`~metalearn.rl.trpo.gauss_newton_fisher`).
        """
        outputs = vmap(self._task_distribution, in_dims=(None, 0, 0))
        return gauss_newton_fisher(
            lambda params: outputs(params, data.supports, data.query),
            data.query.masks,
            data.old_log_std,
        )

    def meta_loss(self, tasks: Sequence[Task]) -> tuple[Tensor, Metrics]:
        """Collect rollouts and return the differentiable surrogate loss and metrics."""
        data, metrics = self.collect(tasks)
        loss = self.surrogate_loss(self.meta_params(), data)
        return loss, {"loss": loss.detach(), **metrics}

    def meta_update(self, tasks: Sequence[Task]) -> Metrics:
        """Collect rollouts and take one TRPO step on the meta-parameters; return metrics.

        The metrics: ``loss`` and ``loss_after`` (the surrogate before and after the step),
        ``kl`` (after it), ``accepted`` and ``backtracks`` (the line search), ``return_pre``
        and ``return_post`` (mean undiscounted return before and after adaptation).
        """
        data, metrics = self.collect(tasks)
        return {**self.trpo_update(data), **metrics}

    def trpo_update(self, data: RolloutData) -> Metrics:
        """Take one TRPO step on the meta-parameters with collected data; return its metrics."""
        params = self.meta_params()
        result = self._trpo_step(
            partial(self.surrogate_loss, data=data),
            partial(self.mean_kl, data=data),
            params,
            fisher=self.gauss_newton_fisher(data) if self.fisher == "gauss-newton" else None,
            reduce=self.all_reduce_mean,
        )
        if result.accepted:
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(result.params[name])
        return {
            "loss": result.loss_before,
            "loss_after": result.loss_after,
            "kl": result.kl,
            "accepted": torch.tensor(float(result.accepted)),
            "backtracks": torch.tensor(float(result.backtracks)),
        }
