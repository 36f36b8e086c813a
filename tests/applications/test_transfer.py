"""Pretraining as a plain classifier: labelled batches, the one training loop, resume."""

from __future__ import annotations

import torch
from torch import nn

from metalearn.algorithms.baseline import Baseline
from metalearn.applications.transfer import ClassBatches, all_examples
from metalearn.data import TaskSampler, TensorClassDataset, gaussian_clusters
from metalearn.training import TrainConfig, meta_test, meta_train


class Encoder(nn.Sequential):
    def __init__(self, dim: int = 16, width: int = 32) -> None:
        super().__init__(nn.Linear(dim, width), nn.ReLU())
        self.embedding_dim = width


def _learner(head: str = "linear") -> Baseline:
    torch.manual_seed(0)
    return Baseline(Encoder(), head=head, n_classes=12)  # type: ignore[arg-type]


def test_batches_label_each_example_with_its_class_and_resume_exactly():
    x = torch.arange(7, dtype=torch.float32).unsqueeze(-1).expand(7, 2) / 255
    dataset = TensorClassDataset((x * 255).to(torch.uint8), torch.tensor([0, 0, 1, 1, 1, 2, 2]))
    batches = ClassBatches(dataset, seed=3)
    first = batches.sample_batch(50)
    expected = torch.tensor([0, 0, 1, 1, 1, 2, 2])[(first.x[:, 0] * 255).round().long()]
    assert torch.equal(first.y, expected)
    assert set(first.y.tolist()) == {0, 1, 2}
    state = batches.state_dict()
    again = batches.sample_batch(5)
    batches.load_state_dict(state)
    assert torch.equal(batches.sample_batch(5).x, again.x)
    everything = all_examples(dataset)
    assert torch.equal(everything.y, dataset_labels := torch.tensor([0, 0, 1, 1, 1, 2, 2]))
    assert torch.equal((everything.x[:, 0] * 255).round().long(), torch.arange(7))
    assert len(dataset_labels) == 7


def test_pretraining_learns_the_training_classes_and_transfers_to_new_ones(tmp_path):
    clusters = gaussian_clusters(17, 40, 16, seed=0)
    train, test = clusters.select(list(range(12))), clusters.select(list(range(12, 17)))
    learner = _learner("cosine")
    cfg = TrainConfig(steps=300, meta_batch_size=16, outer_lr=1e-2, eval_every=0, progress=False)
    result = meta_train(learner, ClassBatches(train, seed=0), cfg, run_dir=tmp_path / "run")
    assert result.train_metrics["accuracy"] > 0.8  # chance: 1/12
    episodes = TaskSampler(test, 5, 1, 15, seed=1).episodes(20)
    assert meta_test(learner, episodes).mean > 0.5  # chance: 0.2


def test_a_resumed_pretraining_ends_like_an_uninterrupted_one(tmp_path):
    train = gaussian_clusters(12, 20, 16, seed=0)
    cfg = TrainConfig(
        steps=20, meta_batch_size=8, checkpoint_every=10, eval_every=0, progress=False
    )
    whole = _learner()
    meta_train(whole, ClassBatches(train), cfg, run_dir=tmp_path / "whole")
    half = _learner()
    short = TrainConfig(**{**cfg.__dict__, "steps": 10})
    meta_train(half, ClassBatches(train), short, run_dir=tmp_path / "half")
    resumed = _learner()
    meta_train(resumed, ClassBatches(train), cfg, run_dir=tmp_path / "half", resume=True)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert not torch.equal(whole.head.weight, half.head.weight)  # type: ignore[union-attr]
