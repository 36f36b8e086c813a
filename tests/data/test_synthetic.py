import pytest
import torch

from metalearn.data import gaussian_clusters
from metalearn.errors import EpisodeSpecError


def test_gaussian_clusters_have_the_asked_sizes_and_names():
    dataset = gaussian_clusters(7, 5, 3)
    assert dataset.n_classes == 7
    assert dataset.class_sizes.tolist() == [5] * 7
    assert dataset.example_shape == (3,)
    assert dataset.class_name(6) == "cluster6"


def test_gaussian_clusters_are_reproducible_from_the_seed():
    a, b, c = (gaussian_clusters(4, 3, 2, seed=s)._x for s in (1, 1, 2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_points_spread_around_their_centre_with_the_noise_scale():
    dataset = gaussian_clusters(3, 4000, 2, noise=0.25)
    x = dataset.gather(torch.arange(3), torch.arange(4000).expand(3, -1))  # (3, 4000, 2)
    # 4000 samples: the standard deviation estimate is within a few percent of 0.25.
    torch.testing.assert_close(x.std(dim=1), torch.full((3, 2), 0.25), atol=0.02, rtol=0)


def test_zero_noise_puts_every_point_of_a_class_on_its_centre():
    dataset = gaussian_clusters(2, 5, 3, noise=0.0)
    x = dataset.gather(torch.arange(2), torch.arange(5).expand(2, -1))
    torch.testing.assert_close(x, x[:, :1].expand_as(x))


def test_bad_sizes_and_noise_raise():
    with pytest.raises(EpisodeSpecError, match="n_classes must be an int >= 1, got 0"):
        gaussian_clusters(0, 5, 2)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        gaussian_clusters(2, 5, 2, noise=-1.0)
