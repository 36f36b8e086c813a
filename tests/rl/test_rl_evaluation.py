"""Evaluation: returns after 0..k adaptation steps, the Markdown table and the PNG plot."""

import torch
from torch.testing import assert_close

from metalearn.rl import GaussianMLPPolicy, TaskDistribution, TrajectorySampler
from metalearn.rl.evaluation import (
    adaptation_returns,
    format_adaptation_table,
    write_adaptation_report,
)
from metalearn.rl.learner import MetaRLLearner

ENV_ID = "metalearn/Navigation2D-v0"


def _learner(**kwargs):
    sampler = TrajectorySampler(ENV_ID, 3, env_kwargs={"max_episode_steps": 15})
    return MetaRLLearner(GaussianMLPPolicy(2, 2, (8,), **kwargs), sampler)


def test_adaptation_returns_has_one_column_per_step_and_one_row_per_task():
    tasks = TaskDistribution(ENV_ID, seed=0).sample_batch(4)
    returns = adaptation_returns(_learner(), tasks, n_steps=3)
    assert returns.shape == (4, 4)
    assert (returns < 0).all()


def test_a_zero_step_size_leaves_a_deterministic_policy_s_return_unchanged():
    tasks = TaskDistribution(ENV_ID, seed=0).sample_batch(2)
    returns = adaptation_returns(_learner(init_log_std=-30.0), tasks, n_steps=2, inner_lr=0.0)
    assert_close(returns[:, 1], returns[:, 0])
    assert_close(returns[:, 2], returns[:, 0])


def test_table_reports_mean_and_95_ci_over_tasks_per_method():
    results = {
        "MAML": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "random": torch.tensor([[0.0], [0.0]]),
    }
    # mean 2, half-width 1.96 * std([1, 3]) / sqrt(2) = 1.96
    assert format_adaptation_table(results).splitlines() == [
        "| method | 0 steps | 1 step |",
        "| --- | ---: | ---: |",
        "| MAML | 2.00 ± 1.96 | 3.00 ± 1.96 |",
        "| random | 0.00 ± 0.00 |",
    ]


def test_report_writes_the_table_and_a_png(tmp_path):
    results = {"MAML": torch.tensor([[-5.0, -3.0], [-6.0, -2.0]])}
    write_adaptation_report(results, tmp_path, title="navigation")
    assert (tmp_path / "adaptation.md").read_text().startswith("| method |")
    assert (tmp_path / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
