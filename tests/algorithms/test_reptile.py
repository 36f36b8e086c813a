import pytest
import torch
import torch.nn.functional as F
from gradient_fixtures import (
    assert_vmap_equals_loop,
    classification_batch,
    tiny_conv,
    tiny_mlp,
)
from torch.func import functional_call
from torch.testing import assert_close

from metalearn.algorithms.reptile import Reptile


def _adapt_by_hand(model, episode, inner_lr, inner_steps):
    """Plain SGD on the support loss with torch.autograd.grad, from the model's weights."""
    weights = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    for _ in range(inner_steps):
        loss = F.cross_entropy(
            functional_call(model, weights, (episode.support_x,)), episode.support_y
        )
        grads = torch.autograd.grad(loss, list(weights.values()))
        weights = {
            n: (w - inner_lr * g).detach().requires_grad_()
            for (n, w), g in zip(weights.items(), grads, strict=True)
        }
    return {n: w.detach() for n, w in weights.items()}


def test_one_outer_sgd_step_is_reptiles_update():
    # phi <- phi + epsilon * mean_i(theta~_i - phi)
    model = tiny_conv()
    learner = Reptile(model, inner_lr=0.3, inner_steps=3)
    batch = classification_batch(n_tasks=4, x_shape=(1, 16, 16))
    phi = {n: p.detach().clone() for n, p in model.named_parameters()}
    adapted = [_adapt_by_hand(model, episode, 0.3, 3) for episode in batch.unbind()]
    epsilon = 0.7
    optimizer = torch.optim.SGD(learner.parameters(), lr=epsilon)
    learner.meta_loss(batch)[0].backward()
    optimizer.step()
    for name, p in model.named_parameters():
        direction = torch.stack([theta[name] - phi[name] for theta in adapted]).mean(0)
        assert_close(p.detach(), phi[name] + epsilon * direction)
        assert direction.abs().sum() > 0


def test_surrogate_gradient_is_meta_params_minus_adapted_params():
    model = tiny_mlp()
    learner = Reptile(model, inner_lr=0.3, inner_steps=2)
    episode = classification_batch(n_tasks=1).unbind()[0]
    loss, metrics = learner.episode_loss(episode)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    theta = _adapt_by_hand(model, episode, 0.3, 2)
    for (name, p), g in zip(model.named_parameters(), grads, strict=True):
        assert_close(g, p.detach() - theta[name])
    assert_close(metrics["surrogate"], loss.detach())
    assert set(metrics) == {"loss", "accuracy", "surrogate"}


@pytest.mark.parametrize("inner_steps", [1, 5])
@pytest.mark.parametrize("chunk_size", [None, 2, 1], ids=["all", "chunks-of-2", "one-by-one"])
def test_vmap_path_equals_loop_path_in_loss_and_meta_gradient(chunk_size, inner_steps):
    learner = Reptile(tiny_conv(), inner_lr=0.3, inner_steps=inner_steps)
    learner.chunk_size = chunk_size
    batch = classification_batch(x_shape=(1, 16, 16))
    assert_vmap_equals_loop(learner, batch)
