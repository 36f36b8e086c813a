"""Meta-test: accuracy (or MSE) over a fixed set of episodes, as a mean with its 95% CI.

Every learner, gradient-based or metric-based, is scored by the same routine on the same
episodes: the protocol of the MAML, ProtoNet and Matching Networks papers (600 or 1000 test
episodes, ``ci95 = 1.96 * s / sqrt(n)`` with the sample standard deviation). Must not import
``metalearn.data`` or ``metalearn.rl``: episodes come in as any iterable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from metalearn.algorithms.base import Learner
from metalearn.algorithms.batching import TaskResult, map_tasks
from metalearn.algorithms.inductive import adapt_inductive, predict_inductive
from metalearn.episode import Episode
from metalearn.errors import ConfigError
from metalearn.training.logger import progress_bar, progress_enabled
from metalearn.utils.stats import MeanCI, mean_ci95

__all__ = ["EvalResult", "EvaluatedLearner", "SteppedLearner", "meta_test"]


class EvaluatedLearner(Protocol):
    """What :func:`meta_test` needs: ``adapt`` and ``predict`` (every ``Learner`` has them).

    Episodes are scored from ``predict(adapt(support), query_x)`` alone, the test-time use of
    a learner, so no training-only loss (Siamese pairs, Reptile's surrogate) is computed.
    An ``inner_steps`` sweep needs a :class:`SteppedLearner`. A :class:`Learner` scores a batch
    of episodes as its ``batched`` attribute says (:mod:`metalearn.algorithms.batching`);
    other objects loop over the episodes.
    """

    training: bool

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int | None) -> Any:
        """Return the task state (fast weights, prototypes, ...) of one support set."""

    def predict(self, state: Any, query_x: Tensor) -> Tensor:
        """Return logits ``(n_query, n_way)``, or predictions shaped like the targets."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The parameters (their device is where episodes are moved)."""

    def train(self, mode: bool = True) -> Any:
        """Set training mode."""


class SteppedLearner(EvaluatedLearner, Protocol):
    """A learner whose adaptation takes a number of steps (MAML and the other gradient ones)."""

    eval_inner_steps: int

    def adapt(
        self, support_x: Tensor, support_y: Tensor, n_way: int | None, *, steps: int | None = None
    ) -> Any:
        """Return the task state after ``steps`` adaptation steps (``None``: its own number)."""


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Per-episode scores of one meta-test, and their mean with a 95% confidence interval.

    Attributes:
        metric: ``"accuracy"`` (classification) or ``"mse"`` (regression).
        values: ``(n,)`` float64 per-episode values: after the learner's own number of
            adaptation steps, or after the last entry of ``inner_steps`` in a sweep.
        by_steps: ``{steps: (n,) values}`` for each number of adaptation steps of a sweep, in
            the order asked for; empty without a sweep.
    """

    metric: str
    values: Tensor
    by_steps: dict[int, Tensor] = field(default_factory=dict)

    @cached_property
    def summary(self) -> MeanCI:
        """The mean, the 95% CI half-width and ``n`` of :attr:`values`."""
        return mean_ci95(self.values)

    @property
    def mean(self) -> float:
        """Mean per-episode value."""
        return self.summary.mean

    @property
    def ci95(self) -> float:
        """Half-width of the 95% confidence interval of the mean."""
        return self.summary.ci95

    @property
    def n(self) -> int:
        """Number of episodes."""
        return self.summary.n

    def steps_summary(self) -> dict[int, MeanCI]:
        """Mean and 95% CI after each number of adaptation steps of a sweep."""
        return {steps: mean_ci95(values) for steps, values in self.by_steps.items()}

    def __str__(self) -> str:
        return f"{self.metric} {self.mean:.4f} +- {self.ci95:.4f} (95% CI, n={self.n})"


def meta_test(
    learner: EvaluatedLearner,
    episodes: Iterable[Episode],
    *,
    inner_steps: Sequence[int] | None = None,
    batch_size: int = 1,
    progress: bool = False,
    transductive: bool = True,
) -> EvalResult:
    """Score ``learner`` on every episode: query accuracy, or MSE for regression episodes.

    Each episode's value comes from ``learner.predict(learner.adapt(support), query_x)``:
    the fraction of queries whose argmax logit is the label, or the mean squared error over
    the query targets (``n_way=None``).

    Runs under ``torch.no_grad()`` in eval mode (``torch.func.grad`` inside ``adapt`` still
    works) and restores the learner's mode afterwards; nothing else of the learner changes.
    The same episodes give the same numbers.

    Args:
        learner: a :class:`~metalearn.algorithms.base.Learner` (see :class:`EvaluatedLearner`).
        episodes: single (unbatched) episodes, e.g. ``TaskSampler.episodes(600, seed=...)``, a
            list, or a stacked :class:`Episode` (split into its tasks). Moved to the learner's
            device one batch at a time, and iterated once.
        inner_steps: numbers of adaptation steps to score each episode after, e.g.
            ``range(11)``, passed to ``adapt(..., steps=n)``. ``None`` uses its own number.
        batch_size: stack up to this many consecutive episodes of equal shapes and score them
            in one batched call; the values equal those scored one by one.
        progress: draw a progress bar (only on a terminal, and not under ``CI``).
        transductive: normalise each episode's queries with their own batch statistics, as
            the papers do (their numbers are reproduced this way); ``False`` scores inductive
            predictions (:mod:`metalearn.algorithms.inductive`): each query alone, normalised
            with its support set's statistics, as ``metalearn predict`` serves them.

    Returns:
        The per-episode values with their mean, 95% CI and ``n``.

    Raises:
        ConfigError: if ``batch_size < 1``, ``inner_steps`` is invalid or the learner has no
            ``eval_inner_steps``, ``transductive=False`` for an object that is no ``Learner``,
            there are no episodes, or regression predictions are not shaped like the targets.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1")
    if not (transductive or isinstance(learner, Learner)):
        raise ConfigError(f"transductive=False needs a Learner, not a {type(learner).__name__}")
    sweep = _check_sweep(learner, inner_steps)
    first = next(iter(learner.parameters()), None)
    device = None if first is None else first.device
    was_training = learner.training
    scores: dict[int | None, list[Tensor]] = {steps: [] for steps in sweep}
    metric = ""
    learner.train(False)
    try:
        with torch.no_grad(), _bar(episodes, progress) as bar:
            for group in _groups(episodes, batch_size):
                for steps in sweep:
                    task_fn = partial(_adapt_predict, steps=steps, transductive=transductive)
                    metric, values = _score(learner, group, device, task_fn)
                    scores[steps].append(values)
                bar.update(len(group))
    finally:
        learner.train(was_training)
    if not metric:
        raise ConfigError("meta_test got no episodes; pass at least one")
    by_steps = {steps: torch.cat(parts) for steps, parts in scores.items()}
    headline = by_steps[sweep[-1]]
    named = {s: v for s, v in by_steps.items() if s is not None}
    return EvalResult(metric, headline, named)


def _check_sweep(learner: object, inner_steps: Sequence[int] | None) -> list[int | None]:
    if inner_steps is None:
        return [None]
    if not isinstance(getattr(learner, "eval_inner_steps", None), int):
        raise ConfigError(
            f"inner_steps={list(inner_steps)} needs a learner with an int attribute "
            f"eval_inner_steps (gradient-based learners); {type(learner).__name__} has none: "
            "pass inner_steps=None"
        )
    steps = list(dict.fromkeys(inner_steps))
    if not steps or any(not isinstance(s, int) or s < 0 for s in steps):
        raise ConfigError(f"inner_steps={list(inner_steps)} must be non-empty ints >= 0")
    return list(steps)


def _bar(episodes: Iterable[Episode], progress: bool) -> Any:
    total = None
    if isinstance(episodes, Episode):
        total = episodes.n_tasks
    elif isinstance(episodes, Sized):
        total = len(episodes)
    return progress_bar(total, desc="meta-test", enabled=progress_enabled(progress))


def _groups(episodes: Iterable[Episode], batch_size: int) -> Iterator[list[Episode]]:
    """Yield runs of up to ``batch_size`` consecutive episodes that can be stacked."""
    if isinstance(episodes, Episode):
        episodes = episodes.unbind() if episodes.is_batched else [episodes]
    group: list[Episode] = []
    for episode in episodes:
        if group and (len(group) == batch_size or _layout(episode) != _layout(group[0])):
            yield group
            group = []
        group.append(episode)
    if group:
        yield group


def _layout(episode: Episode) -> tuple[Any, ...]:
    return (episode.n_way, *((t.shape, t.dtype, t.device) for t in episode[:4]))


def _score(
    learner: EvaluatedLearner,
    group: list[Episode],
    device: torch.device | None,
    adapt_predict: Callable[[Any, Episode], TaskResult],
) -> tuple[str, Tensor]:
    """Return the metric name and its ``(len(group),)`` float64 per-episode values."""
    batch = Episode.stack(group) if len(group) > 1 else group[0]
    if device is not None:
        batch = batch.to(device)
    outputs, query_y = _outputs(learner, batch, adapt_predict), batch.query_y
    if not batch.is_batched:
        query_y = query_y.unsqueeze(0)
    if batch.n_way is not None:
        values = (outputs.argmax(-1) == query_y).to(torch.float64).mean(-1)
        return "accuracy", values.cpu()
    if outputs.shape != query_y.shape:
        raise ConfigError(
            f"{type(learner).__name__}.predict returned {tuple(outputs.shape[1:])} for regression "
            f"targets {tuple(query_y.shape[1:])}; predictions must have the targets' shape"
        )
    return "mse", (outputs - query_y).pow(2).flatten(1).mean(1).to("cpu", torch.float64)


def _outputs(
    learner: EvaluatedLearner, batch: Episode, adapt_predict: Callable[[Any, Episode], TaskResult]
) -> Tensor:
    """Query logits or predictions with a leading task dim: ``(n_tasks, n_query, ...)``."""
    if not batch.is_batched:
        return adapt_predict(learner, batch)[0].unsqueeze(0)
    if isinstance(learner, Learner) and learner.batched:
        return map_tasks(learner, adapt_predict, batch)[0]
    return torch.stack([adapt_predict(learner, episode)[0] for episode in batch.unbind()])


def _adapt_predict(
    learner: EvaluatedLearner, episode: Episode, *, steps: int | None, transductive: bool
) -> TaskResult:
    """Return one episode's query outputs (and no metrics): a per-task function."""
    support = episode.support_x, episode.support_y, episode.n_way
    # _check_sweep made sure that a learner given steps takes them
    kwargs: dict[str, Any] = {} if steps is None else {"steps": steps}
    if not transductive:
        assert isinstance(learner, Learner)  # checked by meta_test
        state = adapt_inductive(learner, *support, **kwargs)
        return predict_inductive(learner, state, episode.query_x), {}
    if steps is None:
        state = learner.adapt(*support)
    else:
        state = cast(SteppedLearner, learner).adapt(*support, steps=steps)
    return learner.predict(state, episode.query_x), {}
