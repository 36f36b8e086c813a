"""Baseline and Baseline++ (Chen et al., 2019): a plain classifier, then a new head per task.

Training is ordinary supervised learning on every training class at once
(:meth:`Baseline.meta_loss` on a :class:`LabelledBatch`). At test time each episode gets a new
head fitted on the frozen encoder's support features (optionally the whole network is
fine-tuned): a linear head (Baseline) or a cosine head (Baseline++). The head fit follows
``methods/baselinefinetune.py`` of wyharveychen/CloserLookFewShot: SGD with learning rate
0.01, momentum 0.9, dampening 0.9, weight decay 1e-3 (on the bias too), batches of 4 support
examples, 100 epochs over the support set. The cosine head is that code's ``distLinear``:
``s * g_c * cos(x, v_c)`` with a learned per-class gain ``g_c`` (weight normalization) and
``s = 2`` up to 200 classes, else 10. Must not import ``metalearn.data`` or
``metalearn.training``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from metalearn.algorithms.base import Learner, require_n_way
from metalearn.algorithms.batching import intra_op_threads
from metalearn.episode import Episode
from metalearn.errors import ConfigError, EpisodeSpecError
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
_EPS = 1e-5  # added to the feature norm, as distLinear does


class LabelledBatch(NamedTuple):
    """A batch of labelled examples for plain supervised training: ``x`` and int64 ``y``."""

    x: Tensor
    y: Tensor

    def to(self, device: torch.device | str) -> LabelledBatch:
        """Return the batch on ``device``."""
        return LabelledBatch(self.x.to(device), self.y.to(device))


def chen_scale(n_classes: int) -> float:
    """Baseline++'s fixed logit scale: 2 up to 200 classes, 10 above (Omniglot's 4,112)."""
    return 2.0 if n_classes <= 200 else 10.0


def cosine_logits(features: Tensor, direction: Tensor, gain: Tensor, scale: float) -> Tensor:
    r"""Return ``scale * gain_c * cos(x, v_c)``: Baseline++'s logits ``(n, n_classes)``.

    .. math:: \mathrm{logit}_c(x) = s\, g_c \frac{\langle x, v_c \rangle}{(\lVert x \rVert +
        10^{-5}) \lVert v_c \rVert}

    Args:
        features: ``(n, d)``.
        direction: ``(n_classes, d)`` class weight vectors ``v_c`` (only their direction counts).
        gain: ``(n_classes,)`` per-class gains ``g_c`` (weight normalization's magnitude).
        scale: the fixed scale ``s``.
    """
    x = features / (features.norm(dim=-1, keepdim=True) + _EPS)
    weight = gain.unsqueeze(-1) * direction / direction.norm(dim=-1, keepdim=True)
    return scale * x @ weight.T


class CosineLinear(nn.Module):
    """Baseline++'s classifier: :func:`cosine_logits` with learned directions and gains.

    Initialized as ``nn.Linear(d, n, bias=False)``, with the gains set to the initial row norms
    (what ``torch.nn.utils.weight_norm`` does), so the first logits are ``s`` times the plain
    linear ones over the feature norm.
    """

    def __init__(self, in_features: int, out_features: int, scale: float | None = None) -> None:
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.direction = nn.Parameter(
            torch.empty(out_features, in_features).uniform_(-bound, bound)
        )
        self.gain = nn.Parameter(self.direction.detach().norm(dim=1).clone())
        self.scale = chen_scale(out_features) if scale is None else scale

    def forward(self, features: Tensor) -> Tensor:
        """Return logits ``(n, out_features)``."""
        return cosine_logits(features, self.direction, self.gain, self.scale)


@dataclass(frozen=True)
class FitSettings:
    """How each episode's head is fitted (defaults: Chen et al.'s ``baselinefinetune.py``)."""

    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.9
    weight_decay: float = 1e-3
    batch_size: int = 4
    epochs: int = 100

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.batch_size >= 1 and self.epochs >= 0):
            raise ConfigError(
                f"head fit lr={self.lr}, batch_size={self.batch_size}, epochs={self.epochs}: "
                "need lr > 0, batch_size >= 1 and epochs >= 0"
            )


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
        self.dim: int = encoder.embedding_dim  # type: ignore[assignment]
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


def fit_sgd(
    params: list[Tensor],
    loss_of: Callable[[Tensor], Tensor],
    n: int,
    fit: FitSettings,
    generator: torch.Generator,
) -> None:
    """Minimize ``loss_of(indices)`` over ``params`` (in place) by SGD on mini-batches of ``n``.

    Each epoch visits the ``n`` examples once in a fresh random order, in batches of
    ``fit.batch_size`` (the last may be smaller), as ``baselinefinetune.py`` does. The update
    is ``torch.optim.SGD``'s (weight decay added to the gradient, momentum buffer started at
    the first gradient, then ``b = momentum * b + (1 - dampening) * g``), written out because
    the optimizer class costs more per call than a whole 5-way head fit.
    """
    device = params[0].device
    buffers: list[Tensor] | None = None
    for _ in range(fit.epochs):
        for idx in torch.randperm(n, generator=generator).split(fit.batch_size):
            grads = torch.autograd.grad(loss_of(idx.to(device)), params)
            with torch.no_grad():
                steps = [g + fit.weight_decay * p for g, p in zip(grads, params, strict=True)]
                if buffers is None:
                    buffers = steps
                else:
                    for b, d in zip(buffers, steps, strict=True):
                        b.mul_(fit.momentum).add_(d, alpha=1 - fit.dampening)
                for p, b in zip(params, buffers, strict=True):
                    p.sub_(fit.lr * b)
