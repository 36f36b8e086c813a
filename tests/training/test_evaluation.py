from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from training_fixtures import GaussianTasks, TinyMAML, TinyProtoNet

from metalearn.algorithms.base import Learner
from metalearn.episode import Episode
from metalearn.errors import ConfigError
from metalearn.training import EvalResult, meta_test


class _AlwaysZero(Learner[None]):
    """Predicts class 0 for every query (or 0.0 for regression), recording how it is called."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.calls = []

    def adapt(self, support_x, support_y, n_way):
        self.calls.append((self.training, torch.is_grad_enabled()))

    def predict(self, state, query_x):
        n = query_x.shape[0]
        return torch.zeros(n, 3) + torch.tensor([1.0, 0.0, 0.0]) + self.bias


def _classification(query_y):
    n = len(query_y)
    return Episode(torch.zeros(3, 2), torch.arange(3), torch.zeros(n, 2), torch.tensor(query_y), 3)


def test_meta_test_mean_and_ci_match_hand_values():
    # accuracies 1/4, 2/4, 3/4: mean 0.5, s = 0.25, ci95 = 1.96 * 0.25 / sqrt(3) = 0.28290
    episodes = [_classification(y) for y in ([0, 1, 2, 1], [0, 0, 2, 1], [0, 0, 0, 2])]
    result = meta_test(_AlwaysZero(), episodes)
    assert result.metric == "accuracy"
    torch.testing.assert_close(result.values, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    assert result.mean == pytest.approx(0.5)
    assert result.ci95 == pytest.approx(1.96 * 0.25 / math.sqrt(3))
    assert result.n == 3
    assert str(result) == "accuracy 0.5000 +- 0.2829 (95% CI, n=3)"


class _PredictsZeroTargets(_AlwaysZero):
    def predict(self, state, query_x):
        return torch.zeros(query_x.shape[0], 1) + self.bias


def test_meta_test_reports_mse_for_regression_episodes():
    # targets all 1 -> MSE 1; all 2 -> MSE 4: mean 2.5, s = 3 / sqrt(2), ci95 = 1.96 * 1.5
    episodes = [
        Episode(torch.zeros(5, 1), torch.zeros(5, 1), torch.zeros(4, 1), torch.full((4, 1), c))
        for c in (1.0, 2.0)
    ]
    for batch_size in (1, 2):
        result = meta_test(_PredictsZeroTargets(), episodes, batch_size=batch_size)
        assert result.metric == "mse"
        assert result.mean == pytest.approx(2.5)
        assert result.ci95 == pytest.approx(1.96 * 1.5)


def test_meta_test_runs_in_eval_mode_without_grad_and_restores_the_mode():
    learner = _AlwaysZero()
    learner.train()
    meta_test(learner, [_classification([0, 1, 2])])
    assert learner.calls == [(False, False)]
    assert learner.training
    learner.eval()
    meta_test(learner, [_classification([0, 1, 2])])
    assert not learner.training


@pytest.mark.parametrize(
    ("learner_cls", "batched"), [(TinyProtoNet, True), (TinyMAML, True), (TinyMAML, False)]
)
def test_batched_meta_test_equals_one_by_one(learner_cls, batched):
    learner = learner_cls()
    learner.batched = batched  # vmap (torch.func.grad inside, under no_grad) or the loop
    # 10 episodes of one shape, then 3 of another: groups of 4, 4, 2 and 3
    episodes = GaussianTasks(seed=3).episodes(10) + GaussianTasks(seed=4, n_query=6).episodes(3)
    one_by_one = meta_test(learner, episodes, batch_size=1)
    batched = meta_test(learner, episodes, batch_size=4)
    torch.testing.assert_close(batched.values, one_by_one.values)
    assert batched.n == 13


def test_meta_test_accuracy_equals_the_learners_own_episode_metric():
    learner, episodes = TinyMAML(), GaussianTasks(seed=7).episodes(6)
    learner.eval()
    with torch.no_grad():
        expected = [learner.episode_loss(e)[1]["accuracy"].item() for e in episodes]
    learner.train()
    values = meta_test(learner, episodes, batch_size=3).values
    torch.testing.assert_close(values, torch.tensor(expected, dtype=torch.float64))


def test_regression_predictions_of_the_wrong_shape_raise_config_error():
    episode = Episode(torch.zeros(5, 1), torch.zeros(5, 1), torch.zeros(4, 1), torch.zeros(4, 2))
    with pytest.raises(ConfigError, match=r"returned \(4, 1\) for regression targets \(4, 2\)"):
        meta_test(_PredictsZeroTargets(), [episode])


def test_meta_test_is_deterministic_and_accepts_a_stacked_episode():
    learner, episodes = TinyProtoNet(), GaussianTasks(seed=5).episodes(6)
    first = meta_test(learner, episodes, batch_size=3)
    again = meta_test(learner, iter(episodes), batch_size=2)
    stacked = meta_test(learner, Episode.stack(episodes), batch_size=6)
    assert torch.equal(first.values, again.values)
    torch.testing.assert_close(stacked.values, first.values)


class _ReadOnlySteps(TinyMAML):
    def __setattr__(self, name, value):
        if name == "eval_inner_steps" and hasattr(self, name):
            raise AssertionError("meta_test must pass steps to adapt, not set eval_inner_steps")
        super().__setattr__(name, value)


def test_inner_steps_sweep_scores_each_step_and_never_sets_eval_inner_steps():
    learner, episodes = _ReadOnlySteps(eval_inner_steps=7), GaussianTasks(seed=6).episodes(5)
    sweep = meta_test(learner, episodes, inner_steps=[0, 1, 3], batch_size=2)

    assert learner.eval_inner_steps == 7
    assert list(sweep.by_steps) == [0, 1, 3]
    for steps in (0, 1, 3):
        reference = TinyMAML(eval_inner_steps=steps)
        reference.load_state_dict(learner.state_dict())
        torch.testing.assert_close(sweep.by_steps[steps], meta_test(reference, episodes).values)
    assert torch.equal(sweep.values, sweep.by_steps[3])
    summary = sweep.steps_summary()
    assert summary[1].mean == pytest.approx(sweep.by_steps[1].mean().item())
    assert summary[0].n == 5
    # adaptation helps on these tasks: zero steps of a random linear head is near chance
    assert summary[3].mean > summary[0].mean


class _FailsAtTwoSteps(TinyMAML):
    def adapt(self, support_x, support_y, n_way, *, steps=None):
        if steps == 2:
            raise RuntimeError("boom")
        return super().adapt(support_x, support_y, n_way, steps=steps)


def test_inner_steps_sweep_leaves_the_attribute_and_restores_the_mode_after_an_error():
    learner = _FailsAtTwoSteps(eval_inner_steps=5)
    with pytest.raises(RuntimeError, match="boom"):
        meta_test(learner, GaussianTasks().episodes(2), inner_steps=[1, 2])
    assert learner.eval_inner_steps == 5
    assert learner.training


def test_inner_steps_sweep_needs_eval_inner_steps():
    with pytest.raises(ConfigError, match="TinyProtoNet has none"):
        meta_test(TinyProtoNet(), GaussianTasks().episodes(1), inner_steps=[0, 1])
    with pytest.raises(ConfigError, match=">= 0"):
        meta_test(TinyMAML(), GaussianTasks().episodes(1), inner_steps=[-1])


def test_meta_test_without_episodes_raises_config_error():
    with pytest.raises(ConfigError, match="no episodes"):
        meta_test(TinyProtoNet(), [])


def test_eval_result_keeps_per_episode_values_for_histograms():
    result = EvalResult("accuracy", torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert result.values.tolist() == [1.0, 0.0]
    assert result.by_steps == {}
    assert result.mean == 0.5
