"""Meta-SGD: MAML with a learned inner learning rate for every parameter entry.

Must not import ``metalearn.data``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from metalearn.algorithms.maml import MAML
from metalearn.algorithms.params import lr_keys

__all__ = ["MetaSGD"]


class MetaSGD(MAML):
    r"""Meta-SGD: meta-learns the initialisation and a per-entry inner learning rate.

    Every adapted parameter ``theta_j`` gets a learning-rate tensor ``alpha_j`` of its shape,
    initialised to ``inner_lr`` and meta-trained with the initialisation (unconstrained, as in
    the paper, so an entry may turn negative). The inner step is elementwise:

    .. math:: \theta' = \theta - \alpha \odot \nabla_\theta L_S(\theta)

    Args:
        model: the network; see :class:`MAML`.
        inner_lr: initial value of every learning-rate entry (0.01 in the paper's experiments).
        inner_steps: inner steps in training mode (the paper uses one).
        eval_inner_steps: inner steps in evaluation mode; defaults to ``inner_steps``.
        first_order: drop the second-order terms (the learning rates still get a gradient).
        adapted: submodule or parameter names to adapt (``None``: all); see :class:`MAML`.
        batched: default path of :meth:`meta_loss`; ``None`` keeps the class default.

    Attributes:
        lrs: ``nn.ParameterDict`` of learning-rate tensors, keyed by the adapted parameter's
            name with ``.`` replaced by ``_`` (module keys may not contain dots).

    References:
        Li, Zhou, Chen and Li. "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning."
        arXiv:1707.09835, 2017.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        adapted: Sequence[str] | None = None,
        batched: bool | None = None,
    ) -> None:
        super().__init__(
            model,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            eval_inner_steps=eval_inner_steps,
            first_order=first_order,
            adapted=adapted,
            batched=batched,
        )
        params = self.meta_params()
        keys = lr_keys(self.adapted_names)
        self._lr_keys = keys
        self.lrs = nn.ParameterDict(
            {
                key: nn.Parameter(torch.full_like(params[name].detach(), inner_lr))
                for name, key in keys.items()
            }
        )

    def inner_lrs(self, step: int = 0) -> Mapping[str, Tensor]:
        """Return the learning-rate tensor of every adapted parameter, by parameter name."""
        return {name: self.lrs[key] for name, key in self._lr_keys.items()}
