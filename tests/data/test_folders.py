from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metalearn.data import ImageFolderDataset, TaskSampler
from metalearn.errors import CorruptImageError, DataRootNotFoundError, DatasetError


def write_classes(root: Path, classes: dict[str, list[Image.Image]], suffix: str = ".png"):
    for name, images in classes.items():
        (root / name).mkdir(parents=True)
        for i, image in enumerate(images):
            image.save(root / name / f"{i:03d}{suffix}")


def grey(value: int, size=(6, 4)) -> Image.Image:
    return Image.new("L", size, value)


def test_classes_are_sorted_folders_and_images_are_resized_and_scaled(tmp_path):
    write_classes(tmp_path, {"b": [grey(51), grey(102, (30, 17))], "a": [grey(255)] * 3})
    (tmp_path / "notes.txt").write_text("ignored: a file beside the class folders")
    dataset = ImageFolderDataset(tmp_path, image_size=(5, 7))
    assert dataset.class_names == ["a", "b"]
    assert dataset.class_sizes.tolist() == [3, 2]
    assert dataset.example_shape == (1, 5, 7)
    out = dataset.gather(torch.tensor([1]), torch.tensor([[0, 1]]))
    torch.testing.assert_close(out[0, :, 0, 0, 0], torch.tensor([0.2, 0.4]))


def test_colour_modes_are_converted_to_the_asked_channels_and_invert_flips_values(tmp_path):
    write_classes(
        tmp_path,
        {
            "p": [Image.new("P", (3, 3), 0)],
            "rgb": [Image.new("RGB", (8, 8), (0, 0, 255))],
            "la": [Image.new("LA", (3, 3), (0, 255))],
        },
    )
    (tmp_path / "jpg").mkdir()
    Image.new("RGB", (9, 9), (255, 255, 255)).save(tmp_path / "jpg" / "x.JPG")
    dataset = ImageFolderDataset(tmp_path, image_size=4, channels=3, invert=True)
    assert dataset.example_shape == (3, 4, 4)
    out = dataset.gather(torch.arange(4), torch.zeros(4, 1, dtype=torch.long))[:, 0, :, 0, 0]
    names = dataset.class_names
    torch.testing.assert_close(out[names.index("rgb")], torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(out[names.index("la")], torch.ones(3))  # black, opaque
    torch.testing.assert_close(out[names.index("jpg")], torch.zeros(3), atol=0.02, rtol=0)


def test_a_folder_dataset_feeds_the_task_sampler(tmp_path):
    write_classes(tmp_path, {f"c{i}": [grey(10 * i)] * 4 for i in range(6)})
    batch = TaskSampler(ImageFolderDataset(tmp_path, 8), n_way=3, n_shot=1, n_query=2).sample_batch(
        2
    )
    assert batch.support_x.shape == (2, 3, 1, 8, 8)


def test_a_missing_root_raises_with_the_path(tmp_path):
    with pytest.raises(DataRootNotFoundError, match="nowhere"):
        ImageFolderDataset(tmp_path / "nowhere")


def test_a_root_without_class_folders_raises(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="holds no class folder"):
        ImageFolderDataset(tmp_path)


def test_an_empty_class_folder_is_named(tmp_path):
    write_classes(tmp_path, {"full": [grey(0)]})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match=r"empty' holds no image file"):
        ImageFolderDataset(tmp_path)


def test_an_unreadable_class_folder_is_named(tmp_path, monkeypatch):
    write_classes(tmp_path, {"ok": [grey(0)], "locked": [grey(0)]})
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self.name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    # Tests may run as root, which chmod cannot lock out; fail the listing instead.
    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(DatasetError, match=r"cannot read folder .*locked.*Permission denied"):
        ImageFolderDataset(tmp_path)


def test_a_corrupt_image_names_the_file(tmp_path):
    write_classes(tmp_path, {"a": [grey(0)]})
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(CorruptImageError, match=r"a/broken\.png"):
        ImageFolderDataset(tmp_path)


def test_images_are_stored_as_uint8(tmp_path):
    write_classes(tmp_path, {"a": [Image.fromarray(np.full((3, 3), 7, dtype=np.uint8))]})
    assert ImageFolderDataset(tmp_path, 3)._x.dtype == torch.uint8
