"""Validation never shares an episode with test, for every task family (issue 11, item 1).

Validation chooses ``best.pt``; a validation episode that is also a test episode lets the test
data choose the model that is then tested on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from metalearn.build import build_tasks
from metalearn.cli.overrides import apply_overrides
from metalearn.config import RunConfig
from metalearn.data import SinusoidTasks
from metalearn.errors import DatasetError
from metalearn.presets import get_preset


def sinusoid_parameters(tasks, n: int) -> torch.Tensor:
    """``(n, 2)`` amplitude and phase of the first ``n`` fixed episodes, fitted exactly.

    ``y = A sin(x - p) = a sin x + b cos x`` with ``a = A cos p`` and ``b = -A sin p``.
    """
    params = []
    for episode in tasks.episodes(n):
        x = torch.cat([episode.support_x, episode.query_x]).double()
        y = torch.cat([episode.support_y, episode.query_y]).double()
        design = torch.cat([torch.sin(x), torch.cos(x)], dim=-1)
        a, b = torch.linalg.lstsq(design, y).solution.squeeze(-1)
        params.append(torch.stack([torch.hypot(a, b), torch.atan2(-b, a)]))
    return torch.stack(params)


@pytest.mark.parametrize("preset", ["maml-sinusoid", "meta-sgd-sinusoid"])
@pytest.mark.parametrize("k", [5, 10, 20])
def test_sinusoid_validation_tasks_are_not_test_tasks(preset, k):
    config = apply_overrides(get_preset(preset), [f"data.n_shot={k}", f"data.n_query={k}"])
    val = sinusoid_parameters(build_tasks(config, "val"), config.eval.val_episodes)
    test = sinusoid_parameters(build_tasks(config, "test"), config.eval.episodes)
    assert val.shape == (100, 2)
    assert test.shape == (600, 2)
    assert val[:, 0].min() > 0.1 - 1e-6  # the fits are the tasks' amplitudes
    assert val[:, 0].max() < 5.0 + 1e-6
    # The closest test task to any validation task differs by more than fitting noise.
    gap = (val[:, None, :] - test[None, :, :]).abs().amax(-1).amin(-1)
    assert gap.min() > 1e-4


def test_the_sinusoid_test_and_training_streams_are_unchanged():
    # The test episodes (and so the test rows of BENCHMARKS.md) and the training stream stay
    # those of SinusoidTasks seeded with eval.seed and data.seed.
    config = get_preset("maml-sinusoid")
    shot, query = config.data.n_shot, config.data.n_query
    test, expected = build_tasks(config, "test"), SinusoidTasks(shot, query, seed=1234)
    for got, want in zip(test.episodes(3), expected.episodes(3), strict=True):
        assert torch.equal(got.support_y, want.support_y)
    train = build_tasks(config, "train").sample_batch(2)
    assert torch.equal(train.query_y, SinusoidTasks(shot, query, seed=0).sample_batch(2).query_y)


@pytest.mark.parametrize("preset", ["maml-rl-navigation", "maml-rl-cheetah-vel"])
def test_rl_validation_tasks_are_not_test_tasks(preset):
    pytest.importorskip("gymnasium")
    if "cheetah" in preset:
        pytest.importorskip("mujoco")
    config = get_preset(preset)
    val = build_tasks(config, "val").sample_batch(config.eval.val_episodes)
    test = build_tasks(config, "test").sample_batch(config.eval.episodes)
    assert len({repr(t) for t in val}) == len(val)  # continuous targets: all distinct
    assert not {repr(t) for t in val} & {repr(t) for t in test}
    # HalfCheetahDir has two tasks (forward, backward): validation and test must share them.


def write_split(root: Path, classes: dict[str, int]) -> None:
    """One 4x4 grey PNG per class, of the value given."""
    for name, value in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (4, 4), (value + 7 * i) % 256).save(root / name / f"{i}.png")


def folder_config(root: Path) -> RunConfig:
    overrides = [f"data.root={root}", "data.dataset=folder", "data.image_size=4"]
    overrides += ["data.n_way=2", "data.n_query=2", "eval.n_way=2", "eval.n_query=2"]
    return apply_overrides(get_preset("protonet-omniglot-5w1s"), overrides)


def test_folder_validation_and_test_classes_must_differ(tmp_path):
    write_split(tmp_path / "train", {"t0": 0, "t1": 40, "t2": 80})
    write_split(tmp_path / "val", {"a": 100, "b": 120, "shared": 140})
    write_split(tmp_path / "test", {"c": 160, "d": 180, "shared": 200})
    config = folder_config(tmp_path)
    build_tasks(config, "train")  # training does not look at val/ or test/
    for subset in ("val", "test"):
        with pytest.raises(DatasetError, match=r"share 1 class folder.*'shared'"):
            build_tasks(config, subset)  # type: ignore[arg-type]


def test_folder_validation_and_test_episodes_share_no_image(tmp_path):
    write_split(tmp_path / "train", {"t0": 0, "t1": 40})
    write_split(tmp_path / "val", {"a": 100, "b": 120, "c": 1})
    write_split(tmp_path / "test", {"d": 160, "e": 180, "f": 3})
    config = folder_config(tmp_path)

    def images(subset: str, n: int) -> set[float]:
        tasks = build_tasks(config, subset)  # type: ignore[arg-type]
        return {float(x) for e in tasks.episodes(n) for x in e.support_x[:, 0, 0, 0]}

    assert not images("val", 20) & images("test", 50)


def image_digests(config: RunConfig, subset: str, n: int) -> set[str]:
    tasks = build_tasks(config, subset)  # type: ignore[arg-type]
    return {
        hashlib.sha1(image.numpy().tobytes()).hexdigest()
        for episode in tasks.episodes(n)
        for image in torch.cat([episode.support_x, episode.query_x])
    }


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("split", ["vinyals", "maml"])
def test_omniglot_validation_and_test_episodes_share_no_image(split, data_root, cache_dir):
    config = apply_overrides(
        get_preset("maml-omniglot-5w1s"),
        [f"data.root={data_root}", f"data.cache_dir={cache_dir}", f"data.split={split}"],
    )
    val = image_digests(config, "val", config.eval.val_episodes)
    assert len(val) > 500  # distinct drawings, so a shared one would show
    assert not val & image_digests(config, "test", 100)
