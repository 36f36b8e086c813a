import numpy as np
import pytest
import torch
from PIL import Image

from metalearn.data import ClassDataset, TensorClassDataset


def arrow_images():
    """Two 1x4x4 uint8 images with no rotational symmetry."""
    a = torch.zeros(4, 4, dtype=torch.uint8)
    a[0, :] = 255
    a[1:, 0] = 51
    b = a.flip(0)
    return torch.stack([a, b]).unsqueeze(1)


def test_tensor_class_dataset_is_a_class_dataset_with_per_class_counts():
    y = torch.tensor([2, 0, 2, 1, 2, 0])
    dataset = TensorClassDataset(torch.arange(6.0).unsqueeze(1), y, ["a", "b", "c"])
    assert isinstance(dataset, ClassDataset)
    assert dataset.n_classes == 3
    assert dataset.class_sizes.tolist() == [2, 1, 3]
    assert dataset.example_shape == (1,)
    assert dataset.class_name(2) == "c"
    assert len(dataset) == 6


def test_gather_returns_the_examples_of_a_class_in_their_original_order():
    y = torch.tensor([2, 0, 2, 1, 2, 0])
    dataset = TensorClassDataset(torch.arange(6.0).unsqueeze(1), y)
    out = dataset.gather(torch.tensor([2, 0]), torch.tensor([[2, 0, 1], [1, 0, 1]]))
    # class 2 holds rows 0, 2, 4 and class 0 rows 1, 5.
    expected = torch.tensor([[4.0, 0.0, 2.0], [5.0, 1.0, 5.0]]).unsqueeze(-1)
    torch.testing.assert_close(out, expected)


def test_gather_scales_uint8_to_float32_in_0_1():
    x = torch.tensor([[0, 51, 255]], dtype=torch.uint8)
    out = TensorClassDataset(x, torch.tensor([0])).gather(torch.tensor([0]), torch.tensor([[0]]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.2, 1.0]]]))


def test_gather_rejects_an_index_outside_its_class():
    dataset = TensorClassDataset(torch.zeros(3, 1), torch.tensor([0, 0, 1]))
    with pytest.raises(IndexError, match="outside its class"):
        dataset.gather(torch.tensor([1]), torch.tensor([[1]]))


def test_rotated_classes_match_pillow_counter_clockwise_rotation_and_share_storage():
    x = arrow_images()
    dataset = TensorClassDataset(x, torch.tensor([0, 1]), ["A/character01", "A/character02"])
    rotated = dataset.with_rotations()
    assert rotated.n_classes == 8
    assert rotated.class_name(5) == "A/character02/rot090"
    assert rotated._x is dataset._x  # no copy of the images
    for c in range(8):
        base, k = divmod(c, 4)
        expected = Image.fromarray(x[base, 0].numpy()).rotate(90 * k)
        out = rotated.gather(torch.tensor([c]), torch.tensor([[0]]))[0, 0, 0]
        torch.testing.assert_close(out, torch.from_numpy(np.asarray(expected) / 255).float())


def test_gather_rotates_each_class_of_a_batch_by_its_own_turn():
    x = arrow_images()
    rotated = TensorClassDataset(x, torch.tensor([0, 1])).select([0, 1, 0], [3, 2, 1])
    out = rotated.gather(torch.tensor([[2, 0], [1, 2]]), torch.zeros(2, 2, 1, dtype=torch.long))
    assert out.shape == (2, 2, 1, 1, 4, 4)
    turns = {0: (0, 3), 1: (1, 2), 2: (0, 1)}
    for (i, j), c in np.ndenumerate(np.array([[2, 0], [1, 2]])):
        base, k = turns[int(c)]
        torch.testing.assert_close(out[i, j, 0], torch.rot90(x[base], k, (-2, -1)).float() / 255)


def test_select_keeps_chosen_classes_and_adds_turns_to_existing_ones():
    x = arrow_images()
    dataset = TensorClassDataset(x, torch.tensor([0, 1]), ["a", "b"])
    twice = dataset.select([1], [1]).select([0], [2])
    assert twice.class_names == ["b/rot090/rot180"]
    out = twice.gather(torch.tensor([0]), torch.tensor([[0]]))[0, 0]
    torch.testing.assert_close(out, torch.rot90(x[1], 3, (-2, -1)).float() / 255)


def test_rotation_of_non_square_examples_raises():
    dataset = TensorClassDataset(torch.zeros(2, 1, 2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="rotation needs square images"):
        dataset.with_rotations()


@pytest.mark.parametrize(
    ("x", "y", "names", "match"),
    [
        (torch.zeros(3, 2), torch.tensor([0, 1]), None, "need x of shape"),
        (torch.zeros(2, 2), torch.tensor([0.0, 1.0]), None, "integer y"),
        (torch.zeros(2, 2), torch.tensor([0, 2]), None, r"no example of \[1\]"),
        (torch.zeros(2, 2), torch.tensor([-1, 0]), None, "labels must be >= 0"),
        (torch.zeros(2, 2), torch.tensor([0, 1]), ["a"], "got 1 class names for 2 classes"),
    ],
)
def test_inconsistent_inputs_raise(x, y, names, match):
    with pytest.raises(ValueError, match=match):
        TensorClassDataset(x, y, names)


def test_select_rejects_unknown_classes_and_bad_turns():
    dataset = TensorClassDataset(arrow_images(), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 2\)"):
        dataset.select([2])
    with pytest.raises(ValueError, match=r"quarter_turn in 0\.\.3"):
        dataset.select([0], [4])
    with pytest.raises(ValueError, match=r"quarter_turn in 0\.\.3"):
        dataset.select([0, 1], [1])
