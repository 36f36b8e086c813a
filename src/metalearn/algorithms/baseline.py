"""Baseline and Baseline++ (Chen et al., 2019): a plain classifier, then a new head per task.

Training is ordinary supervised learning on every training class at once
(:meth:`Baseline.meta_loss` on a :class:`LabelledBatch`). At test time each episode gets a new
head fitted on the frozen encoder's support features (optionally the whole network is
fine-tuned): a linear head (Baseline) or a cosine head (Baseline++). The cosine head and the
head fit, as ``methods/baselinefinetune.py`` of wyharveychen/CloserLookFewShot does it, are
:mod:`metalearn.algorithms.heads`. Must not import ``metalearn.data`` or
``metalearn.training``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from metalearn.algorithms.base import Learner, require_n_way
from metalearn.algorithms.batching import intra_op_threads
from metalearn.algorithms.heads import (
    CosineLinear,
    FitSettings,
    chen_scale,
    cosine_logits,
    fit_sgd,
)
from metalearn.episode import Episode
from metalearn.errors import ConfigError, EpisodeSpecError
from metalearn.nn.functional import embedding_size
from metalearn.types import Metrics
from metalearn.utils.stats import accuracy

__all__ = [
    "Baseline",
    "BaselineState",
    "CosineLinear",
    "FitSettings",
    "HeadKind",
    "LabelledBatch",
    "chen_scale",
    "cosine_logits",
    "encoder_state",
]

HeadKind = Literal["linear", "cosine"]


class LabelledBatch(NamedTuple):
    """A batch of labelled examples for plain supervised training: ``x`` and int64 ``y``."""

    x: Tensor
    y: Tensor

    def to(self, device: torch.device | str) -> LabelledBatch:
        """Return the batch on ``device``."""
        return LabelledBatch(self.x.to(device), self.y.to(device))


class BaselineState(NamedTuple):
    """One episode's adapted state: the head's tensors and, if fine-tuned, the encoder's."""

    head: dict[str, Tensor]
    encoder: dict[str, Tensor] | None = None


