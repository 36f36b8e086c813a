"""MAML-RL through the shared loop: TRPO via the meta_update hook, checkpoints, exact resume."""

import torch

from metalearn.rl import GaussianMLPPolicy, TaskDistribution, TrajectorySampler
from metalearn.rl.learner import MetaRLLearner
from metalearn.training import TrainConfig, meta_train

ENV_ID = "metalearn/Navigation2D-v0"


def _setup():
    torch.manual_seed(0)  # the same initial policy in every run
    sampler = TrajectorySampler(ENV_ID, 2, env_kwargs={"max_episode_steps": 10})
    learner = MetaRLLearner(GaussianMLPPolicy(2, 2, (8,)), sampler)
    return learner, TaskDistribution(ENV_ID, seed=0)


def _config(steps):
    return TrainConfig(
        steps=steps, meta_batch_size=2, log_every=1, checkpoint_every=2, progress=False
    )


def test_meta_train_takes_trpo_steps_and_logs_the_returns(tmp_path):
    learner, tasks = _setup()
    result = meta_train(learner, tasks, _config(2), run_dir=tmp_path)
    assert result.step == 2
    assert {"loss", "kl", "return_pre", "return_post", "accepted"} <= set(result.train_metrics)
    assert result.train_metrics["kl"] <= 0.01 * (1 + 1e-4)
    assert (tmp_path / "checkpoint.pt").is_file()


def test_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path):
    learner, tasks = _setup()
    meta_train(learner, tasks, _config(4), run_dir=tmp_path / "full")
    interrupted, tasks2 = _setup()
    meta_train(interrupted, tasks2, _config(2), run_dir=tmp_path / "resumed")
    resumed, tasks3 = _setup()  # a fresh process: new objects, state from the checkpoint
    meta_train(resumed, tasks3, _config(4), run_dir=tmp_path / "resumed", resume=True)
    for name, p in learner.meta_params().items():
        assert torch.equal(p, resumed.meta_params()[name]), name
    assert tasks.sample() == tasks3.sample()
