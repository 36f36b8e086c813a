import copy
import math

import pytest
import torch
import torch.nn.functional as F
from gradient_fixtures import (
    BATCHED_PATHS,
    Scalar,
    assert_vmap_equals_loop,
    classification_batch,
    hand_episode,
    meta_grads,
    regression_batch,
    tiny_conv,
    tiny_mlp,
    tiny_strided_conv,
)
from torch import nn
from torch.testing import assert_close

from metalearn.algorithms.batching import tasks_per_chunk
from metalearn.algorithms.maml import MAML
from metalearn.episode import Episode
from metalearn.nn import lean_conv
from metalearn.nn.backbones import MLP

# --- hand computations (STYLE.md): w=1.5, support (2, 1), query (3, 2), alpha=0.1 -------------
# g_s = 2 x_s (w x_s - y_s) = 8, w1 = w - alpha g_s = 0.7, L_q = (0.7*3 - 2)^2 = 0.01,
# dL/dw = 2 x_q (w1 x_q - y_q) (1 - 2 alpha x_s^2) = 0.6 * 0.2 = 0.12; FOMAML drops the factor.


@pytest.mark.parametrize(("first_order", "expected"), [(False, 0.12), (True, 0.6)])
def test_meta_gradient_on_the_one_parameter_model_equals_the_hand_value(first_order, expected):
    learner = MAML(Scalar(1.5), inner_lr=0.1, first_order=first_order)
    loss, _ = learner.meta_loss(hand_episode())
    loss.backward()
    assert_close(loss, torch.tensor(0.01, dtype=torch.float64))
    assert_close(learner.model.w.grad, torch.tensor(expected, dtype=torch.float64))


def test_adapt_takes_the_hand_computed_inner_step():
    episode = hand_episode()
    fast_params = MAML(Scalar(1.5), inner_lr=0.1).adapt(episode.support_x, episode.support_y, None)
    assert_close(fast_params["w"], torch.tensor(0.7, dtype=torch.float64))


@pytest.mark.parametrize("batched", [True, False], ids=["vmap", "loop"])
def test_second_order_meta_loss_passes_gradcheck(batched):
    learner = MAML(MLP(1, 1, hidden_sizes=(3,)).double(), inner_lr=0.3, inner_steps=2)
    learner.chunk_numel = None  # one vmap call, so that the graph reaches the gradcheck inputs
    batch = regression_batch(n_tasks=2, n_shot=3, n_query=3)
    names = list(learner.meta_params())

    def meta_loss(*theta):
        # the learner's own meta-loss, starting its adaptation from the gradcheck inputs
        learner.meta_params = lambda: dict(zip(names, theta, strict=True))
        return learner.meta_loss(batch, batched=batched)[0]

    theta = tuple(p.detach().clone().requires_grad_() for p in learner.model.parameters())
    assert torch.autograd.gradcheck(meta_loss, theta)


@pytest.mark.parametrize(
    "model_fn", [tiny_conv, tiny_strided_conv, tiny_mlp], ids=["conv-bn", "strided-conv", "mlp"]
)
@pytest.mark.parametrize("inner_steps", [1, 5])
@pytest.mark.parametrize("first_order", [False, True], ids=["second", "first"])
@BATCHED_PATHS
def test_vmap_path_equals_loop_path_in_loss_and_meta_gradient(
    model_fn, inner_steps, first_order, chunk_size, task_threads
):
    learner = MAML(model_fn(), inner_lr=0.1, inner_steps=inner_steps, first_order=first_order)
    learner.chunk_size, learner.task_threads = chunk_size, task_threads
    x_shape = (4,) if model_fn is tiny_mlp else (1, 16, 16)
    batch = classification_batch(x_shape=x_shape)
    assert_vmap_equals_loop(learner, batch)


@pytest.mark.parametrize("inner_steps", [1, 5])
@pytest.mark.parametrize(
    ("chunk_size", "task_threads"), [(None, 1), (1, 2)], ids=["vmap", "tasks-on-2-threads"]
)
def test_lean_conv_blocks_give_the_elementary_ops_meta_gradient(
    inner_steps, chunk_size, task_threads, monkeypatch
):
    # Conv4's autograd functions for large conv outputs (here every output above 100 elements;
    # the first block redoes its conv in slices) against the elementary-op loop, in float64
    learner = MAML(tiny_conv(), inner_lr=0.1, inner_steps=inner_steps)
    learner.chunk_size, learner.task_threads = chunk_size, task_threads
    batch = classification_batch(x_shape=(1, 16, 16))
    expected = meta_grads(learner, batch, batched=False)
    monkeypatch.setattr(lean_conv, "_LARGE_NUMEL", 100)
    assert_close(meta_grads(learner, batch, batched=True), expected)


