"""Omniglot loading on tiny synthetic archives: the real code paths, in milliseconds."""

import logging
import os
import zipfile

import pytest
import torch

import metalearn.data.omniglot_archive as omniglot_archive
from metalearn.data import find_omniglot, load_omniglot
from metalearn.errors import ConfigError, CorruptImageError, DataRootNotFoundError, DatasetError


def test_lake_split_reads_background_for_train_and_evaluation_for_test(tiny_omniglot, tmp_path):
    root = tiny_omniglot()
    train = load_omniglot(root, "lake", "train", cache_dir=tmp_path / "cache")
    test = load_omniglot(root, "lake", "test", cache_dir=tmp_path / "cache")
    assert train.class_names == [
        "background0/character01",
        "background0/character02",
        "background1/character01",
        "background1/character02",
    ]
    assert test.class_names == ["evaluation0/character01", "evaluation0/character02"]
    assert train.class_sizes.tolist() == [3, 3, 3, 3]
    assert (
        load_omniglot(root, "lake", "trainval", cache_dir=tmp_path / "cache").class_names
        == train.class_names
    )


def test_images_are_28x28_with_strokes_1_on_background_0(tiny_omniglot, tmp_path):
    root = tiny_omniglot()
    dataset = load_omniglot(root, "lake", "train", cache_dir=tmp_path / "cache")
    image = dataset.gather(torch.tensor([1]), torch.tensor([[0]]))[0, 0, 0]
    assert image.shape == (28, 28)
    # character02 is black on rows 20-49 of 105, i.e. 5.3-13.3 of 28. The Lanczos-3 kernel
    # reaches 3 output rows (11.25 source rows) out: row 9 is all ink, rows 0-2 and 17- none.
    torch.testing.assert_close(image[9], torch.ones(28))
    torch.testing.assert_close(image[:3], torch.zeros(3, 28))
    torch.testing.assert_close(image[17:], torch.zeros(11, 28))
    assert image.min() >= 0
    assert image.max() <= 1


def test_image_size_sets_the_side(tiny_omniglot, tmp_path):
    dataset = load_omniglot(tiny_omniglot(), "lake", "test", image_size=14, cache=False)
    assert dataset.example_shape == (1, 14, 14)


