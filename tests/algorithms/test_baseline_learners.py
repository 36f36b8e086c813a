"""Baseline and Baseline++ (Chen et al.): head fits against closed forms and hand values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from metalearn.algorithms import MAML, ProtoNet
from metalearn.algorithms.baseline import (
    Baseline,
    BaselineState,
    FitSettings,
    LabelledBatch,
    chen_scale,
    cosine_logits,
)
from metalearn.episode import Episode
from metalearn.errors import ConfigError
from metalearn.nn.backbones import Conv4
from metalearn.training import meta_test


class Identity(nn.Module):
    """Fixed features: the inputs themselves."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embedding_dim = dim
        self.unused = nn.Parameter(torch.zeros(1))  # meta_test reads the device from a parameter

    def forward(self, x: Tensor) -> Tensor:
        return x


def _solve_margin(weight_decay: float, norm2: float) -> float:
    """The root c of ``weight_decay * c = sigmoid(-2 c |a|^2)``, by bisection."""
    lo, hi = 0.0, 1.0 / weight_decay
    for _ in range(200):
        mid = (lo + hi) / 2
        if weight_decay * mid < 1 / (1 + math.exp(2 * mid * norm2)):
            lo = mid
        else:
            hi = mid
    return lo


def test_the_linear_head_reaches_the_closed_form_optimum_of_regularized_logistic_regression():
    # Two classes at +a and -a: by symmetry the L2-regularized softmax regression optimum is
    # w0 = c a, w1 = -c a, b = 0, with weight_decay * c = sigmoid(-2 c |a|^2).
    a = torch.tensor([0.6, 0.8], dtype=torch.float64)
    fit = FitSettings(lr=0.5, momentum=0.0, weight_decay=0.1, batch_size=2, epochs=3000)
    learner = Baseline(Identity(2), fit=fit).double()
    state = learner.adapt(torch.stack([a, -a]), torch.tensor([0, 1]), 2)
    c = _solve_margin(0.1, 1.0)
    torch.testing.assert_close(state.head["weight"], torch.stack([c * a, -c * a]))
    torch.testing.assert_close(state.head["bias"], torch.zeros(2, dtype=torch.float64))
    query = torch.tensor([[1.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    expected = torch.stack([c * query @ a, -c * query @ a], dim=1)
    torch.testing.assert_close(learner.predict(state, query), expected)


def test_cosine_logits_equal_a_hand_computation():
    # x = (3, 4): |x| = 5; class 0: v = (1, 0), g = 2; class 1: v = (0, 2), g = 0.5; s = 2.
    # cos = (0.6, 0.8) -> logits = 2 * (2 * 0.6, 0.5 * 0.8) = (2.4, 0.8), up to the 1e-5 on |x|.
    head = {"direction": torch.tensor([[1.0, 0.0], [0.0, 2.0]]), "gain": torch.tensor([2.0, 0.5])}
    learner = Baseline(Identity(2), head="cosine")
    logits = learner.predict(BaselineState(head), torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(logits, torch.tensor([[2.4, 0.8]]) * 5 / (5 + 1e-5))
    torch.testing.assert_close(
        cosine_logits(torch.tensor([[3.0, 4.0]]), head["direction"], head["gain"], 10.0),
        torch.tensor([[12.0, 4.0]]) * 5 / (5 + 1e-5),
    )


def test_defaults_are_chen_et_al_s_fine_tuning_and_scale():
    assert FitSettings() == FitSettings(
        lr=0.01, momentum=0.9, dampening=0.9, weight_decay=1e-3, batch_size=4, epochs=100
    )
    assert (chen_scale(5), chen_scale(200), chen_scale(4112)) == (2.0, 2.0, 10.0)
    with pytest.raises(ConfigError):
        FitSettings(batch_size=0)


def _separable_episode(n_shot: int, seed: int = 0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(3, 8) * 4
    support_y = torch.arange(3).repeat_interleave(n_shot)
    query_y = torch.arange(3).repeat_interleave(5)
    noise = lambda n: 0.3 * torch.randn(n, 8, generator=g)  # noqa: E731
    return Episode(
        centers[support_y] + noise(len(support_y)),
        support_y,
        centers[query_y] + noise(len(query_y)),
        query_y,
        3,
    )


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_meta_test_scores_separable_episodes_perfectly_and_repeatably(head):
    learner = Baseline(Identity(8), head=head)
    episodes = [_separable_episode(n_shot, seed) for n_shot in (1, 5) for seed in range(3)]
    first = meta_test(learner, episodes)
    assert first.mean == 1.0
    state_a = learner.adapt(*episodes[0][:2], 3)
    state_b = learner.adapt(*episodes[0][:2], 3)
    for name in state_a.head:
        assert torch.equal(state_a.head[name], state_b.head[name])


def test_finetune_encoder_adapts_a_copy_and_leaves_the_learner_unchanged():
    torch.manual_seed(0)
    learner = Baseline(Conv4(1, image_size=28), finetune_encoder=True, fit=FitSettings(epochs=3))
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    x, y = torch.rand(6, 1, 28, 28), torch.arange(3).repeat(2)
    with torch.no_grad():
        state = learner.adapt(x, y, 3)
    assert state.encoder is not None
    assert any(
        not torch.equal(state.encoder[k], v) for k, v in learner.encoder.state_dict().items()
    )
    assert all(torch.equal(v, learner.state_dict()[k]) for k, v in before.items())
    assert learner.predict(state, x).shape == (6, 3)


def test_meta_loss_trains_the_classifier_head_and_rejects_episodes():
    torch.manual_seed(0)
    learner = Baseline(Identity(8), head="cosine", n_classes=3)
    episode = _separable_episode(5)
    batch = LabelledBatch(episode.query_x, episode.query_y)
    optimizer = torch.optim.Adam(learner.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        loss, metrics = learner.meta_loss(batch)
        loss.backward()
        optimizer.step()
    assert metrics["accuracy"] == 1.0
    assert learner.head is not None
    assert learner.head.scale == 2.0
    with pytest.raises(ConfigError, match="labelled batches"):
        learner.meta_loss(episode)


@pytest.mark.parametrize("source", ["protonet", "maml"])
def test_the_encoder_of_another_learner_loads(source):
    torch.manual_seed(0)
    if source == "protonet":
        other: nn.Module = ProtoNet(Conv4(1))
        encoder = other.encoder  # type: ignore[union-attr]
    else:
        other = MAML(Conv4(1, out_features=5))
        encoder = other.model  # type: ignore[union-attr]
    learner = Baseline(Conv4(1), n_classes=7)
    learner.load_state_dict(other.state_dict())
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(learner.features(x), encoder.embed(x))


def test_the_written_out_sgd_equals_torch_optim_sgd():
    from metalearn.algorithms.heads import fit_sgd

    torch.manual_seed(0)
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    start = torch.randn(3, 2)
    fit = FitSettings(batch_size=4, epochs=5)
    ours = start.clone().requires_grad_()
    fit_sgd(
        [ours],
        lambda i: nn.functional.cross_entropy(x[i] @ ours, y[i]),
        10,
        fit,
        torch.Generator().manual_seed(1),
    )
    theirs = start.clone().requires_grad_()
    optimizer = torch.optim.SGD([theirs], lr=0.01, momentum=0.9, dampening=0.9, weight_decay=1e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        for i in torch.randperm(10, generator=generator).split(4):
            optimizer.zero_grad()
            nn.functional.cross_entropy(x[i] @ theirs, y[i]).backward()
            optimizer.step()
    torch.testing.assert_close(ours, theirs)
