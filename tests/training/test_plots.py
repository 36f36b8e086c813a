from __future__ import annotations

import sys

import pytest
import torch
from training_fixtures import GaussianTasks, TinyMAML, TinyProtoNet

from metalearn.episode import Episode
from metalearn.errors import ConfigError
from metalearn.training import (
    METRICS_FILE,
    TrainConfig,
    meta_test,
    meta_train,
    plot_curves,
    plot_episode,
    plot_steps,
)
from metalearn.utils.stats import MeanCI

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000


def test_plot_curves_writes_a_png_of_train_and_val_curves(tmp_path):
    learner, tasks, val = TinyProtoNet(), GaussianTasks(), GaussianTasks(seed=9).episodes(4)
    cfg = TrainConfig(steps=4, meta_batch_size=2, eval_every=2, log_every=1, progress=False)
    meta_train(
        learner,
        tasks,
        cfg,
        run_dir=tmp_path,
        validate=lambda: {"accuracy": meta_test(learner, val).mean},
    )
    out = plot_curves(tmp_path / METRICS_FILE, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    _assert_png(out)


def test_plot_curves_of_an_empty_file_raises_config_error(tmp_path):
    (tmp_path / METRICS_FILE).write_text("")
    with pytest.raises(ConfigError, match="no metric rows"):
        plot_curves(tmp_path / METRICS_FILE, tmp_path / "curves.png")


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_plot_episode_writes_a_png_grid_with_predictions(tmp_path, channels):
    shape = (8, 8) if channels is None else (channels, 8, 8)
    support_y, query_y = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 1, 0, 0])
    episode = Episode(torch.rand(6, *shape), support_y, torch.rand(4, *shape), query_y, 3)
    probabilities = torch.softmax(torch.randn(4, 3), -1)
    _assert_png(plot_episode(episode, tmp_path / "episode.png", probabilities=probabilities))
    _assert_png(plot_episode(episode, tmp_path / "plain.png"))


def test_plot_episode_rejects_non_images_and_batches(tmp_path):
    batch = GaussianTasks().sample_batch(2)
    with pytest.raises(ConfigError, match="stacked batch"):
        plot_episode(batch, tmp_path / "x.png")
    with pytest.raises(ConfigError, match=r"needs images .* got \(4,\)"):
        plot_episode(batch.unbind()[0], tmp_path / "x.png")


def test_plot_steps_writes_a_png_for_a_sweep_and_for_labelled_curves(tmp_path):
    sweep = meta_test(TinyMAML(), GaussianTasks().episodes(4), inner_steps=[0, 1, 2])
    _assert_png(plot_steps(sweep, tmp_path / "sweep.png"))
    returns = {
        "MAML": {0: MeanCI(-40.0, 3.0, 40), 1: MeanCI(-12.0, 1.0, 40)},
        "pretrained": {0: MeanCI(-38.0, 3.0, 40), 1: MeanCI(-30.0, 2.0, 40)},
        "sweep": sweep,
    }
    _assert_png(plot_steps(returns, tmp_path / "rl.png", ylabel="return", title="2D navigation"))


def test_plotting_without_matplotlib_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'metalearn\[plot\]'"):
        plot_steps({0: MeanCI(0.5, 0.1, 10)}, tmp_path / "x.png")
