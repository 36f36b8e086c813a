"""Tiny models and meta-batches shared by the gradient-based learner tests (float64).

Imported by name (``from gradient_fixtures import ...``), as tests/training does with
``training_fixtures``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from metalearn.episode import Episode
from metalearn.nn.backbones import MLP, Conv4


class Scalar(nn.Module):
    """f(w) = w * x with one parameter, the model of the hand-computed examples."""

    def __init__(self, w: float = 1.5) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def forward(self, x):
        return self.w * x


def hand_episode() -> Episode:
    """Support (x=2, y=1), query (x=3, y=2): the STYLE.md hand example, loss (w x - y)^2."""

    def t(v):
        return torch.tensor([[v]], dtype=torch.float64)

    return Episode(t(2.0), t(1.0), t(3.0), t(2.0), None)


BATCHED_PATHS = pytest.mark.parametrize(
    ("chunk_size", "task_threads"),
    [(None, 1), (2, 1), (1, 1), (1, 2)],
    ids=["all", "chunks-of-2", "one-by-one", "tasks-on-2-threads"],  # 3 tasks: shares of 2 and 1
)
"""Parametrizes a test over the batched paths of ``Learner.meta_loss`` (``chunk_size`` and
``task_threads`` of the learner)."""


def tiny_conv(n_way: int = 3) -> nn.Module:
    """Conv4 with TaskBatchNorm at 16x16 (16 -> 8 -> 4 -> 2 -> 1), 4 channels, float64."""
    return Conv4(1, out_features=n_way, hidden_channels=4, image_size=16).double()


def tiny_strided_conv(n_way: int = 3) -> nn.Module:
    """MAML's Omniglot variant of :func:`tiny_conv`: stride-2 convs, spatial mean pooling."""
    return Conv4(1, out_features=n_way, hidden_channels=4, image_size=16, strided=True).double()


def tiny_mlp(n_way: int = 3) -> nn.Module:
    return MLP(4, n_way, hidden_sizes=(8, 8)).double()


def classification_batch(
    n_tasks: int = 3, n_way: int = 3, n_shot: int = 2, n_query: int = 2, x_shape=(4,)
) -> Episode:
    """Random stacked episodes with labels 0..n_way-1 (float64 inputs)."""
    support_y = torch.arange(n_way).repeat_interleave(n_shot).expand(n_tasks, -1)
    query_y = torch.arange(n_way).repeat_interleave(n_query).expand(n_tasks, -1)
    return Episode(
        torch.randn(n_tasks, n_way * n_shot, *x_shape, dtype=torch.float64),
        support_y.contiguous(),
        torch.randn(n_tasks, n_way * n_query, *x_shape, dtype=torch.float64),
        query_y.contiguous(),
        n_way,
    )


def regression_batch(n_tasks: int = 3, n_shot: int = 4, n_query: int = 5) -> Episode:
    """Random stacked regression episodes: x ``(n, 1)``, y ``(n, 1)`` (float64)."""

    def r(n):
        return torch.randn(n_tasks, n, 1, dtype=torch.float64)

    return Episode(r(n_shot), r(n_shot), r(n_query), r(n_query), None)


def meta_grads(learner, batch, *, batched):
    """Return the meta-loss, its metrics and the meta-gradient of every learner parameter."""
    loss, metrics = learner.meta_loss(batch, batched=batched)
    names = [name for name, p in learner.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [dict(learner.named_parameters())[n] for n in names])
    return loss, metrics, dict(zip(names, grads, strict=True))


def assert_vmap_equals_loop(learner, batch, *, seed=None):
    """Check the batched meta-loss equals the loop in value, metrics and meta-gradient.

    ``seed`` reseeds the global generator before each path, for learners that draw from it
    (Siamese pairs). Returns the batched path's meta-gradients by parameter name.
    """
    results = []
    for batched in (True, False):
        if seed is not None:
            torch.manual_seed(seed)
        results.append(meta_grads(learner, batch, batched=batched))
    (loss_v, metrics_v, grads_v), (loss_l, metrics_l, grads_l) = results
    assert_close(loss_v, loss_l)
    assert_close(metrics_v, metrics_l)
    assert_close(grads_v, grads_l)
    return grads_v
