"""HalfCheetah task families of the MAML paper, on Gymnasium's MuJoCo ``HalfCheetah-v5``.

- Velocity: a target velocity ``v_goal ~ U[0, 2]``; reward ``-|v - v_goal| - 0.05 ||a||^2``.
- Direction: ``d`` in ``{-1, +1}`` with equal probability; reward ``d * v - 0.05 ||a||^2``.

Here ``v`` is the forward velocity of the root, ``(x_after - x_before) / dt`` over one control
step, which Gymnasium reports as ``info["x_velocity"]`` (pytorch-maml-rl uses the same). The
MAML code (cbfinn/maml_rl, ``half_cheetah_env_rand*.py``) read rllab's ``get_body_comvel``
instead, the centre-of-mass velocity of the torso subtree; the two agree on average over an
episode. Actions are clipped to ``[-1, 1]`` (MuJoCo's control range) before the control cost
``0.5 * 0.1 * ||a||^2``, also as in the MAML code. The horizon (200 steps) is the
:class:`gymnasium.wrappers.TimeLimit` added by ``gymnasium.make``; episodes never terminate
early. Imports gymnasium and mujoco at module level; ``metalearn`` never imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from numpy.typing import NDArray

from metalearn.errors import TaskSpecError
from metalearn.rl.tasks import Task

__all__ = ["HalfCheetahDirEnv", "HalfCheetahVelEnv"]

CTRL_COST_WEIGHT = 0.05
MAX_VELOCITY = 2.0


class _HalfCheetahTaskEnv(HalfCheetahEnv):
    """HalfCheetah with a task-dependent reward on the forward velocity (see subclasses)."""

    _task_key: str

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("ctrl_cost_weight", CTRL_COST_WEIGHT)
        super().__init__(**kwargs)
        self._target: float | None = None
        if task is not None:
            self.set_task(task)

    def sample_tasks(self, n_tasks: int, rng: np.random.Generator) -> list[Task]:
        """Return ``n_tasks`` tasks drawn with ``rng``."""
        raise NotImplementedError

    def _check_target(self, value: float) -> None:
        """Raise :class:`TaskSpecError` for a target outside the family's support."""

    def set_task(self, task: Task) -> None:
        """Set the task for the following episodes.

        Raises:
            TaskSpecError: if the task lacks the family's key or its value is invalid.
        """
        if self._task_key not in task:
            raise TaskSpecError(
                f"{type(self).__name__} task {task!r} needs the key {self._task_key!r}"
            )
        value = float(task[self._task_key])
        self._check_target(value)
        self._target = value

    @property
    def task(self) -> Task | None:
        """The current task (``None`` before any is set); settable, as ``set_task``."""
        return None if self._target is None else {self._task_key: self._target}

    @task.setter
    def task(self, task: Task) -> None:
        self.set_task(task)

    def _require_target(self) -> float:
        if self._target is None:
            raise TaskSpecError(f"{type(self).__name__} has no task: call set_task() first")
        return self._target

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the cheetah (Gymnasium's noise); ``options={"task": ...}`` also sets the task."""
        observation, info = super().reset(seed=seed, options=options)
        if options is not None and "task" in options:
            self.set_task(options["task"])
        elif self._target is None:
            self.set_task(self.sample_tasks(1, self.np_random)[0])
        return observation, info

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], np.float64, bool, bool, dict[str, np.float64]]:
        """Step with the action clipped to the control range (the control cost sees it clipped)."""
        low, high = self.model.actuator_ctrlrange.T
        return super().step(np.clip(action, low, high))

    def _run_reward(self, x_velocity: float) -> float:
        raise NotImplementedError

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        run_reward = self._run_reward(float(x_velocity))
        ctrl_cost = float(self.control_cost(action))
        return run_reward - ctrl_cost, {"reward_run": run_reward, "reward_ctrl": -ctrl_cost}


class HalfCheetahVelEnv(_HalfCheetahTaskEnv):
    """HalfCheetah rewarded for running at a target velocity: ``{"velocity": v_goal}``.

    Args:
        task: the initial task; sampled on the first reset when ``None``.
        **kwargs: passed to Gymnasium's ``HalfCheetahEnv`` (``ctrl_cost_weight`` defaults to
            0.05, the MAML code's ``0.5 * 0.1``).

    References:
        Finn, Abbeel and Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
        Networks." ICML 2017, section 5.3.
    """

    _task_key = "velocity"

    def sample_tasks(self, n_tasks: int, rng: np.random.Generator) -> list[Task]:
        """Return ``n_tasks`` target velocities drawn from ``U[0, 2]`` with ``rng``."""
        return [{"velocity": float(v)} for v in rng.uniform(0.0, MAX_VELOCITY, size=n_tasks)]

    def _check_target(self, value: float) -> None:
        if not np.isfinite(value):
            raise TaskSpecError(f"target velocity {value} must be a finite number")

    def _run_reward(self, x_velocity: float) -> float:
        return -abs(x_velocity - self._require_target())


class HalfCheetahDirEnv(_HalfCheetahTaskEnv):
    """HalfCheetah rewarded for running forward (+1) or backward (-1): ``{"direction": d}``.

    Args:
        task: the initial task; sampled on the first reset when ``None``.
        **kwargs: passed to Gymnasium's ``HalfCheetahEnv`` (``ctrl_cost_weight`` defaults to
            0.05, the MAML code's ``0.5 * 0.1``).

    References:
        Finn, Abbeel and Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
        Networks." ICML 2017, section 5.3.
    """

    _task_key = "direction"

    def sample_tasks(self, n_tasks: int, rng: np.random.Generator) -> list[Task]:
        """Return ``n_tasks`` directions, each +1 or -1 with probability 1/2, drawn with ``rng``."""
        return [{"direction": float(d)} for d in rng.choice([-1.0, 1.0], size=n_tasks)]

    def _check_target(self, value: float) -> None:
        if value not in (-1.0, 1.0):
            raise TaskSpecError(f"direction {value} must be +1 (forward) or -1 (backward)")

    def _run_reward(self, x_velocity: float) -> float:
        return self._require_target() * x_velocity
