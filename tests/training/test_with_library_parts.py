"""The loop and meta-test on the library's own samplers and learners (not only test doubles)."""

from __future__ import annotations

import dataclasses

import torch

from metalearn.algorithms.maml import MAML
from metalearn.algorithms.protonet import ProtoNet
from metalearn.data import SinusoidTasks, TaskSampler, gaussian_clusters
from metalearn.nn.backbones import MLP
from metalearn.training import CHECKPOINT_FILE, TrainConfig, load_checkpoint, meta_test, meta_train

CFG = TrainConfig(
    steps=8, meta_batch_size=4, eval_every=2, checkpoint_every=4, log_every=2, progress=False
)


def _protonet_run(run_dir, cfg, *, resume=False):
    torch.manual_seed(0)
    learner = ProtoNet(MLP(8, 16, hidden_sizes=(16,)))
    data = gaussian_clusters(12, 10, 8, seed=0)
    train = TaskSampler(data, n_way=3, n_shot=1, n_query=3, seed=1)
    val = list(TaskSampler(data, n_way=3, n_shot=1, n_query=3).episodes(6, seed=2))

    def validate():
        return {"accuracy": meta_test(learner, val, batch_size=3).mean}

    meta_train(learner, train, cfg, run_dir=run_dir, validate=validate, resume=resume)
    return learner


def test_protonet_on_a_task_sampler_resumes_bit_exactly(tmp_path):
    full = _protonet_run(tmp_path / "full", CFG)
    _protonet_run(tmp_path / "cut", dataclasses.replace(CFG, steps=4))
    resumed = _protonet_run(tmp_path / "cut", CFG, resume=True)
    for name, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT_FILE)["tasks"]["spec"]["n_way"] == 3


def test_maml_sinusoid_sweep_reports_mse_after_each_number_of_steps():
    maml = MAML(MLP(), inner_lr=0.01, inner_steps=1)
    tasks = SinusoidTasks(n_shot=5, n_query=10, seed=0)
    meta_train(maml, tasks, dataclasses.replace(CFG, eval_every=0, outer_lr=1e-3))
    episodes = list(tasks.episodes(6, seed=1))
    sweep = meta_test(maml, episodes, inner_steps=[0, 1, 2], batch_size=3)
    assert sweep.metric == "mse"
    assert list(sweep.by_steps) == [0, 1, 2]
    assert maml.eval_inner_steps == 1
    one_by_one = meta_test(maml, episodes, inner_steps=[2])
    torch.testing.assert_close(sweep.values, one_by_one.values)
