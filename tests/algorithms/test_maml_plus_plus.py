"""MAML++ options of MAML: per-step learned learning rates (LSLR), the multi-step loss (MSL)
and derivative-order annealing (DA).

Hand example (STYLE.md): f(w) = w x, support (x=2, y=1), query (x=3, y=2), loss (w x - y)^2,
w = 1.5. The support gradient is 2 x (w x - y) = 4 (2 w - 1), so g(1.5) = 8.
"""

import pytest
import torch
from gradient_fixtures import (
    Scalar,
    classification_batch,
    hand_episode,
    meta_grads,
    tiny_conv,
)
from torch import nn
from torch.testing import assert_close

from metalearn.algorithms.maml_plus_plus import MAMLPlusPlus


def test_per_step_learning_rates_meta_gradient_equals_the_hand_values():
    # w1 = 1.5 - 0.1 * 8 = 0.7; g(0.7) = 1.6; w2 = 0.7 - 0.05 * 1.6 = 0.62
    # L = (3 * 0.62 - 2)^2 = 0.0196; dL/dw2 = 6 (1.86 - 2) = -0.84; dw2/dw1 = 1 - 0.05 * 8 = 0.6
    # dL/da1 = -0.84 * -1.6 = 1.344; dL/da0 = -0.84 * 0.6 * -8 = 4.032
    # dL/dw = -0.84 * 0.6 * (1 - 0.1 * 8) = -0.1008
    learner = MAMLPlusPlus(Scalar(1.5), inner_lr=0.1, inner_steps=2, per_step_lrs=True).double()
    assert learner.step_lrs is not None
    with torch.no_grad():
        learner.step_lrs["w"].copy_(torch.tensor([0.1, 0.05]))
    loss, _ = learner.meta_loss(hand_episode())
    grad_w, grad_lrs = torch.autograd.grad(loss, [learner.model.w, learner.step_lrs["w"]])
    assert loss.item() == pytest.approx(0.0196)
    assert grad_w.item() == pytest.approx(-0.1008)
    assert grad_lrs.tolist() == pytest.approx([4.032, 1.344])


def test_per_step_learning_rates_start_at_inner_lr_and_longer_evaluations_reuse_the_last():
    learner = MAMLPlusPlus(Scalar(1.5), inner_lr=0.1, inner_steps=2, per_step_lrs=True).double()
    assert learner.step_lrs is not None
    assert learner.step_lrs["w"].tolist() == pytest.approx([0.1, 0.1])
    with torch.no_grad():
        learner.step_lrs["w"].copy_(torch.tensor([0.1, 0.05]))
    assert learner.inner_lrs(5)["w"].item() == pytest.approx(0.05)


def test_multi_step_loss_weights_follow_maml_plus_plus_annealing():
    learner = MAMLPlusPlus(Scalar(), inner_steps=5, multi_step_loss=100)
    assert learner.step_loss_weights() == pytest.approx([0.2] * 5)
    learner.meta_iterations.fill_(50)  # progress 50 / (5 * 100) = 0.1 of the decay
    assert learner.step_loss_weights() == pytest.approx([0.1] * 4 + [0.6])
    learner.meta_iterations.fill_(10_000)  # floors: 0.03 / 5 and 1 - 4 * 0.006
    assert learner.step_loss_weights() == pytest.approx([0.006] * 4 + [0.976])


def test_multi_step_loss_is_the_weighted_sum_of_the_query_losses_after_each_step():
    # w1 = 0.7: L1 = (2.1 - 2)^2 = 0.01; w2 = 0.7 - 0.1 * 1.6 = 0.54: L2 = (1.62 - 2)^2 = 0.1444
    learner = MAMLPlusPlus(Scalar(1.5), inner_lr=0.1, inner_steps=2, multi_step_loss=10).double()
    loss, metrics = learner.episode_loss(hand_episode())
    assert loss.item() == pytest.approx(0.5 * 0.01 + 0.5 * 0.1444)
    assert metrics["loss"].item() == pytest.approx(0.1444)
    learner.eval()  # evaluation scores the last step only
    assert learner.episode_loss(hand_episode())[0].item() == pytest.approx(0.1444)


