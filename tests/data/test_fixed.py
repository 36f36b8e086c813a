from pathlib import Path

import pytest
import torch
from PIL import Image

from metalearn.data import EpisodeFolder
from metalearn.errors import (
    CorruptImageError,
    DataRootNotFoundError,
    DatasetError,
    EpisodeSpecError,
)


def write_episode(
    root: Path, name: str, support: dict[str, list[int]], query: dict[str, list[int]]
):
    """Each image is a uniform grey page of the given value."""
    for part, classes in (("support", support), ("query", query)):
        for cls, values in classes.items():
            folder = root / name / part / cls
            folder.mkdir(parents=True)
            for i, value in enumerate(values):
                Image.new("L", (10, 10), value).save(folder / f"{i}.png")


def test_episodes_are_read_in_sorted_order_with_labels_shared_by_support_and_query(tmp_path):
    write_episode(
        tmp_path, "ep2", {"dog": [51], "cat": [102]}, {"cat": [153, 204], "dog": [255, 0]}
    )
    write_episode(tmp_path, "ep1", {"x": [0]}, {"x": [0]})
    benchmark = EpisodeFolder(tmp_path, image_size=4)
    assert len(benchmark) == 2
    assert benchmark.names == ["ep1", "ep2"]
    episodes = list(benchmark)
    assert episodes[0].n_way == 1
    ep = episodes[1]
    assert ep.n_way == 2
    assert ep.support_x.shape == (2, 1, 4, 4)
    # Sorted class names: cat -> 0, dog -> 1, in both sets.
    torch.testing.assert_close(ep.support_y, torch.tensor([0, 1]))
    torch.testing.assert_close(ep.support_x[:, 0, 0, 0], torch.tensor([0.4, 0.2]))
    torch.testing.assert_close(ep.query_y, torch.tensor([0, 0, 1, 1]))
    torch.testing.assert_close(ep.query_x[:, 0, 0, 0], torch.tensor([0.6, 0.8, 1.0, 0.0]))


def test_episodes_method_yields_the_first_n_in_order_and_batches(tmp_path):
    for i in range(3):
        write_episode(tmp_path, f"e{i}", {"a": [i], "b": [0]}, {"a": [0], "b": [0]})
    benchmark = EpisodeFolder(tmp_path, image_size=2)
    firsts = [e.support_x[0, 0, 0, 0].item() * 255 for e in benchmark.episodes(2)]
    assert [round(v) for v in firsts] == [0, 1]
    batches = list(benchmark.episodes(batch_size=2))
    assert [b.n_tasks for b in batches] == [2, 1]
    with pytest.raises(EpisodeSpecError, match="asked for 4 episodes"):
        list(benchmark.episodes(4))
    with pytest.raises(EpisodeSpecError, match="take no seed"):
        list(benchmark.episodes(2, seed=0))


def test_mismatched_support_and_query_classes_name_the_episode_and_classes(tmp_path):
    write_episode(tmp_path, "ep7", {"cat": [0], "dog": [0]}, {"cat": [0], "emu": [0]})
    with pytest.raises(
        DatasetError, match=r"ep7.*only in support: \['dog'\], only in query: \['emu'\]"
    ):
        EpisodeFolder(tmp_path)


def test_an_episode_without_a_query_folder_raises(tmp_path):
    write_episode(tmp_path, "ep", {"cat": [0]}, {})
    with pytest.raises(DatasetError, match="has no query/ folder"):
        EpisodeFolder(tmp_path)


def test_an_empty_class_folder_in_an_episode_raises(tmp_path):
    write_episode(tmp_path, "ep", {"cat": [0]}, {"cat": []})
    with pytest.raises(DatasetError, match=r"query/cat' holds no image file"):
        EpisodeFolder(tmp_path)


def test_a_corrupt_image_is_named_when_its_episode_is_read(tmp_path):
    write_episode(tmp_path, "ep", {"cat": [0]}, {"cat": [0]})
    (tmp_path / "ep" / "query" / "cat" / "0.png").write_bytes(b"garbage")
    benchmark = EpisodeFolder(tmp_path)
    with pytest.raises(CorruptImageError, match=r"query/cat/0\.png"):
        benchmark[0]


def test_a_missing_or_empty_root_raises(tmp_path):
    with pytest.raises(DataRootNotFoundError, match="episode folders"):
        EpisodeFolder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="holds no episode folder"):
        EpisodeFolder(tmp_path)
