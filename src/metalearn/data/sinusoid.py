"""Sinusoid regression tasks of MAML (Finn et al., 2017, section 5.1).

A task is ``y = A * sin(x - phase)`` with ``A ~ U[0.1, 5.0]``, ``phase ~ U[0, pi]`` and inputs
``x ~ U[-5, 5]``; the learner sees ``n_shot`` points of it and is scored on ``n_query`` more.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from metalearn.data.stream import EpisodeStream, check_count
from metalearn.episode import Episode
from metalearn.errors import EpisodeSpecError

__all__ = ["SinusoidTasks", "sinusoid"]


def sinusoid(x: Tensor, amplitude: Tensor | float, phase: Tensor | float) -> Tensor:
    """Return ``amplitude * sin(x - phase)`` (broadcasting)."""
    return amplitude * torch.sin(x - phase)


def _check_range(name: str, bounds: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(b) for b in bounds)
    if not low <= high:
        raise EpisodeSpecError(f"{name} must be (low, high) with low <= high, got {bounds!r}")
    return low, high


class SinusoidTasks(EpisodeStream):
    """The distribution of sinusoid regression tasks, as episodes with ``n_way=None``.

    ``support_x`` and ``support_y`` are ``(n_shot, 1)``, ``query_x`` and ``query_y`` are
    ``(n_query, 1)`` (with a leading task dim from :meth:`sample_batch`), all float32. The
    seeded stream, state and fixed evaluation set behave as in
    :class:`~metalearn.data.TaskSampler`.

    Args:
        n_shot: support points per task (K in MAML: 5, 10 or 20).
        n_query: query points per task.
        seed: seed of the training stream and the default evaluation set.
        amplitude_range: ``(low, high)`` of the uniform amplitude.
        phase_range: ``(low, high)`` of the uniform phase.
        x_range: ``(low, high)`` of the uniform inputs.
        query_on_grid: put the ``n_query`` query inputs evenly spaced over ``x_range`` (in
            increasing order) instead of drawing them, so the query set traces the whole curve
            for plots.

    Raises:
        EpisodeSpecError: if ``n_shot`` or ``n_query`` is below 1 or a range is reversed.
    """

    def __init__(
        self,
        n_shot: int,
        n_query: int,
        *,
        seed: int = 0,
        amplitude_range: tuple[float, float] = (0.1, 5.0),
        phase_range: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        query_on_grid: bool = False,
    ) -> None:
        super().__init__(seed=seed)
        self.n_shot = check_count("n_shot", n_shot, 1)
        self.n_query = check_count("n_query", n_query, 1)
        self.amplitude_range = _check_range("amplitude_range", amplitude_range)
        self.phase_range = _check_range("phase_range", phase_range)
        self.x_range = _check_range("x_range", x_range)
        self.query_on_grid = query_on_grid

    def __repr__(self) -> str:
        return f"SinusoidTasks(n_shot={self.n_shot}, n_query={self.n_query}, seed={self.seed})"

    def _spec(self) -> dict[str, Any]:
        return {
            "family": "sinusoid",
            "n_shot": self.n_shot,
            "n_query": self.n_query,
            "amplitude_range": list(self.amplitude_range),
            "phase_range": list(self.phase_range),
            "x_range": list(self.x_range),
            "query_on_grid": self.query_on_grid,
        }

    def _draw(self, n_tasks: int, generator: torch.Generator) -> Episode:
        amplitude = _uniform((n_tasks, 1, 1), self.amplitude_range, generator)
        phase = _uniform((n_tasks, 1, 1), self.phase_range, generator)
        n_drawn = self.n_shot if self.query_on_grid else self.n_shot + self.n_query
        x = _uniform((n_tasks, n_drawn, 1), self.x_range, generator)
        if self.query_on_grid:
            grid = torch.linspace(*self.x_range, self.n_query).view(1, -1, 1)
            x = torch.cat([x, grid.expand(n_tasks, -1, -1)], dim=1)
        y = sinusoid(x, amplitude, phase)
        k = self.n_shot
        return Episode(x[:, :k], y[:, :k], x[:, k:], y[:, k:], None)


def _uniform(
    shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator
) -> Tensor:
    low, high = bounds
    return torch.rand(shape, generator=generator).mul_(high - low).add_(low)