def test_chunked_meta_loss_hands_out_its_gradient_scaled_by_the_incoming_one():
    learner = MAML(tiny_mlp(), inner_lr=0.1)
    batch = classification_batch(n_tasks=5)
    _, _, expected = meta_grads(learner, batch, batched=False)
    learner.chunk_size = 2
    loss, _ = learner.meta_loss(batch)
    (3 * loss).backward()
    assert_close(
        {f"model.{n}": p.grad for n, p in learner.model.named_parameters()},
        {n: 3 * g for n, g in expected.items()},
    )


def test_chunked_meta_loss_builds_no_graph_under_no_grad():
    learner = MAML(tiny_mlp(), inner_lr=0.1)
    learner.chunk_size = 2
    batch = classification_batch(n_tasks=5)
    with torch.no_grad():
        loss, metrics = learner.meta_loss(batch)
    assert loss.grad_fn is None
    assert_close(loss, learner.meta_loss(batch, batched=False)[0].detach())
    assert all(p.grad is None for p in learner.parameters())
    assert set(metrics) == {"loss", "accuracy"}


@pytest.mark.parametrize(
    ("n_query", "chunk_size", "task_threads", "expected"),
    [(1, None, 1, 12), (15, None, 1, 1), (15, 4, 1, 4), (1, None, 2, 1), (1, 4, 2, 4)],
)
def test_tasks_per_chunk_fits_chunk_numel_or_threads_unless_chunk_size_is_set(
    n_query, chunk_size, task_threads, expected
):
    # 5-way 1-shot at 28x28: 10 * 784 = 7840 input elements per task with 1 query per class
    learner = MAML(tiny_mlp(n_way=5))
    learner.chunk_size = chunk_size
    learner.task_threads = task_threads
    batch = classification_batch(n_tasks=2, n_way=5, n_shot=1, n_query=n_query, x_shape=(28, 28))
    assert tasks_per_chunk(learner, batch) == expected


def test_task_threads_are_for_cpu_tasks_only():
    learner = MAML(tiny_mlp(n_way=5))
    learner.task_threads = 2
    batch = classification_batch(n_tasks=2, n_way=5, n_shot=1, n_query=1, x_shape=(28, 28))
    assert tasks_per_chunk(learner, batch) == 1
    assert tasks_per_chunk(learner, batch.to(torch.device("meta"))) == 12


def test_task_threads_keep_no_grad_and_restore_torch_threads():
    learner = MAML(tiny_conv(), inner_lr=0.1)
    learner.chunk_size, learner.task_threads = 1, 2
    batch = classification_batch(n_tasks=4, x_shape=(1, 16, 16))
    threads = torch.get_num_threads()
    with torch.no_grad():
        loss, _ = learner.meta_loss(batch)
    assert loss.grad_fn is None
    assert torch.get_num_threads() == threads
    assert_close(loss, learner.meta_loss(batch, batched=False)[0].detach())


def test_vmap_path_equals_loop_path_on_regression():
    learner = MAML(MLP(1, 1, hidden_sizes=(8, 8)).double(), inner_lr=0.05, inner_steps=5)
    batch = regression_batch()
    loss_v, _, grads_v = meta_grads(learner, batch, batched=True)
    loss_l, _, grads_l = meta_grads(learner, batch, batched=False)
    assert_close(loss_v, loss_l)
    assert_close(grads_v, grads_l)


def _naive_mlp(weights, x):
    """The two-hidden-layer MLP written on explicit tensors ``[W1, b1, W2, b2, W3, b3]``."""
    h = torch.relu(x @ weights[0].T + weights[1])
    h = torch.relu(h @ weights[2].T + weights[3])
    return h @ weights[4].T + weights[5]


def _naive_maml_grads(weights, batch, inner_lr, inner_steps, first_order):
    """MAML with torch.autograd.grad(create_graph=True), one task at a time."""
    weights = [w.detach().requires_grad_() for w in weights]
    total = 0
    for sx, sy, qx, qy in zip(*batch[:4], strict=True):
        fast = weights
        for _ in range(inner_steps):
            support_loss = F.cross_entropy(_naive_mlp(fast, sx), sy)
            grads = torch.autograd.grad(support_loss, fast, create_graph=not first_order)
            fast = [w - inner_lr * g for w, g in zip(fast, grads, strict=True)]
        total = total + F.cross_entropy(_naive_mlp(fast, qx), qy)
    loss = total / len(batch.support_x)
    return loss, torch.autograd.grad(loss, weights)


