"""Task distributions for meta-RL: a seeded source of tasks for a registered environment id.

A task is a small dict (``{"goal": (x, y)}``, ``{"velocity": v}``, ``{"direction": d}``) that an
environment of the family accepts in ``set_task``. It is plain data, so it goes into checkpoints
and JSON as it is. gymnasium is imported inside methods only.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np

from metalearn.errors import TaskSpecError

__all__ = ["Task", "TaskDistribution", "TaskFamilyEnv"]

Task: TypeAlias = dict[str, Any]
"""One task of a family, as accepted by the environment's ``set_task``."""


@runtime_checkable
class TaskFamilyEnv(Protocol):
    """What an environment of a task family has besides gymnasium's API."""

    def sample_tasks(self, n_tasks: int, rng: np.random.Generator) -> list[Task]:
        """Return ``n_tasks`` tasks drawn with ``rng``."""

    def set_task(self, task: Task) -> None:
        """Make the following episodes those of ``task``."""

    def close(self) -> None:
        """Release the environment's resources."""


class TaskDistribution:
    """Samples tasks of a registered task family with its own seeded generator.

    Implements the :class:`metalearn.episode.TaskSource` protocol: the meta-batch of an RL
    learner is a list of tasks. The environment's ``sample_tasks(n, rng)`` defines the family.

    Args:
        env_id: a registered id, e.g. ``"metalearn/Navigation2D-v0"``.
        seed: seed of the task generator; two sources with one seed give the same tasks.
        env_kwargs: keyword arguments of ``gymnasium.make`` for the environment.

    Examples:
        >>> import metalearn.rl
        >>> tasks = TaskDistribution("metalearn/Navigation2D-v0", seed=0)
        >>> len(tasks.sample_batch(3)), sorted(tasks.sample())
        (3, ['goal'])
    """

    def __init__(
        self, env_id: str, *, seed: int = 0, env_kwargs: dict[str, Any] | None = None
    ) -> None:
        import gymnasium

        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        env = gymnasium.make(env_id, **self.env_kwargs).unwrapped
        if not isinstance(env, TaskFamilyEnv):
            env.close()
            raise TaskSpecError(
                f"{env_id} is not a task family: its environment lacks sample_tasks(n_tasks, "
                "rng) or set_task(task) (see metalearn.rl's environments)"
            )
        self._env = env
        self._rng = np.random.default_rng(seed)

    def sample(self) -> Task:
        """Return one task."""
        return self.sample_batch(1)[0]

    def sample_batch(self, n_tasks: int) -> list[Task]:
        """Return ``n_tasks`` tasks drawn independently."""
        return self._env.sample_tasks(n_tasks, self._rng)

    def state_dict(self) -> dict[str, Any]:
        """Return the generator state, for an exact resume."""
        return {"env_id": self.env_id, "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""
        self._rng.bit_generator.state = state["rng"]

    def close(self) -> None:
        """Close the environment used to sample tasks."""
        self._env.close()
