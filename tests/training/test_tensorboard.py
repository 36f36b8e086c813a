"""TrainConfig(tensorboard=True): the metric rows also land in TensorBoard event files."""

from __future__ import annotations

import sys

import pytest
from training_fixtures import GaussianTasks, TinyProtoNet

from metalearn.errors import ConfigError
from metalearn.training import METRICS_FILE, TrainConfig, meta_test, meta_train, read_metrics


def test_train_and_val_rows_are_written_as_scalars_and_read_back(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    learner, val = TinyProtoNet(), GaussianTasks(seed=9).episodes(4)
    cfg = TrainConfig(
        steps=6, meta_batch_size=2, eval_every=3, log_every=2, progress=False, tensorboard=True
    )
    meta_train(
        learner,
        GaussianTasks(),
        cfg,
        run_dir=tmp_path,
        validate=lambda: {"accuracy": meta_test(learner, val).mean},
    )

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    rows = read_metrics(tmp_path / METRICS_FILE)
    for split, metric in [("train", "loss"), ("train", "accuracy"), ("val", "accuracy")]:
        expected = [(r["step"], r[metric]) for r in rows if r["split"] == split]
        got = [(e.step, e.value) for e in events.Scalars(f"{split}/{metric}")]
        assert [step for step, _ in got] == [step for step, _ in expected]
        assert [value for _, value in got] == pytest.approx([v for _, v in expected], rel=1e-6)
    assert [s for s, _ in expected] == [3, 6]  # the val rows
    assert "train/step" not in events.Tags()["scalars"]


def test_tensorboard_without_the_package_is_a_config_error_that_writes_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    cfg = TrainConfig(steps=2, meta_batch_size=2, progress=False, tensorboard=True)
    with pytest.raises(ConfigError, match=r"pip install 'metalearn\[tensorboard\]'"):
        meta_train(TinyProtoNet(), GaussianTasks(), cfg, run_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_needs_a_run_dir():
    cfg = TrainConfig(steps=2, meta_batch_size=2, progress=False, tensorboard=True)
    with pytest.raises(ConfigError, match="needs a run_dir"):
        meta_train(TinyProtoNet(), GaussianTasks(), cfg)
