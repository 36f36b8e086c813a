"""MAML++'s options on top of :class:`~metalearn.algorithms.maml.MAML`.

Learned per-layer per-step learning rates (LSLR), the multi-step loss (MSL) and
derivative-order annealing (DA). The two annealed options follow the training step, which the
training loop hands in through :meth:`MAMLPlusPlus.on_step_end`; a loss call never changes it.
Must not import ``metalearn.data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from metalearn.algorithms.maml import MAML
from metalearn.algorithms.params import lr_keys
from metalearn.episode import Episode
from metalearn.types import Metrics

__all__ = ["MAMLPlusPlus"]


class MAMLPlusPlus(MAML):
    """MAML with MAML++'s options (Antoniou et al.); each is off by default.

    Args:
        model: the network; see :class:`MAML`.
        per_step_lrs: learned per-layer per-step learning rates (LSLR): every adapted tensor
            gets one meta-learned rate per inner step, initialised to ``inner_lr`` (in
            :attr:`step_lrs`).
        multi_step_loss: the multi-step loss (MSL): in training, the meta-loss weighs the query
            losses after every inner step, annealed towards the last step over this many
            meta-iterations (:meth:`step_loss_weights`); 0 turns it off.
        first_order_iterations: derivative-order annealing (DA): the first this many training
            meta-iterations are first order, the rest second order.
        **maml_kwargs: the arguments of :class:`MAML`.

    Attributes:
        meta_iterations: a buffer (so checkpoints resume it) with the training steps done, set
            by :meth:`on_step_end`; only with ``multi_step_loss`` or ``first_order_iterations``.

    References:
        Antoniou, Edwards and Storkey. "How to train your MAML." ICLR 2019.
    """

    meta_iterations: Tensor

    def __init__(
        self,
        model: nn.Module,
        *,
        per_step_lrs: bool = False,
        multi_step_loss: int = 0,
        first_order_iterations: int = 0,
        **maml_kwargs: Any,
    ) -> None:
        super().__init__(model, **maml_kwargs)
        for name, value in [
            ("multi_step_loss", multi_step_loss),
            ("first_order_iterations", first_order_iterations),
        ]:
            if value < 0:
                raise ValueError(f"{name}={value} must be >= 0 (0: off)")
        self.multi_step_loss = multi_step_loss
        self.first_order_iterations = first_order_iterations
        self.step_lrs: nn.ParameterDict | None = None
        if per_step_lrs:
            self._lr_keys = lr_keys(self.adapted_names)
            self.step_lrs = nn.ParameterDict(
                {
                    key: nn.Parameter(torch.full((self.inner_steps,), self.inner_lr))
                    for key in self._lr_keys.values()
                }
            )
        if self.counts_meta_iterations:
            self.register_buffer("meta_iterations", torch.zeros((), dtype=torch.long))

    @property
    def counts_meta_iterations(self) -> bool:
        """Whether an option anneals over meta-iterations (counted in :attr:`meta_iterations`)."""
        return bool(self.multi_step_loss or self.first_order_iterations)

    def on_step_end(self, step: int) -> None:
        """Record that ``step`` training steps are done (the training loop calls this)."""
        if self.counts_meta_iterations:
            self.meta_iterations.fill_(step)

    @property
    def current_first_order(self) -> bool:
        """:attr:`first_order`, or whether training is still in its first-order iterations."""
        if self.first_order or not (self.first_order_iterations and self.training):
            return self.first_order
        return int(self.meta_iterations) < self.first_order_iterations

    def inner_lrs(self, step: int = 0) -> float | Mapping[str, Tensor]:
        """Return the inner learning rate of ``step``: a scalar, or a tensor per parameter name.

        With ``per_step_lrs``, each adapted tensor's learned rate for that step; steps beyond
        the trained ``inner_steps`` (a longer evaluation) reuse the last step's rates.
        """
        if self.step_lrs is None:
            return self.inner_lr
        step = min(step, self.inner_steps - 1)
        return {name: self.step_lrs[key][step] for name, key in self._lr_keys.items()}

    def step_loss_weights(self) -> list[float]:
        """Return the weights of the query losses after each inner step (MAML++'s annealing).

        Uniform at the start of meta-training; over ``multi_step_loss`` meta-iterations every
        step but the last decays linearly to ``0.03 / steps`` and the last grows to take up
        the rest, as in MAML++ (there per epoch of 500 iterations, here per iteration).
        """
        n = self.inner_steps
        if not self.multi_step_loss or n < 2:
            return [0.0] * (n - 1) + [1.0]
        progress = int(self.meta_iterations) / (n * self.multi_step_loss)
        floor = 0.03 / n
        early = max(1.0 / n - progress, floor)
        last = min(1.0 / n + (n - 1) * progress, 1.0 - (n - 1) * floor)
        return [early] * (n - 1) + [last]

    def episode_loss(self, episode: Episode) -> tuple[Tensor, Metrics]:
        """Return the query loss after the inner steps, and its metrics.

        With ``multi_step_loss`` in training, the loss is the weighted sum of the query losses
        after each step (:meth:`step_loss_weights`); the metrics are those after the last.
        """
        if not (self.multi_step_loss and self.training and self.inner_steps > 1):
            return super().episode_loss(episode)
        loss = torch.zeros((), dtype=episode.query_x.dtype, device=episode.query_x.device)
        states = self.adaptation(episode.support_x, episode.support_y, episode.n_way)
        for weight, state in zip(self.step_loss_weights(), states, strict=True):
            output = self.predict(state, episode.query_x)
            step_loss = self.query_loss(output, episode.query_y, episode.n_way)
            loss = loss + weight * step_loss
        return loss, self.metrics(output, episode.query_y, step_loss, episode.n_way)
