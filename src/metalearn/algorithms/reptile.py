"""Reptile, written as a surrogate loss so that the common outer loop runs it unchanged.

Must not import ``metalearn.data``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from metalearn.algorithms.maml import MAML
from metalearn.episode import Episode
from metalearn.types import Metrics

__all__ = ["Reptile"]


class Reptile(MAML):
    r"""Reptile: move the initialisation towards the weights adapted to each task.

    ``adapt`` takes ``inner_steps`` plain (first-order) SGD steps on the support set. The
    episode loss is the surrogate

    .. math:: L(\phi) = \tfrac12 \lVert \phi - \mathrm{sg}(\tilde\theta) \rVert^2,
        \qquad \nabla_\phi L = \phi - \tilde\theta

    where ``phi`` are the meta-parameters and ``theta~`` the (detached) adapted ones. Averaged
    over a meta-batch and minimised by SGD with learning rate ``epsilon``, this is exactly
    Reptile's update ``phi <- phi + epsilon * mean_i(theta~_i - phi)``. With Adam as the outer
    optimizer, the Reptile direction is rescaled per entry, as in the paper's Adam variant.
    Query metrics (``loss``, ``accuracy``/``mse``) are reported at the adapted weights; the
    surrogate is reported as ``surrogate``.

    Args:
        model: the network; see :class:`MAML`.
        inner_lr: inner SGD learning rate.
        inner_steps: inner steps in training mode (the paper uses 5 to 10 on Omniglot).
        eval_inner_steps: inner steps in evaluation mode; defaults to ``inner_steps``.
        adapted: submodule or parameter names to adapt (``None``: all); see :class:`MAML`.
        batched: default path of :meth:`meta_loss`; ``None`` keeps the class default.

    References:
        Nichol, Achiam and Schulman. "On First-Order Meta-Learning Algorithms."
        arXiv:1803.02999, 2018.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_lr: float = 0.01,
        inner_steps: int = 5,
        eval_inner_steps: int | None = None,
        adapted: Sequence[str] | None = None,
        batched: bool | None = None,
    ) -> None:
        super().__init__(
            model,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            eval_inner_steps=eval_inner_steps,
            first_order=True,
            adapted=adapted,
            batched=batched,
        )

    def episode_loss(self, episode: Episode) -> tuple[Tensor, Metrics]:
        """Return the surrogate ``0.5 * ||phi - sg(theta~)||^2`` and the query metrics."""
        # no graph to the meta-parameters: the surrogate treats the adapted weights as constants
        # (gradient_descent takes its inner gradients with grad enabled, so it still adapts)
        with torch.no_grad():
            fast_params = self.adapt(episode.support_x, episode.support_y, episode.n_way)
            output = self.predict(fast_params, episode.query_x)
            query_loss = self.query_loss(output, episode.query_y, episode.n_way)
        params = self.meta_params()
        surrogate = 0.5 * sum(
            (params[name] - fast_params[name]).square().sum() for name in self.adapted_names
        )
        assert isinstance(surrogate, Tensor)
        metrics = self.metrics(output, episode.query_y, query_loss, episode.n_way)
        return surrogate, {**metrics, "surrogate": surrogate.detach()}
