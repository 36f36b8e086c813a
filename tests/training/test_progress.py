"""Progress bars from the Python API: on by default on a terminal, off when asked or under CI."""

from __future__ import annotations

import sys

from training_fixtures import GaussianTasks, TinyProtoNet

from metalearn.training import TrainConfig, meta_test, meta_train


def _on_a_terminal(monkeypatch):
    # called in the test body: sys.stderr is then capsys's stream
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.delenv("CI", raising=False)


def test_meta_train_and_meta_test_draw_bars_by_default_on_a_terminal(capsys, monkeypatch):
    _on_a_terminal(monkeypatch)
    learner = TinyProtoNet()
    meta_train(learner, GaussianTasks(), TrainConfig(steps=3, meta_batch_size=2))
    meta_test(learner, GaussianTasks(seed=3).episodes(5))
    err = capsys.readouterr().err
    assert "meta-train" in err
    assert "3/3" in err
    assert "meta-test" in err
    assert "5/5" in err


def test_progress_false_draws_nothing(capsys, monkeypatch):
    _on_a_terminal(monkeypatch)
    learner = TinyProtoNet()
    meta_train(learner, GaussianTasks(), TrainConfig(steps=3, meta_batch_size=2, progress=False))
    meta_test(learner, GaussianTasks(seed=3).episodes(5), progress=False)
    assert capsys.readouterr().err == ""


def test_no_bar_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    meta_test(TinyProtoNet(), GaussianTasks(seed=3).episodes(5))
    assert capsys.readouterr().err == ""