def test_meta_iterations_follow_the_training_loop_not_loss_calls_and_are_checkpointed():
    learner = MAMLPlusPlus(Scalar(1.5), inner_lr=0.1, inner_steps=2, multi_step_loss=10).double()
    learner.meta_loss(hand_episode())
    learner.on_step_end(1)
    learner.meta_loss(hand_episode())
    learner.on_step_end(2)
    learner.meta_loss(hand_episode())  # an extra loss call (no step) changes no schedule
    with torch.no_grad():
        learner.meta_loss(hand_episode())
    learner.eval()
    learner.meta_loss(hand_episode())
    assert int(learner.meta_iterations) == 2
    restored = MAMLPlusPlus(Scalar(1.5), inner_lr=0.1, inner_steps=2, multi_step_loss=10).double()
    restored.load_state_dict(learner.state_dict())
    assert int(restored.meta_iterations) == 2


@pytest.mark.parametrize(
    ("chunk_size", "task_threads"), [(None, 1), (1, 2)], ids=["vmap", "tasks-on-2-threads"]
)
@pytest.mark.parametrize("first_order", [False, True], ids=["second", "first"])
def test_maml_plus_plus_batched_paths_equal_the_loop(chunk_size, task_threads, first_order):
    learner = MAMLPlusPlus(
        tiny_conv(),
        inner_lr=0.1,
        inner_steps=3,
        first_order=first_order,
        per_step_lrs=True,
        multi_step_loss=4,
    ).double()
    learner.chunk_size, learner.task_threads = chunk_size, task_threads
    batch = classification_batch(x_shape=(1, 16, 16))
    results = []
    for batched in (True, False):
        learner.on_step_end(3)  # weights not uniform
        results.append(meta_grads(learner, batch, batched=batched))
    (loss_v, metrics_v, grads), (loss_l, metrics_l, grads_l) = results
    assert_close((loss_v, metrics_v, grads), (loss_l, metrics_l, grads_l))
    assert all(grads[f"step_lrs.{key}"].abs().sum() > 0 for key in ("head_weight", "head_bias"))


def test_per_step_learning_rates_refuse_names_that_collide_as_keys():
    model = nn.Module()
    model.a = nn.Module()
    model.a.b_c = nn.Parameter(torch.zeros(1))
    model.a_b = nn.Module()
    model.a_b.c = nn.Parameter(torch.zeros(1))  # "a.b_c" and "a_b.c" both become "a_b_c"
    with pytest.raises(ValueError, match="collide"):
        MAMLPlusPlus(model, per_step_lrs=True)


@pytest.mark.parametrize("option", ["multi_step_loss", "first_order_iterations"])
def test_annealing_lengths_must_be_non_negative(option):
    with pytest.raises(ValueError, match=f"{option}=-1"):
        MAMLPlusPlus(Scalar(), **{option: -1})


def test_derivative_order_annealing_is_first_order_then_second_order():
    # the hand values of test_maml.py: dL/dw = 0.6 first order, 0.12 second order
    learner = MAMLPlusPlus(Scalar(1.5), inner_lr=0.1, first_order_iterations=2).double()
    grads = []
    for step in range(3):
        learner.zero_grad()
        learner.meta_loss(hand_episode())[0].backward()
        learner.meta_loss(hand_episode())  # a loss call does not advance the annealing
        learner.on_step_end(step + 1)  # the training loop does
        grads.append(learner.model.w.grad.item())
    assert grads == pytest.approx([0.6, 0.6, 0.12])
    assert learner.current_first_order is False
    learner.meta_iterations.zero_()
    learner.eval()  # evaluation needs no meta-gradient: it keeps the learner's own order
    assert learner.current_first_order is False
