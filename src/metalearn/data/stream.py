"""The seeded-stream and fixed-evaluation-set logic shared by every task family.

A task family implements :meth:`EpisodeStream._draw` (``n_tasks`` tasks from a generator) and
:meth:`EpisodeStream._spec`; this base class turns it into the
:class:`~metalearn.episode.TaskSource` protocol plus :meth:`EpisodeStream.episodes`.

Two streams, independent of each other:

- **training**: :meth:`~EpisodeStream.sample` and :meth:`~EpisodeStream.sample_batch` advance
  one ``torch.Generator`` seeded with ``seed``; its state is saved and restored for an exact
  resume.
- **evaluation**: episode ``i`` of :meth:`~EpisodeStream.episodes` is drawn from its own
  generator seeded with a hash of ``(seed, i)``. So the set is the same on every call and in
  every process, does not depend on ``batch_size`` or on how far training has gone, and the
  first 100 of 600 episodes are the 100 episodes of a 100-episode set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch

from metalearn.episode import Episode
from metalearn.errors import EpisodeSpecError

__all__ = ["EpisodeStream", "check_count"]

_MASK64 = (1 << 64) - 1
_EVAL_SALT = 0x6D65_7461_6C65_6172  # "metalear": keeps evaluation seeds off the training seed


def _episode_seed(seed: int, index: int) -> int:
    """SplitMix64 of ``(seed, index)``: a well-mixed 63-bit seed for episode ``index``."""
    z = (seed * 0x9E37_79B9_7F4A_7C15 + index + _EVAL_SALT) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def _single(batch: Episode) -> Episode:
    """The only task of a one-task stack, without its task dim."""
    return Episode(
        batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0], batch.n_way
    )


def check_count(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an int ``>= minimum``.

    Raises:
        EpisodeSpecError: naming ``name``, the value and the constraint.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise EpisodeSpecError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class EpisodeStream(ABC):
    """Base of seeded task families: a training stream and a fixed evaluation set.

    Args:
        seed: seeds the training stream and, unless :meth:`episodes` is given another seed,
            the evaluation set.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self._seed = check_count("seed", seed, 0)
        self._generator = torch.Generator().manual_seed(seed)

    @abstractmethod
    def _draw(self, n_tasks: int, generator: torch.Generator) -> Episode:
        """Return ``n_tasks`` tasks stacked along dim 0, using only ``generator``."""

    @abstractmethod
    def _spec(self) -> dict[str, Any]:
        """What defines the task distribution; a saved state must match it to be loaded."""

    @property
    def seed(self) -> int:
        """The seed of the training stream."""
        return self._seed

    def sample(self) -> Episode:
        """Return the next task of the training stream (an unbatched :class:`Episode`)."""
        return _single(self._draw(1, self._generator))

    def sample_batch(self, n_tasks: int) -> Episode:
        """Return the next ``n_tasks`` tasks of the training stream, stacked along dim 0."""
        return self._draw(check_count("n_tasks", n_tasks, 1), self._generator)

    def state_dict(self) -> dict[str, Any]:
        """Return the training stream's state (generator state and spec), for exact resume."""
        return {"spec": self._spec(), "seed": self._seed, "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`; the next tasks continue that stream.

        Raises:
            EpisodeSpecError: if the state was saved by a sampler of another spec.
        """
        if state.get("spec") != self._spec():
            raise EpisodeSpecError(
                f"sampler state was saved for {state.get('spec')}, but this sampler is "
                f"{self._spec()}; build the sampler with the saved spec to resume"
            )
        self._seed = state["seed"]
        self._generator.set_state(state["generator"])

    def episodes(
        self, n: int, *, seed: int | None = None, batch_size: int | None = None
    ) -> Iterator[Episode]:
        """Yield a fixed, reproducible evaluation set of ``n`` episodes.

        Every call with the same ``n`` and ``seed`` yields the same episodes, in any process,
        without touching the training stream.

        Args:
            n: number of episodes.
            seed: seed of the set (default: this sampler's seed). The set differs from the
                training stream of the same seed.
            batch_size: yield stacked batches of up to this many episodes instead of single
                ones; the episodes are the same.

        Yields:
            unbatched :class:`Episode` s, or stacked ones when ``batch_size`` is given.
        """
        check_count("n", n, 0)
        base = self._seed if seed is None else check_count("seed", seed, 0)
        step = 1 if batch_size is None else check_count("batch_size", batch_size, 1)
        generator = torch.Generator()
        for start in range(0, n, step):
            tasks = []
            for i in range(start, min(start + step, n)):
                generator.manual_seed(_episode_seed(base, i))
                tasks.append(_single(self._draw(1, generator)))
            yield tasks[0] if batch_size is None else Episode.stack(tasks)
