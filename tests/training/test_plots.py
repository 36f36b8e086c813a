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


def test_rl_curves_show_returns_before_and_after_adaptation_not_the_surrogate_loss(tmp_path):
    from metalearn.training.plots import _curves_figure

    rows = [
        {"step": 10, "split": "train", "loss": 1e-9, "return_pre": -60.0, "return_post": -45.0},
        {"step": 20, "split": "train", "loss": 2e-9, "return_pre": -50.0, "return_post": -30.0},
        {"step": 20, "split": "val", "return": -28.0, "return_pre": -52.0},
    ]
    fig = _curves_figure(rows, title="navigation-run (preset maml-rl-navigation)")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "average return"
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines == {
        "train, before adaptation": [-60.0, -50.0],
        "train, after adaptation": [-45.0, -30.0],
        "val, before adaptation": [-52.0],
        "val, after adaptation": [-28.0],
    }
    assert fig._suptitle.get_text() == "navigation-run (preset maml-rl-navigation)"


def test_long_titles_wrap_to_the_figure_width_instead_of_being_clipped():
    from metalearn.training.plots import _curves_figure

    title = "a-very-long-run-folder-name-" * 6 + " (preset protonet-omniglot-5w1s)"
    fig = _curves_figure([{"step": 1, "split": "train", "loss": 1.0, "accuracy": 0.5}], title)
    text = fig._suptitle.get_text()
    assert "".join(text.split()) == "".join(title.split())  # all of it, wrapped
    assert len(text.splitlines()) > 1
    assert max(map(len, text.splitlines())) <= 9 * 10  # two 5-inch panels, ~9 characters/inch


def test_episode_figure_names_classes_and_reports_the_accuracy():
    from metalearn.training.episode_plot import _episode_figure

    support_y, query_y = torch.tensor([0, 1]), torch.tensor([0, 1, 1, 0])
    episode = Episode(torch.rand(2, 1, 8, 8), support_y, torch.rand(4, 1, 8, 8), query_y, 2)
    predictions = torch.tensor([0, 1, 0, 1])  # half right
    fig = _episode_figure(episode, predictions, None, ["alpha", "beta"], "run (preset p)", None)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["alpha", "beta"]  # the support row
    assert sorted(titles[2:]) == ["alpha", "alpha", "beta", "beta"]  # predicted names
    text = fig._suptitle.get_text()  # wrapped to the narrow two-column figure
    assert text.splitlines()[0] == "run (preset p)"
    assert " ".join(text.split()) == (
        "run (preset p) 2-way episode, accuracy 50.0% (support above, queries below)"
    )
    with pytest.raises(ConfigError, match="1 class names for 2 classes"):
        _episode_figure(episode, predictions, None, ["alpha"], None, None)


def test_a_lone_training_point_is_drawn_with_a_marker():
    # a run shorter than log_every logs one training row: a line alone would not show it
    from metalearn.training.plots import _curves_figure

    rows = [{"step": 6, "split": "train", "loss": 0.4, "accuracy": 0.9}]
    lines = _curves_figure(rows, None).axes[0].get_lines()
    assert [line.get_marker() for line in lines] == ["o"]
    two = [*rows, {"step": 12, "split": "train", "loss": 0.3, "accuracy": 0.95}]
    assert [line.get_marker() for line in _curves_figure(two, None).axes[0].get_lines()] == ["None"]