class Baseline(Learner[BaselineState]):
    """Baseline (linear head) and Baseline++ (cosine head) of Chen et al.

    Args:
        encoder: maps inputs ``(n, *x_shape)`` to features ``(n, d)``; needs ``embedding_dim``.
        head: ``"linear"`` (Baseline) or ``"cosine"`` (Baseline++).
        n_classes: classes of the training head (all training classes); 0: no training head
            (a learner that only fits heads on episodes, e.g. on another run's encoder).
        fit: the per-episode head fit.
        finetune_encoder: also fine-tune a copy of the encoder on each support set.
        scale: Baseline++'s logit scale; ``None``: :func:`chen_scale` of each head's classes.
        keep_head: predict with the trained head instead of fitting a new one per support set
            (a network fine-tuned on a user's classes by ``metalearn finetune``).
        seed: seed of each fit's head initialization and batch order, so that the same support
            set always gives the same head.

    References:
        Chen, Liu, Kira, Wang and Huang. "A Closer Look at Few-shot Classification." ICLR 2019.
    """

    batched = False  # each episode runs its own optimizer; there is nothing to vmap

    def __init__(
        self,
        encoder: nn.Module,
        *,
        head: HeadKind = "linear",
        n_classes: int = 0,
        fit: FitSettings | None = None,
        finetune_encoder: bool = False,
        scale: float | None = None,
        keep_head: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if head not in ("linear", "cosine"):
            raise ConfigError(f"head={head!r} is not one of 'linear', 'cosine'")
        if keep_head and n_classes < 2:
            raise ConfigError("keep_head needs a trained head of n_classes >= 2")
        self.encoder, self.head_kind, self.n_classes = encoder, head, n_classes
        self.fit = FitSettings() if fit is None else fit
        self.finetune_encoder, self.keep_head = finetune_encoder, keep_head
        self.scale, self.seed = scale, seed
        self.dim = embedding_size(encoder)  # a clear error when the encoder does not say
        self.head: nn.Module | None = None
        if n_classes:
            self.head = self._new_head(n_classes)

    def _new_head(self, n_classes: int) -> nn.Module:
        if self.head_kind == "cosine":
            return CosineLinear(self.dim, n_classes, self.scale)
        head = nn.Linear(self.dim, n_classes)
        nn.init.zeros_(head.bias)  # as BaselineTrain
        return head

    def _episode_head(self, n_way: int, generator: torch.Generator) -> dict[str, Tensor]:
        """A new head's tensors, initialized as ``nn.Linear`` from ``generator``."""
        bound = 1 / math.sqrt(self.dim)
        weight = torch.empty(n_way, self.dim).uniform_(-bound, bound, generator=generator)
        if self.head_kind == "cosine":
            return {"direction": weight, "gain": weight.norm(dim=1)}
        bias = torch.empty(n_way).uniform_(-bound, bound, generator=generator)
        return {"weight": weight, "bias": bias}

    def logits(self, features: Tensor, head: Mapping[str, Tensor]) -> Tensor:
        """Return the logits of ``features`` ``(n, d)`` under a head's tensors."""
        if self.head_kind == "cosine":
            n = head["direction"].shape[0]
            scale = chen_scale(n) if self.scale is None else self.scale
            return cosine_logits(features, head["direction"], head["gain"], scale)
        return F.linear(features, head["weight"], head["bias"])

    def features(self, x: Tensor, encoder: Mapping[str, Tensor] | None = None) -> Tensor:
        """Return flattened features ``(n, d)``, with ``encoder`` tensors if given."""
        if encoder is None:
            return self.encoder(x).flatten(1)
        return functional_call(self.encoder, dict(encoder), (x,)).flatten(1)

    def meta_loss(self, batch: Any, *, batched: bool | None = None) -> tuple[Tensor, Metrics]:
        """Cross-entropy of the training head on a :class:`LabelledBatch` (plain training)."""
        if isinstance(batch, Episode) or self.head is None:
            raise ConfigError(
                "Baseline learners train as plain classifiers on labelled batches over every "
                "training class (set --algorithm.n_classes); episodes are for testing them"
            )
        logits = self.head(self.features(batch.x))
        loss = F.cross_entropy(logits, batch.y)
        return loss, {"loss": loss.detach(), "accuracy": accuracy(logits.detach(), batch.y)}

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int | None) -> BaselineState:
        """Fit a new head (and, with ``finetune_encoder``, the encoder) on the support set."""
        n_way = require_n_way(n_way)
        if self.keep_head:
            assert self.head is not None  # checked in __init__
            if n_way != self.n_classes:
                raise EpisodeSpecError(
                    f"this fine-tuned model knows {self.n_classes} classes, not {n_way}"
                )
            return BaselineState(_detached(dict(self.head.named_parameters())))
        generator = torch.Generator().manual_seed(self.seed)
        head = {
            k: v.to(support_x.device, support_x.dtype).requires_grad_()
            for k, v in self._episode_head(n_way, generator).items()
        }
        with torch.enable_grad():  # meta_test runs under no_grad; the fit needs gradients
            if self.finetune_encoder:
                encoder = {
                    k: v.detach().clone().requires_grad_()
                    for k, v in self.encoder.named_parameters()
                }
                self._fit(head, encoder, support_x, support_y, generator)
                return BaselineState(_detached(head), _detached(encoder))
            with torch.no_grad():
                z_support = self.features(support_x)  # frozen encoder: the features once
            # ops on a few feature vectors: a second intra-op thread only adds synchronization
            # (on the loaded 2-core machine one thread fitted a 5-way head 40x faster)
            with intra_op_threads(1):
                self._fit(head, None, z_support, support_y, generator)
        return BaselineState(_detached(head))

    def _fit(
        self,
        head: dict[str, Tensor],
        encoder: dict[str, Tensor] | None,
        inputs: Tensor,
        labels: Tensor,
        generator: torch.Generator,
    ) -> None:
        """Fit ``head`` (and ``encoder``) on ``inputs``: features, or images with ``encoder``."""

        def loss_of(idx: Tensor) -> Tensor:
            z = inputs[idx] if encoder is None else self.features(inputs[idx], encoder)
            return F.cross_entropy(self.logits(z, head), labels[idx])

        params = list(head.values()) + ([] if encoder is None else list(encoder.values()))
        fit_sgd(params, loss_of, len(labels), self.fit, generator)

    def predict(self, state: BaselineState, query_x: Tensor) -> Tensor:
        """Return logits ``(n_query, n_way)`` of the episode's head on the query features."""
        return self.logits(self.features(query_x, state.encoder), state.head)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load this learner's weights, or the encoder of another learner's (ProtoNet, MAML...).

        Another learner's checkpoint (other keys than this learner's) gives only its encoder:
        ``encoder.*`` of metric learners, ``model.*`` without ``model.head.*`` of gradient
        learners; the training head, if any, keeps its initialization.
        """
        if not strict or set(state_dict) == set(self.state_dict()):
            return super().load_state_dict(state_dict, strict, assign)
        return self.encoder.load_state_dict(encoder_state(state_dict), strict, assign)


def _detached(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach() for k, v in tensors.items()}


def encoder_state(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Return the encoder's tensors from any learner's ``state_dict`` (without prefixes).

    Raises:
        ConfigError: if the state holds no encoder (``encoder.*``) nor network (``model.*``).
    """
    for prefix in ("encoder.", "model."):
        found = {
            k.removeprefix(prefix): v
            for k, v in state_dict.items()
            if k.startswith(prefix) and not k.startswith(prefix + "head.")
        }
        if found:
            return found
    raise ConfigError("this checkpoint holds no encoder (encoder.*) nor network (model.*)")
