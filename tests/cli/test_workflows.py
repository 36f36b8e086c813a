"""``metalearn.workflows`` from Python: what ``metalearn train`` runs, without its printing."""

import json
from pathlib import Path

from metalearn.cli.overrides import apply_overrides
from metalearn.presets import get_preset
from metalearn.workflows import best_checkpoint, evaluate_learner, load_learner, train_and_test


def test_train_and_test_takes_a_str_folder_and_reports_the_result_before_writing_it():
    config = apply_overrides(
        get_preset("maml-sinusoid"),
        [
            "train.steps=4",
            "train.meta_batch_size=4",
            "train.log_every=2",
            "train.eval_every=2",
            "train.progress=false",
            "eval.episodes=10",
            "eval.val_episodes=5",
        ],
    )
    reported = []

    def report(label, result):
        reported.append((label, result.mean, Path("run", "test.json").exists()))

    result = train_and_test(config, "run", report=report)
    assert reported == [("test mse", result.mean, False)]
    assert json.loads(Path("run", "test.json").read_text())["mean"] == result.mean
    learner = load_learner(config, best_checkpoint(Path("run")))
    assert evaluate_learner(config, learner, "test", 10).mean == result.mean
