"""ANIL: MAML whose inner loop adapts only the head. Must not import ``metalearn.data``."""

from __future__ import annotations

from torch import nn

from metalearn.algorithms.maml import MAML

__all__ = ["ANIL"]


class ANIL(MAML):
    """Almost No Inner Loop: MAML that adapts only the head; the body is meta-learned only.

    Same arguments as :class:`MAML`, with ``head`` naming the adapted submodule instead of
    ``adapted``.

    References:
        Raghu, Raghu, Bengio and Vinyals. "Rapid Learning or Feature Reuse? Towards
        Understanding the Effectiveness of MAML." ICLR 2020.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        head: str = "head",
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        batched: bool | None = None,
    ) -> None:
        super().__init__(
            model,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            eval_inner_steps=eval_inner_steps,
            first_order=first_order,
            adapted=(head,),
            batched=batched,
        )