def test_a_second_load_reads_the_cache_without_decoding(tiny_omniglot, tmp_path, monkeypatch):
    root = tiny_omniglot()
    first = load_omniglot(root, "lake", "train", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("omniglot-28px-*.pt"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(omniglot_archive, "_read_archive", no_decoding)
    again = load_omniglot(root, "lake", "train", cache_dir=tmp_path / "cache")
    torch.testing.assert_close(again._x, first._x, rtol=0, atol=0)


def test_a_changed_archive_invalidates_the_cache(tiny_omniglot, tmp_path):
    root = tiny_omniglot()
    load_omniglot(root, "lake", "train", cache_dir=tmp_path / "cache")
    archive = root / "omniglot" / "images_evaluation.zip"
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_omniglot(root, "lake", "train", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


def test_the_cache_dir_defaults_to_metalearn_cache(tiny_omniglot, tmp_path, monkeypatch):
    monkeypatch.setenv("METALEARN_CACHE", str(tmp_path / "env-cache"))
    load_omniglot(tiny_omniglot(), "lake", "test")
    assert len(list((tmp_path / "env-cache").glob("*.pt"))) == 1


def test_an_unwritable_cache_only_logs_a_warning(tiny_omniglot, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        dataset = load_omniglot(tiny_omniglot(), "lake", "test", cache_dir=blocker / "cache")
    assert dataset.n_classes == 2
    assert "cannot write the Omniglot cache" in caplog.text


def test_a_damaged_cache_is_rebuilt(tiny_omniglot, tmp_path, caplog):
    root = tiny_omniglot()
    load_omniglot(root, "lake", "test", cache_dir=tmp_path / "cache")
    (cached,) = (tmp_path / "cache").glob("*.pt")
    cached.write_bytes(b"half a file")
    with caplog.at_level(logging.WARNING):
        dataset = load_omniglot(root, "lake", "test", cache_dir=tmp_path / "cache")
    assert dataset.n_classes == 2
    assert "ignoring unreadable cache" in caplog.text
    assert torch.load(cached, weights_only=True)["names"][-1] == "evaluation0/character02"


def test_the_data_root_is_only_read(tiny_omniglot, tmp_path):
    root = tiny_omniglot()
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    load_omniglot(root, "lake", "train", cache_dir=tmp_path / "cache")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_a_missing_root_lists_the_paths_tried_the_layout_and_the_download_urls(tmp_path):
    with pytest.raises(DataRootNotFoundError) as info:
        load_omniglot(tmp_path / "data", "lake", "train")
    message = str(info.value)
    assert f"{tmp_path}/data/omniglot/images_background.zip (missing)" in message
    assert f"{tmp_path}/data/images_evaluation.zip (missing)" in message
    assert "<root>/omniglot/images_background.zip" in message
    assert (
        "https://github.com/brendenlake/omniglot/raw/master/python/images_evaluation.zip" in message
    )


def test_one_missing_archive_is_reported_beside_the_found_one(tiny_omniglot):
    root = tiny_omniglot()
    (root / "omniglot" / "images_evaluation.zip").unlink()
    with pytest.raises(DataRootNotFoundError, match=r"images_background\.zip \(found\)"):
        find_omniglot(root)


def test_the_root_may_be_the_omniglot_folder_or_come_from_metalearn_data(
    tiny_omniglot, monkeypatch
):
    root = tiny_omniglot()
    assert find_omniglot(root / "omniglot") == root / "omniglot"
    monkeypatch.setenv("METALEARN_DATA", str(root))
    assert find_omniglot() == root / "omniglot"
    monkeypatch.delenv("METALEARN_DATA")
    with pytest.raises(DataRootNotFoundError, match="METALEARN_DATA is not set"):
        find_omniglot()


def test_a_truncated_archive_is_named(tiny_omniglot, tmp_path):
    root = tiny_omniglot()
    archive = root / "omniglot" / "images_background.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"images_background\.zip' is truncated or corrupt"):
        load_omniglot(root, "lake", "train", cache=False)


def test_a_member_with_a_bad_checksum_is_reported_as_corrupt_archive(tiny_omniglot):
    root = tiny_omniglot()
    archive = root / "omniglot" / "images_evaluation.zip"
    with zipfile.ZipFile(archive) as z:
        info = z.infolist()[0]
    data = bytearray(archive.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF  # a byte inside the PNG
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"images_evaluation\.zip' is truncated or corrupt"):
        load_omniglot(root, "lake", "test", cache=False)


def test_wrong_character_counts_are_reported_with_the_expected_ones(tiny_omniglot):
    root = tiny_omniglot(characters=1)
    with pytest.raises(DatasetError, match=r"holds 2 alphabets and 2 characters .* holds 2 and 4"):
        load_omniglot(root, "lake", "train", cache=False)


def test_a_character_with_missing_images_is_named(tiny_omniglot):
    root = tiny_omniglot(images=2)
    with pytest.raises(DatasetError, match=r"character 'background0/character01' .* has 2 images"):
        load_omniglot(root, "lake", "train", cache=False)


def test_a_corrupt_png_names_the_archive_member(tiny_omniglot):
    member = "images_background/background1/character02/0002_03.png"
    root = tiny_omniglot(corrupt=member)
    with pytest.raises(CorruptImageError, match=rf"images_background\.zip:{member}"):
        load_omniglot(root, "lake", "train", cache=False)


def test_vinyals_split_files_make_rotated_classes(tiny_omniglot, tmp_path):
    root = tiny_omniglot()
    splits = root / "omniglot" / "splits" / "vinyals"
    splits.mkdir(parents=True)
    (splits / "val.txt").write_text(
        "evaluation0/character02/rot000\nevaluation0/character02/rot270\n"
    )
    dataset = load_omniglot(root, "vinyals", "val", cache_dir=tmp_path / "cache")
    assert dataset.class_names == [
        "evaluation0/character02/rot000",
        "evaluation0/character02/rot270",
    ]
    x = dataset.gather(torch.tensor([0, 1]), torch.tensor([[0], [0]]))[:, 0]
    torch.testing.assert_close(x[1], torch.rot90(x[0], 3, (-2, -1)))


def test_a_bad_vinyals_line_is_named_with_its_file_and_line(tiny_omniglot, tmp_path):
    root = tiny_omniglot()
    splits = root / "omniglot" / "splits" / "vinyals"
    splits.mkdir(parents=True)
    (splits / "test.txt").write_text("evaluation0/character01/rot000\nNope/character01/rot000\n")
    with pytest.raises(DatasetError, match=r"test\.txt:2: 'Nope/character01/rot000'"):
        load_omniglot(root, "vinyals", "test", cache_dir=tmp_path / "cache")


def test_a_missing_vinyals_split_file_says_where_to_get_it(tiny_omniglot, tmp_path):
    with pytest.raises(DataRootNotFoundError, match=r"train\.txt' not found; download"):
        load_omniglot(tiny_omniglot(), "vinyals", "train", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("split", "subset", "match"),
    [
        ("lake", "val", "'lake' split has no validation set"),
        ("omniglot", "train", "unknown Omniglot split 'omniglot'"),
        ("vinyals", "dev", "unknown Omniglot subset 'dev'"),
    ],
)
def test_bad_split_or_subset_names_raise_config_errors(split, subset, match):
    with pytest.raises(ConfigError, match=match):
        load_omniglot("/nonexistent", split, subset)
