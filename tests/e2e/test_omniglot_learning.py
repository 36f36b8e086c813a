"""Short learning runs on real Omniglot: each must beat a threshold far above chance (0.20).

Thresholds were set from measurement with a margin; the measured values are beside them.
"""

import time

import pytest
import torch

from metalearn import (
    MAML,
    Conv4,
    MatchingNet,
    ProtoNet,
    SiameseNet,
    TaskSampler,
    TrainConfig,
    meta_test,
    meta_train,
)
from metalearn.data import load_omniglot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.data]


@pytest.fixture(scope="module")
def vinyals(data_root, cache_dir):
    return {
        s: load_omniglot(data_root, "vinyals", s, cache_dir=cache_dir) for s in ("train", "test")
    }


def _train_and_test(learner, train, test, steps, meta_batch_size):
    torch.manual_seed(0)
    config = TrainConfig(
        steps=steps,
        meta_batch_size=meta_batch_size,
        outer_lr=3e-3,
        eval_every=0,
        checkpoint_every=0,
        progress=False,
    )
    start = time.perf_counter()
    meta_train(learner, train, config)
    result = meta_test(learner, test.episodes(100), batch_size=10)
    print(f"{type(learner).__name__}: {result} after {time.perf_counter() - start:.1f} s")
    return result


def test_protonet_learns_5_way_1_shot_omniglot_in_a_few_hundred_episodes(vinyals):
    torch.manual_seed(0)
    learner = ProtoNet(Conv4(hidden_channels=32))
    train = TaskSampler(vinyals["train"], n_way=20, n_shot=1, n_query=5, seed=0)
    test = TaskSampler(vinyals["test"], n_way=5, n_shot=1, n_query=5, seed=1)
    result = _train_and_test(learner, train, test, steps=150, meta_batch_size=1)
    assert result.mean >= 0.85  # measured 0.921 +- 0.014 (12 s)


def test_maml_learns_5_way_1_shot_omniglot_in_a_few_hundred_tasks(vinyals):
    torch.manual_seed(0)
    learner = MAML(
        Conv4(out_features=5, hidden_channels=32, strided=True),
        inner_lr=0.4,
        inner_steps=1,
        eval_inner_steps=3,
    )
    train = TaskSampler(vinyals["train"], n_way=5, n_shot=1, n_query=1, seed=0)
    test = TaskSampler(vinyals["test"], n_way=5, n_shot=1, n_query=5, seed=1)
    result = _train_and_test(learner, train, test, steps=300, meta_batch_size=8)
    assert result.mean >= 0.72  # measured 0.809 +- 0.023 (23 s)


@pytest.mark.parametrize(
    ("make", "threshold"),
    [
        (lambda: MatchingNet(Conv4(hidden_channels=32)), 0.60),  # measured 0.706 +- 0.027
        (lambda: SiameseNet(Conv4(hidden_channels=32)), 0.45),  # measured 0.554 +- 0.030
    ],
    ids=["matching", "siamese"],
)
def test_matching_and_siamese_learn_5_way_1_shot_omniglot(vinyals, make, threshold):
    torch.manual_seed(0)
    learner = make()
    train = TaskSampler(vinyals["train"], n_way=5, n_shot=1, n_query=5, seed=0)
    test = TaskSampler(vinyals["test"], n_way=5, n_shot=1, n_query=5, seed=1)
    result = _train_and_test(learner, train, test, steps=150, meta_batch_size=4)
    assert result.mean >= threshold
