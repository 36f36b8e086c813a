"""Schedules of an objective (MAML++'s annealing) follow the loop's steps, across a resume."""

import torch
from torch import nn
from training_fixtures import DIM, N_WAY, GaussianTasks

from metalearn.algorithms import MAMLPlusPlus
from metalearn.training import TrainConfig, meta_train


def _learner() -> MAMLPlusPlus:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.head = nn.Linear(DIM, N_WAY)
    return MAMLPlusPlus(
        model, inner_lr=0.5, inner_steps=2, multi_step_loss=3, first_order_iterations=2
    )


def _train(run_dir, steps, *, resume=False, validate=False):
    learner = _learner()
    val_batch = GaussianTasks(seed=5).sample_batch(2)

    def validation_loss():  # an extra training-mode loss call must not move the schedule
        learner.train()  # (the loop switches back to training mode after validation anyway)
        with torch.enable_grad():
            return {"loss": float(learner.meta_loss(val_batch)[0].detach())}

    cfg = TrainConfig(steps=steps, meta_batch_size=2, eval_every=1, checkpoint_every=2)
    meta_train(
        learner,
        GaussianTasks(seed=1),
        cfg,
        run_dir=run_dir,
        resume=resume,
        validate=validation_loss if validate else None,
    )
    return learner


def test_the_loop_advances_maml_plus_plus_annealing_and_a_resume_continues_it(tmp_path):
    whole = _train(tmp_path / "whole", 4, validate=True)
    assert int(whole.meta_iterations) == 4
    _train(tmp_path / "cut", 2)
    resumed = _train(tmp_path / "cut", 4, resume=True)
    assert int(resumed.meta_iterations) == 4
    for name, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
