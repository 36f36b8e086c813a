import pytest
import torch
from gradient_fixtures import (
    BATCHED_PATHS,
    Scalar,
    assert_vmap_equals_loop,
    classification_batch,
    hand_episode,
    regression_batch,
    tiny_conv,
    tiny_mlp,
)
from torch.testing import assert_close

from metalearn.algorithms.meta_sgd import MetaSGD
from metalearn.nn.backbones import MLP


def test_learning_rate_gradient_on_the_one_parameter_model_equals_the_hand_value():
    # dL/dalpha = -g_s * dL_q/dw1 = -8 * 0.6 = -4.8; dL/dw is MAML's 0.12 (STYLE.md)
    learner = MetaSGD(Scalar(1.5), inner_lr=0.1)
    loss, _ = learner.meta_loss(hand_episode())
    loss.backward()
    assert_close(learner.lrs["w"].grad, torch.tensor(-4.8, dtype=torch.float64))
    assert_close(learner.model.w.grad, torch.tensor(0.12, dtype=torch.float64))


def test_first_order_still_trains_the_learning_rates_with_the_hand_value():
    # dropping second derivatives leaves dL/dalpha = -g_s * dL_q/dw1 unchanged; dL/dw = 0.6
    learner = MetaSGD(Scalar(1.5), inner_lr=0.1, first_order=True)
    learner.meta_loss(hand_episode())[0].backward()
    assert_close(learner.lrs["w"].grad, torch.tensor(-4.8, dtype=torch.float64))
    assert_close(learner.model.w.grad, torch.tensor(0.6, dtype=torch.float64))


def test_learning_rates_match_each_adapted_parameter_and_start_at_inner_lr():
    learner = MetaSGD(tiny_mlp(), inner_lr=0.03)
    for name, p in learner.model.named_parameters():
        lr = learner.inner_lrs()[name]
        assert lr.shape == p.shape
        assert_close(lr, torch.full_like(p, 0.03))
    assert {n for n, _ in learner.named_parameters()} >= {"lrs.head_weight", "lrs.body_0_bias"}


def test_adapt_steps_each_entry_with_its_own_learning_rate():
    learner = MetaSGD(Scalar(1.5), inner_lr=0.1)
    with torch.no_grad():
        learner.lrs["w"].fill_(0.05)
    episode = hand_episode()
    fast_params = learner.adapt(episode.support_x, episode.support_y, None)
    assert_close(fast_params["w"], torch.tensor(1.5 - 0.05 * 8, dtype=torch.float64))


def test_second_order_meta_loss_passes_gradcheck_in_the_learning_rates():
    learner = MetaSGD(MLP(1, 1, hidden_sizes=(3,)).double(), inner_lr=0.2, inner_steps=2)
    batch = regression_batch(n_tasks=2, n_shot=3, n_query=3)
    learner.chunk_numel = None  # one vmap call: the graph must reach the gradcheck inputs
    names = list(learner.inner_lrs())

    def meta_loss(*lrs):
        # replaces the learned rates by the gradcheck inputs for this call only
        learner.inner_lrs = lambda step=0: dict(zip(names, lrs, strict=True))
        return learner.meta_loss(batch)[0]

    lrs = tuple(lr.detach().clone().requires_grad_() for lr in learner.inner_lrs().values())
    assert torch.autograd.gradcheck(meta_loss, lrs)


@pytest.mark.parametrize("model_fn", [tiny_conv, tiny_mlp], ids=["conv-bn", "mlp"])
@pytest.mark.parametrize("inner_steps", [1, 5])
@pytest.mark.parametrize("first_order", [False, True], ids=["second", "first"])
@BATCHED_PATHS
def test_vmap_path_equals_loop_path_in_loss_and_meta_gradient(
    chunk_size, task_threads, model_fn, inner_steps, first_order
):
    learner = MetaSGD(model_fn(), inner_lr=0.1, inner_steps=inner_steps, first_order=first_order)
    with torch.no_grad():  # distinct rates, so that a mix-up of names would show
        for lr in learner.lrs.values():
            lr.uniform_(0.05, 0.15)
    learner.chunk_size, learner.task_threads = chunk_size, task_threads
    batch = classification_batch(x_shape=(1, 16, 16) if model_fn is tiny_conv else (4,))
    grads_v = assert_vmap_equals_loop(learner, batch)
    assert grads_v["lrs.head_weight"].abs().sum() > 0
