import pytest
import torch
from torch import nn
from torch.func import vmap
from torch.testing import assert_close

from metalearn.nn.functional import (
    class_means,
    cosine_similarity,
    embed,
    pairwise_l1,
    per_class_max,
    squared_euclidean,
)

EMBEDDINGS = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_class_means_average_each_class_on_the_hand_example():
    assert_close(class_means(EMBEDDINGS, LABELS, 2), torch.tensor([[1.0, 0.0], [0.0, 3.0]]))


def test_class_means_do_not_depend_on_the_order_of_examples():
    order = torch.tensor([3, 0, 2, 1])
    assert_close(
        class_means(EMBEDDINGS[order], LABELS[order], 2), class_means(EMBEDDINGS, LABELS, 2)
    )


def test_class_means_with_a_leading_task_dim_and_under_vmap_equal_the_per_task_result():
    embeddings, labels = torch.randn(3, 6, 4), torch.randint(0, 3, (3, 6))
    labels[:, :3] = torch.arange(3)  # every class present
    expected = torch.stack([class_means(e, y, 3) for e, y in zip(embeddings, labels, strict=True)])
    assert_close(class_means(embeddings, labels, 3), expected)
    assert_close(vmap(class_means, in_dims=(0, 0, None))(embeddings, labels, 3), expected)


def test_squared_euclidean_on_the_hand_example():
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert_close(
        squared_euclidean(torch.tensor([[1.0, 1.0]]), prototypes), torch.tensor([[1.0, 5.0]])
    )


def test_squared_euclidean_matches_cdist_and_is_exactly_zero_for_identical_points():
    a, b = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    assert_close(squared_euclidean(a, b), torch.cdist(a, b).pow(2))
    far = torch.full((1, 3), 1e4) + torch.randn(1, 3)
    assert torch.equal(squared_euclidean(far, far), torch.zeros(1, 1))


def test_cosine_similarity_on_known_angles():
    a = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    r = 2**-0.5
    expected = torch.tensor([[1.0, r, -1.0], [0.0, r, 0.0]])
    assert_close(cosine_similarity(a, b), expected)


def test_cosine_similarity_of_a_zero_vector_is_zero_not_nan():
    assert_close(cosine_similarity(torch.zeros(1, 2), torch.ones(2, 2)), torch.zeros(1, 2))


def test_pairwise_l1_plain_and_weighted_on_a_hand_example():
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[1.0, -2.0]])
    assert_close(pairwise_l1(a, b), torch.tensor([[3.0], [3.0]]))
    # |diff| = [1, 2] and [0, 3]; weights [2, -1]
    assert_close(pairwise_l1(a, b, torch.tensor([2.0, -1.0])), torch.tensor([[0.0], [-3.0]]))


def test_per_class_max_picks_the_best_support_example_of_each_class():
    scores = torch.tensor([[0.1, 0.9, 0.5, -2.0], [3.0, 0.0, 1.0, 2.0]])
    labels = torch.tensor([0, 1, 0, 1])
    assert_close(per_class_max(scores, labels, 2), torch.tensor([[0.5, 0.9], [3.0, 2.0]]))


def test_per_class_max_under_vmap_equals_the_per_task_result():
    scores, labels = torch.randn(3, 4, 6), torch.randint(0, 2, (3, 6))
    expected = torch.stack([per_class_max(s, y, 2) for s, y in zip(scores, labels, strict=True)])
    assert_close(vmap(per_class_max, in_dims=(0, 0, None))(scores, labels, 2), expected)


def test_embed_flattens_features_and_keeps_batch_statistics_per_set():
    # BatchNorm with batch statistics: a reshape to one big batch would mix the sets' statistics
    encoder = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3, track_running_stats=False)
    ).double()
    x = torch.randn(2, 4, 1, 5, 5, dtype=torch.float64)
    batched = embed(encoder, x, batch_dims=1)
    assert batched.shape == (2, 4, 75)
    assert_close(batched, torch.stack([embed(encoder, t) for t in x]))
    mixed = encoder(x.flatten(0, 1)).flatten(1).unflatten(0, (2, 4))
    assert not torch.allclose(batched, mixed)


@pytest.mark.parametrize("batch_dims", [0, 1, 2])
def test_embed_maps_leading_set_dims(batch_dims):
    encoder = nn.Linear(3, 2)
    x = torch.randn(*(2,) * batch_dims, 5, 3)
    assert_close(embed(encoder, x, batch_dims), encoder(x))
