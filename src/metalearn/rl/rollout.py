"""Batched rollouts: many trajectories of many tasks at once on a Gymnasium vector environment.

Trajectories are tensors ``(N, T, B, ...)``: ``N`` tasks, horizon ``T``, ``B`` trajectories per
task; functions on them also accept a single task ``(T, B, ...)``. ``masks`` mark the steps
that belong to an episode: an environment that terminates early (the navigation agent reaching
its goal) keeps being stepped by the vector env, and its later steps get mask 0. Action noise
comes from torch's global generator and environment seeds are drawn from it, so a run is
reproducible from ``torch.manual_seed`` and resumes exactly once that state is restored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from metalearn.rl.policies import GaussianMLPPolicy
from metalearn.rl.tasks import Task
from metalearn.types import Params

__all__ = ["TrajectorySampler", "Trajectories"]


class Trajectories(NamedTuple):
    """``B`` trajectories of horizon ``T`` for each of ``N`` tasks (the leading ``N`` optional).

    Attributes:
        observations: ``(N, T, B, obs_dim)`` observation before each action.
        actions: ``(N, T, B, act_dim)`` actions as sampled (the environment may clip them).
        rewards: ``(N, T, B)``; 0 where ``masks`` is 0.
        masks: ``(N, T, B)`` 1.0 for steps inside the episode, 0.0 after it ended.
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    masks: Tensor

    def episode_returns(self) -> Tensor:
        """Undiscounted return of each trajectory ``(N, B)``."""
        return (self.rewards * self.masks).sum(-2)


class TrajectorySampler:
    """Rolls out a policy on ``n_trajectories`` environment copies per task, all tasks at once.

    One Gymnasium vector environment of ``n_tasks * n_trajectories`` copies is built per
    meta-batch size and kept. The policy runs once per time step for all tasks: on one batch
    when they share parameters (pre-adaptation), under ``torch.func.vmap`` over stacked
    parameters when each task has its own (post-adaptation).

    Args:
        env_id: a registered id, e.g. ``"metalearn/Navigation2D-v0"``.
        n_trajectories: trajectories per task and rollout (``B``; the MAML paper's 20).
        env_kwargs: keyword arguments of ``gymnasium.make_vec`` for the environment;
            ``max_episode_steps`` overrides the registered horizon.
        vectorization_mode: ``None`` (the family's NumPy vector env where it has one, else
            ``"sync"``), ``"sync"``, ``"async"`` or ``"vector_entry_point"``.
    """

    def __init__(
        self,
        env_id: str,
        n_trajectories: int,
        *,
        env_kwargs: dict[str, Any] | None = None,
        vectorization_mode: Literal["sync", "async", "vector_entry_point"] | None = None,
    ) -> None:
        import gymnasium

        self.env_id = env_id
        self.n_trajectories = n_trajectories
        self.env_kwargs = dict(env_kwargs or {})
        self.vectorization_mode = vectorization_mode
        self._envs: dict[int, Any] = {}
        horizon = self.env_kwargs.get("max_episode_steps", gymnasium.spec(env_id).max_episode_steps)
        if horizon is None:
            raise ValueError(f"{env_id} has no max_episode_steps; pass one in env_kwargs")
        self.horizon: int = horizon
        envs = self._vector_env(1)
        self.obs_dim = int(np.prod(envs.single_observation_space.shape))
        self.act_dim = int(np.prod(envs.single_action_space.shape))

    def _vector_env(self, n_tasks: int) -> Any:
        if n_tasks not in self._envs:
            import gymnasium

            self._envs[n_tasks] = gymnasium.make_vec(
                self.env_id,
                num_envs=n_tasks * self.n_trajectories,
                vectorization_mode=self.vectorization_mode,
                **self.env_kwargs,
            )
        return self._envs[n_tasks]

    def sample(
        self,
        policy: GaussianMLPPolicy,
        params: Params,
        tasks: Sequence[Task],
        *,
        per_task: bool = False,
    ) -> Trajectories:
        """Roll out ``policy`` for one horizon on each task (no gradient).

        Args:
            policy: the policy module (its own parameters are not used).
            params: one parameter dict for all tasks, or with ``per_task=True`` a dict of
                stacked parameters whose leading dim indexes the tasks.
            tasks: the ``N`` tasks.
            per_task: whether ``params`` holds one set of parameters per task.

        Returns:
            :class:`Trajectories` of shape ``(N, T, B, ...)``, in the parameters' dtype.
        """
        N, B, T = len(tasks), self.n_trajectories, self.horizon
        dtype = next(iter(params.values())).dtype
        act = _batched_actor(policy, params, N) if per_task else _shared_actor(policy, params)
        envs = self._vector_env(N)
        envs.set_attr("task", [task for task in tasks for _ in range(B)])
        obs, _ = envs.reset(seed=int(torch.randint(0, 2**31 - 1, ()).item()))
        observations = torch.empty(T, N * B, self.obs_dim, dtype=dtype)
        actions = torch.empty(T, N * B, self.act_dim, dtype=dtype)
        rewards = torch.empty(T, N * B, dtype=dtype)
        masks = torch.empty(T, N * B, dtype=dtype)
        alive = torch.ones(N * B, dtype=dtype)
        for t in range(T):
            observations[t] = torch.as_tensor(obs, dtype=dtype).reshape(N * B, -1)
            actions[t] = act(observations[t])
            obs, reward, terminated, truncated, _ = envs.step(actions[t].numpy())
            masks[t] = alive
            rewards[t] = torch.as_tensor(reward, dtype=dtype) * alive
            alive = alive * torch.as_tensor(~(terminated | truncated), dtype=dtype)
        return Trajectories(
            observations.reshape(T, N, B, -1).transpose(0, 1),
            actions.reshape(T, N, B, -1).transpose(0, 1),
            rewards.reshape(T, N, B).transpose(0, 1),
            masks.reshape(T, N, B).transpose(0, 1),
        )

    def close(self) -> None:
        """Close the vector environments."""
        for envs in self._envs.values():
            envs.close()
        self._envs.clear()


def _shared_actor(policy: GaussianMLPPolicy, params: Params) -> Callable[[Tensor], Tensor]:
    """Return ``observations (M, obs_dim) -> actions (M, act_dim)`` sampled under ``params``."""
    detached = {name: p.detach() for name, p in params.items()}
    return lambda observations: policy.sample(detached, observations)


def _batched_actor(
    policy: GaussianMLPPolicy, stacked: Params, n_tasks: int
) -> Callable[[Tensor], Tensor]:
    """Return ``observations (N * B, obs_dim) -> actions (N * B, act_dim)``, task by task."""
    sizes = {name: p.shape[0] for name, p in stacked.items()}
    if set(sizes.values()) != {n_tasks}:
        raise ValueError(f"per-task parameters must have leading dim {n_tasks}; got {sizes}")
    detached = {name: p.detach() for name, p in stacked.items()}
    per_task = torch.func.vmap(policy.distribution)

    def act(observations: Tensor) -> Tensor:
        with torch.no_grad():
            mean, log_std = per_task(
                detached, observations.reshape(n_tasks, -1, *observations.shape[1:])
            )
            actions = mean + torch.exp(log_std).unsqueeze(1) * torch.randn_like(mean)
        return actions.reshape(-1, actions.shape[-1])

    return act