@pytest.mark.parametrize("inner_steps", [1, 3])
@pytest.mark.parametrize("first_order", [False, True], ids=["second", "first"])
def test_meta_gradient_equals_a_naive_autograd_implementation(inner_steps, first_order):
    model = tiny_mlp()
    learner = MAML(model, inner_lr=0.5, inner_steps=inner_steps, first_order=first_order)
    batch = classification_batch()
    loss, _, grads = meta_grads(learner, batch, batched=True)
    expected_loss, expected_grads = _naive_maml_grads(
        list(model.parameters()), batch, 0.5, inner_steps, first_order
    )
    assert_close(loss, expected_loss)
    assert_close(list(grads.values()), list(expected_grads))


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_conv4_meta_gradient_equals_that_of_the_plain_layer_order_on_binary_images(inner_steps):
    # Conv4's blocks pool before the BatchNorm affine map and the ReLU; binary images (like
    # Omniglot) give exact ties inside pooling windows, where the two orders could differ
    model = tiny_conv()
    plain = copy.deepcopy(model)
    for i, block in enumerate(model.features):
        plain.features[i] = nn.Sequential(block.conv, block.norm, nn.ReLU(), nn.MaxPool2d(2))
    plain.head = model.head
    x = (torch.rand(3, 12, 1, 16, 16) > 0.85).double()
    y = torch.arange(3).repeat(4).expand(3, -1).contiguous()
    batch = Episode(x[:, :6], y[:, :6], x[:, 6:], y[:, 6:], 3)
    loss, _, grads = meta_grads(
        MAML(model, inner_lr=0.4, inner_steps=inner_steps), batch, batched=True
    )
    loss_ref, _, grads_ref = meta_grads(
        MAML(plain, inner_lr=0.4, inner_steps=inner_steps), batch, batched=False
    )
    assert_close(loss, loss_ref)
    assert_close(list(grads.values()), list(grads_ref.values()))


def test_first_order_meta_gradient_equals_query_gradient_at_detached_fast_params():
    learner = MAML(tiny_conv(), inner_lr=0.2, inner_steps=3, first_order=True)
    episode = classification_batch(n_tasks=1, x_shape=(1, 16, 16)).unbind()[0]
    _, _, grads = meta_grads(learner, episode, batched=False)
    fast_params = learner.adapt(episode.support_x, episode.support_y, episode.n_way)
    fast_params = {n: p.detach().requires_grad_() for n, p in fast_params.items()}
    query_loss = F.cross_entropy(learner.predict(fast_params, episode.query_x), episode.query_y)
    expected = torch.autograd.grad(query_loss, list(fast_params.values()))
    assert_close(list(grads.values()), list(expected))


def test_eval_inner_steps_is_read_at_every_call_in_evaluation_mode():
    learner = MAML(tiny_mlp(), inner_lr=0.5, inner_steps=1, eval_inner_steps=3)
    episode = classification_batch(n_tasks=1).unbind()[0]
    args = (episode.support_x, episode.support_y, episode.n_way)
    one_step = learner.adapt(*args)
    learner.eval()
    learner.eval_inner_steps = 0
    assert_close(learner.adapt(*args), learner.meta_params())
    learner.eval_inner_steps = 1
    assert_close(learner.adapt(*args), one_step)
    learner.eval_inner_steps = 2
    two_steps = learner.adapt(*args)
    learner.train()
    learner.inner_steps = 2
    assert_close(learner.adapt(*args), two_steps)
    assert not torch.allclose(two_steps["head.weight"], one_step["head.weight"])


def test_steps_argument_sets_the_inner_steps_of_one_adaptation_in_either_mode():
    learner = MAML(tiny_mlp(), inner_lr=0.5, inner_steps=1, eval_inner_steps=3)
    episode = classification_batch(n_tasks=1).unbind()[0]
    args = (episode.support_x, episode.support_y, episode.n_way)
    one_step, zero_steps = learner.adapt(*args), learner.meta_params()
    learner.eval()
    assert_close(learner.adapt(*args, steps=1), one_step)
    assert not torch.equal(learner.adapt(*args)["head.weight"], one_step["head.weight"])
    learner.train()
    assert_close(learner.adapt(*args, steps=0), zero_steps)
    assert (learner.inner_steps, learner.eval_inner_steps) == (1, 3)


def test_adapt_still_adapts_under_no_grad():
    # meta_test wraps evaluation in no_grad; torch.func.grad opens its own autograd level
    learner = MAML(tiny_conv(), inner_lr=0.5, inner_steps=2).eval()
    episode = classification_batch(n_tasks=1, x_shape=(1, 16, 16)).unbind()[0]
    args = (episode.support_x, episode.support_y, episode.n_way)
    expected = learner.adapt(*args)
    with torch.no_grad():
        fast_params = learner.adapt(*args)
    assert_close(fast_params, expected)
    assert not any(p.requires_grad for p in fast_params.values())
    assert not torch.allclose(fast_params["head.bias"], learner.model.head.bias)


