import pytest
import torch
from gradient_fixtures import assert_vmap_equals_loop
from metric_fixtures import random_batch, train_on_gaussian_episodes
from torch import nn
from torch.testing import assert_close

from metalearn.algorithms.protonet import ProtoNet
from metalearn.episode import Episode
from metalearn.errors import ConfigError
from metalearn.nn.backbones import Conv4

HAND_SUPPORT = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
HAND_LABELS = torch.tensor([0, 0, 1, 1])


def test_prototypes_and_logits_on_the_hand_example():
    learner = ProtoNet(nn.Identity())
    prototypes = learner.adapt(HAND_SUPPORT, HAND_LABELS, 2)
    assert_close(prototypes, torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    # squared distances of [1, 1] to the prototypes are [1, 5]
    assert_close(
        learner.predict(prototypes, torch.tensor([[1.0, 1.0]])), torch.tensor([[-1.0, -5.0]])
    )


def test_cosine_logits_are_scaled_cosines_to_the_prototypes():
    learner = ProtoNet(nn.Identity(), distance="cosine")
    prototypes = learner.adapt(HAND_SUPPORT, HAND_LABELS, 2)
    logits = learner.predict(prototypes, torch.tensor([[1.0, 1.0], [3.0, 0.0]]))
    r = 2**-0.5
    assert_close(logits, 10.0 * torch.tensor([[r, r], [1.0, 0.0]]))
    assert ProtoNet(nn.Identity(), distance="cosine", scale=2.0).scale == 2.0


def test_an_unknown_distance_is_rejected_with_the_choices():
    with pytest.raises(ConfigError, match=r"'manhattan'.*'euclidean', 'cosine'"):
        ProtoNet(nn.Identity(), distance="manhattan")  # type: ignore[arg-type]


def test_a_regression_episode_is_rejected():
    with pytest.raises(ValueError, match="n_way"):
        ProtoNet(nn.Identity()).adapt(HAND_SUPPORT, HAND_LABELS, None)


def test_the_loss_passes_gradcheck_with_respect_to_the_embeddings():
    learner = ProtoNet(nn.Identity())
    support_y, query_y = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 2, 2])
    support = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    queries = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)

    def loss(s, q):
        return learner.episode_loss(Episode(s, support_y, q, query_y, 3))[0]

    assert torch.autograd.gradcheck(loss, (support, queries))


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_the_vmapped_meta_loss_equals_the_loop_in_value_and_gradient(distance):
    # Conv4 normalises with per-task batch statistics: the vmapped path must keep them per task
    learner = ProtoNet(Conv4(hidden_channels=4, image_size=16), distance=distance).double()
    batch = random_batch(x_shape=(1, 16, 16))
    assert_vmap_equals_loop(learner, batch)


def test_the_default_path_is_the_measured_loop():
    assert ProtoNet(nn.Identity()).batched is False


@pytest.mark.e2e
def test_protonet_learns_5_way_1_shot_gaussian_classes():
    torch.set_num_threads(1)  # tiny ops: a second thread only adds contention
    torch.manual_seed(0)
    learner = ProtoNet(nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16)))
    before, after = train_on_gaussian_episodes(learner)
    # measured: 0.257 -> 0.914 (seeds 0-2 of the init: 0.912-0.914) in about 2 s; chance is 0.2
    assert before < 0.35
    assert after >= 0.85
