from __future__ import annotations

import pytest
import torch
from training_fixtures import GaussianTasks, TinyMAML

from metalearn.training import TrainConfig, meta_test, meta_train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _run(run_dir, steps, *, resume=False):
    torch.manual_seed(1)
    learner = TinyMAML().to("cuda")
    val = GaussianTasks(seed=99).episodes(8)  # on the CPU: meta_test moves them
    cfg = TrainConfig(
        steps=steps,
        meta_batch_size=4,
        eval_every=3,
        checkpoint_every=6,
        log_every=2,
        progress=False,
    )
    result = meta_train(
        learner,
        GaussianTasks(),  # CPU batches: meta_train moves them to the learner's device
        cfg,
        run_dir=run_dir,
        validate=lambda: {"accuracy": meta_test(learner, val, batch_size=4).mean},
        resume=resume,
    )
    return learner, result


def test_cuda_training_resumes_bit_exactly_and_meta_test_moves_episodes(tmp_path):
    full, result = _run(tmp_path / "full", 12)
    _run(tmp_path / "cut", 6)
    resumed, _ = _run(tmp_path / "cut", 12, resume=True)
    for name, value in full.state_dict().items():
        assert value.is_cuda
        assert torch.equal(resumed.state_dict()[name], value), name
    assert 0.0 <= result.val_metrics["accuracy"] <= 1.0
