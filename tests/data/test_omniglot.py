"""Omniglot from the real archives: counts, split sizes, disjointness, cache speed."""

import time

import pytest
import torch

from metalearn.data import TaskSampler, load_omniglot

pytestmark = [pytest.mark.data, pytest.mark.slow]


def characters(dataset) -> set[str]:
    """The characters behind the classes, without the rotation suffix."""
    return {name.split("/rot")[0] for name in dataset.class_names}


def test_the_first_decode_of_all_32460_drawings_is_reasonably_fast(omniglot_first_load):
    # Measured 12.4 s on the shared 2-core machine under load (about 5 s when idle):
    # ~160 us per PNG for zip read, decode, invert and Lanczos resize.
    assert omniglot_first_load < 90


def test_omniglot_holds_1623_characters_of_20_images(omniglot):
    background, evaluation = omniglot("lake", "train"), omniglot("lake", "test")
    assert background.n_classes == 964
    assert evaluation.n_classes == 659
    assert {name.split("/")[0] for name in background.class_names}.__len__() == 30
    assert {name.split("/")[0] for name in evaluation.class_names}.__len__() == 20
    sizes = torch.cat([background.class_sizes, evaluation.class_sizes])
    assert sizes.numel() == 1623
    assert (sizes == 20).all()


@pytest.mark.parametrize(
    ("split", "sizes"),
    [
        ("vinyals", {"train": 4112, "val": 688, "test": 1692, "trainval": 4800}),
        ("maml", {"train": 4400, "val": 400, "test": 1692, "trainval": 4800}),
        ("lake", {"train": 964, "test": 659, "trainval": 964}),
    ],
)
def test_split_sizes_and_disjoint_characters(omniglot, split, sizes):
    subsets = {subset: omniglot(split, subset) for subset in sizes}
    assert {s: d.n_classes for s, d in subsets.items()} == sizes
    chars = {s: characters(d) for s, d in subsets.items()}
    parts = [chars[s] for s in ("train", "val", "test") if s in chars]
    assert sum(map(len, parts)) == len(set().union(*parts))  # pairwise disjoint
    if "val" in chars:
        assert chars["trainval"] == chars["train"] | chars["val"]
    if split == "maml":
        assert [len(chars[s]) for s in ("train", "val", "test")] == [1100, 100, 423]


def test_images_are_28x28_floats_with_strokes_1_on_background_0(omniglot):
    dataset = omniglot("lake", "test")
    x = dataset.gather(torch.arange(659), torch.arange(20).expand(659, -1))
    assert x.shape == (659, 20, 1, 28, 28)
    assert x.dtype == torch.float32
    assert x.min() == 0
    assert x.max() == 1
    # Strokes cover a small part of the page (measured mean 0.088).
    assert 0.05 < x.mean() < 0.15
    # Every drawing has ink: the faintest peak measured is 0.76 here (0.63, a Braille dot,
    # in the background set).
    assert (x.flatten(2).amax(-1) > 0.5).all()


def test_vinyals_rotated_classes_are_rotations_of_the_same_drawings(omniglot):
    dataset = omniglot("vinyals", "test")
    names = dataset.class_names
    assert names[:2] == ["Gurmukhi/character42/rot000", "Gurmukhi/character42/rot090"]
    x = dataset.gather(torch.tensor([0, 1]), torch.tensor([[3], [3]]))[:, 0, 0]
    torch.testing.assert_close(x[1], torch.rot90(x[0], 1, (-2, -1)))


def test_a_cached_reload_takes_under_one_second(data_root, cache_dir, omniglot):
    start = time.perf_counter()
    dataset = load_omniglot(data_root, "vinyals", "trainval", cache_dir=cache_dir)
    elapsed = time.perf_counter() - start
    assert dataset.n_classes == 4800
    # Measured 0.05-0.2 s (torch.load of the 25 MB uint8 tensor, then the split file).
    assert elapsed < 1.0


def test_a_20_way_5_shot_sampler_runs_on_the_vinyals_test_classes(omniglot):
    sampler = TaskSampler(omniglot("vinyals", "test"), n_way=20, n_shot=5, n_query=15)
    batch = sampler.sample_batch(2)
    assert batch.support_x.shape == (2, 100, 1, 28, 28)
    assert batch.query_x.shape == (2, 300, 1, 28, 28)
