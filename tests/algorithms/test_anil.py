import pytest
import torch
from gradient_fixtures import (
    assert_vmap_equals_loop,
    classification_batch,
    meta_grads,
    tiny_conv,
    tiny_mlp,
)
from torch.testing import assert_close

from metalearn.algorithms.anil import ANIL
from metalearn.algorithms.maml import MAML


def test_adaptation_leaves_the_body_untouched_and_changes_the_head():
    learner = ANIL(tiny_conv(), inner_lr=0.5, inner_steps=3)
    episode = classification_batch(n_tasks=1, x_shape=(1, 16, 16)).unbind()[0]
    fast_params = learner.adapt(episode.support_x, episode.support_y, episode.n_way)
    meta_params = learner.meta_params()
    assert learner.adapted_names == ("head.weight", "head.bias")
    for name, p in meta_params.items():
        if name.startswith("head."):
            assert not torch.allclose(fast_params[name], p)
        else:
            assert fast_params[name] is p


def test_meta_gradient_still_reaches_the_body():
    learner = ANIL(tiny_mlp(), inner_lr=0.5)
    _, _, grads = meta_grads(learner, classification_batch(), batched=False)
    assert grads["model.body.0.weight"].abs().sum() > 0


def test_anil_equals_maml_adapting_the_head_only():
    model = tiny_mlp()
    batch = classification_batch()
    _, _, grads = meta_grads(ANIL(model, inner_lr=0.5), batch, batched=False)
    maml = MAML(model, inner_lr=0.5, adapted=("head",))
    _, _, expected = meta_grads(maml, batch, batched=False)
    assert_close(grads, expected)


@pytest.mark.parametrize("inner_steps", [1, 5])
@pytest.mark.parametrize("first_order", [False, True], ids=["second", "first"])
@pytest.mark.parametrize("chunk_size", [None, 2, 1], ids=["all", "chunks-of-2", "one-by-one"])
def test_vmap_path_equals_loop_path_in_loss_and_meta_gradient(chunk_size, inner_steps, first_order):
    learner = ANIL(tiny_conv(), inner_lr=0.3, inner_steps=inner_steps, first_order=first_order)
    learner.chunk_size = chunk_size
    batch = classification_batch(x_shape=(1, 16, 16))
    assert_vmap_equals_loop(learner, batch)