def test_metrics_report_accuracy_for_classification_and_mse_for_regression():
    _, metrics = MAML(tiny_mlp()).meta_loss(classification_batch())
    assert set(metrics) == {"loss", "accuracy"}
    _, metrics = MAML(MLP().double()).meta_loss(regression_batch())
    assert set(metrics) == {"loss", "mse"}


def test_adapted_names_that_match_no_parameter_raise_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"adapted='classifier'.*head\.weight"):
        MAML(tiny_mlp(), adapted=("classifier",))


@pytest.mark.parametrize("track_running_stats", [True, False])
def test_models_with_torch_batch_norm_are_rejected_with_the_fix(track_running_stats):
    model = nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8, track_running_stats=track_running_stats)
    )
    with pytest.raises(ValueError, match=r"layer '1' is a torch.nn BatchNorm1d.*TaskBatchNorm"):
        MAML(model)


def test_adapted_names_select_whole_submodules_by_prefix():
    learner = MAML(tiny_mlp(), adapted=("body.0", "head.bias"))
    assert learner.adapted_names == ("body.0.weight", "body.0.bias", "head.bias")


# --- end-to-end learning (a minimal Adam loop over meta_loss; thresholds from measurement) ----


def _sinusoid_batch(n_tasks, n_shot, n_query, generator):
    """MAML's sinusoids: y = A sin(x - phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]."""
    amplitude = torch.empty(n_tasks, 1, 1).uniform_(0.1, 5.0, generator=generator)
    phase = torch.empty(n_tasks, 1, 1).uniform_(0.0, math.pi, generator=generator)
    x = torch.empty(n_tasks, n_shot + n_query, 1).uniform_(-5.0, 5.0, generator=generator)
    y = amplitude * torch.sin(x - phase)
    return Episode(x[:, :n_shot], y[:, :n_shot], x[:, n_shot:], y[:, n_shot:], None)


def _cluster_batch(n_tasks, n_way, n_shot, n_query, generator, dim=16, spread=0.5):
    """Each task draws n_way new Gaussian classes: centres N(0, I), spread * N(0, I) around them."""
    centres = torch.randn(n_tasks, n_way, 1, dim, generator=generator)

    def draw(n):
        x = centres + spread * torch.randn(n_tasks, n_way, n, dim, generator=generator)
        y = torch.arange(n_way).repeat_interleave(n).expand(n_tasks, -1)
        return x.reshape(n_tasks, n_way * n, dim), y.contiguous()

    return Episode(*draw(n_shot), *draw(n_query), n_way)


def _meta_train(learner, sample_batch, steps):
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
    for _ in range(steps):
        loss, _ = learner.meta_loss(sample_batch())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _evaluate(learner, batch, inner_steps):
    learner.eval()
    learner.eval_inner_steps = inner_steps
    with torch.no_grad():
        _, metrics = learner.meta_loss(batch)
    learner.train()
    return metrics


@pytest.mark.e2e
def test_maml_on_sinusoids_adapts_far_below_its_prior_and_a_pretrained_model():
    generator = torch.Generator().manual_seed(0)
    learner = MAML(MLP(), inner_lr=0.01, inner_steps=1)
    _meta_train(learner, lambda: _sinusoid_batch(25, 10, 10, generator), steps=2000)  # ~8 s
    test = _sinusoid_batch(200, 10, 50, torch.Generator().manual_seed(123))
    before = _evaluate(learner, test, 0)["mse"]
    after = _evaluate(learner, test, 1)["mse"]

    # the baseline of the MAML paper: one model regressed on all tasks, then fine-tuned alike
    pretrained = MLP()
    optimizer = torch.optim.Adam(pretrained.parameters(), lr=1e-3)
    for _ in range(2000):
        batch = _sinusoid_batch(25, 10, 10, generator)
        loss = F.mse_loss(pretrained(batch.support_x), batch.support_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    baseline = _evaluate(MAML(pretrained, inner_lr=0.01), test, 1)["mse"]

    # measured: before 3.01, after 0.89, pretrained and fine-tuned 2.36
    assert after <= 0.5 * before
    assert after <= 0.6 * baseline


@pytest.mark.e2e
def test_maml_on_gaussian_cluster_classes_learns_to_classify_from_one_shot():
    generator = torch.Generator().manual_seed(0)
    learner = MAML(MLP(16, 5, hidden_sizes=(64, 64)), inner_lr=0.5, inner_steps=1)
    test = _cluster_batch(500, 5, 1, 5, torch.Generator().manual_seed(1))
    untrained = _evaluate(learner, test, 1)["accuracy"]
    _meta_train(learner, lambda: _cluster_batch(16, 5, 1, 5, generator), steps=300)  # ~3 s
    trained = _evaluate(learner, test, 1)["accuracy"]
    # measured: 0.938 after training (0.60 untrained; chance 0.20)
    assert trained >= 0.88
    assert trained >= untrained + 0.2
