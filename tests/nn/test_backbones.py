import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from torch.testing import assert_close

from metalearn.nn import lean_conv
from metalearn.nn.backbones import MLP, Conv4, ConvBlock, TaskBatchNorm


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: a second thread only adds synchronisation on the shared 2-core machine
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(
    ("kwargs", "image_size", "embedding_dim"),
    [
        ({}, 28, 64),  # Omniglot: 28 -> 14 -> 7 -> 3 -> 1
        ({"in_channels": 3, "hidden_channels": 32, "image_size": 84}, 84, 800),  # 32 * 5 * 5
        ({"strided": True}, 28, 64),  # MAML's Omniglot net: 28 -> 14 -> 7 -> 4 -> 2, mean-pooled
    ],
    ids=["omniglot", "miniimagenet", "strided"],
)
def test_conv4_embeds_and_classifies_with_the_papers_shapes(kwargs, image_size, embedding_dim):
    in_channels = kwargs.get("in_channels", 1)
    x = torch.randn(6, in_channels, image_size, image_size)
    encoder = Conv4(**kwargs)
    assert encoder.embedding_dim == embedding_dim
    assert encoder(x).shape == (6, embedding_dim)
    assert encoder.head is None
    classifier = Conv4(**kwargs, out_features=5)
    assert classifier(x).shape == (6, 5)
    assert classifier.head.in_features == embedding_dim


def test_conv4_has_no_buffers_and_names_its_classifier_head():
    model = Conv4(1, out_features=5)
    assert list(model.buffers()) == []
    assert [n for n, _ in model.named_parameters()][-2:] == ["head.weight", "head.bias"]


def test_conv4_rejects_images_too_small_for_four_blocks():
    with pytest.raises(ValueError, match="image_size=8"):
        Conv4(image_size=8, out_features=5)


def test_mlp_defaults_to_the_1_40_40_1_sinusoid_regressor():
    model = MLP()
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(40, 1), (40,), (40, 40), (40,), (1, 40), (1,)]
    assert model(torch.randn(7, 1)).shape == (7, 1)
    assert MLP(4, 3, hidden_sizes=(8,))(torch.randn(2, 4)).shape == (2, 3)


def test_mlp_without_hidden_layers_is_linear():
    model = MLP(3, 2, hidden_sizes=())
    x = torch.randn(5, 3)
    assert_close(model(x), x @ model.head.weight.T + model.head.bias)


@pytest.mark.parametrize("shape", [(6, 4, 5, 5), (6, 4)], ids=["2d", "1d"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_task_batch_norm_equals_torch_batch_norm_without_running_stats(shape, training):
    native_cls = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
    native = native_cls(4, track_running_stats=False).double().train(training)
    ours = TaskBatchNorm(4).double().train(training)
    with torch.no_grad():
        for module in (native, ours):
            module.weight.copy_(torch.linspace(0.5, 2.0, 4))
            module.bias.copy_(torch.linspace(-1.0, 1.0, 4))
    x = (3 * torch.randn(shape, dtype=torch.float64) + 2).requires_grad_()
    y_native, y_ours = native(x), ours(x)
    assert_close(y_ours, y_native)
    upstream = torch.randn_like(y_native)
    expected = torch.autograd.grad(y_native, [x, native.weight, native.bias], upstream)
    actual = torch.autograd.grad(y_ours, [x, ours.weight, ours.bias], upstream)
    assert_close(actual, expected)


def test_task_batch_norm_without_affine_only_standardises():
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    y = TaskBatchNorm(3, affine=False)(x)
    assert_close(y, F.batch_norm(x, None, None, training=True))
    assert list(TaskBatchNorm(3, affine=False).parameters()) == []


@pytest.fixture(params=["elementary", "conv-kept", "conv-redone-in-slices"])
def recompute_conv(request, monkeypatch):
    """ConvBlock's three paths: small outputs (elementary ops), or large ones (here above 300
    elements) with the conv output kept or the conv redone, in slices of one or two images."""
    if request.param != "elementary":
        monkeypatch.setattr(lean_conv, "_LARGE_NUMEL", 300)
    return request.param == "conv-redone-in-slices"


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("size", [8, 7], ids=["even", "odd"])
def test_conv_block_equals_conv_batchnorm_relu_maxpool_up_to_second_order(
    size, recompute_conv, channels_last
):
    block = ConvBlock(3, 4).double()
    block.recompute_conv, block.channels_last = recompute_conv, channels_last
    with torch.no_grad():  # negative BatchNorm weights exercise the sign folding
        block.norm.weight.copy_(torch.tensor([1.5, -0.7, 0.3, -2.0]))
        block.norm.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    reference = nn.Sequential(
        block.conv, nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)
    ).double()
    reference[1].weight, reference[1].bias = block.norm.weight, block.norm.bias
    x = torch.randn(5, 3, size, size, dtype=torch.float64, requires_grad=True)
    inputs = [x, *block.parameters()]

    def second_order(module):
        y = module(x)
        grads = torch.autograd.grad(y.square().sum(), inputs, create_graph=True)
        mixed = sum((g * torch.cos(torch.arange(g.numel()).view_as(g))).sum() for g in grads)
        return y, grads, torch.autograd.grad(mixed, inputs)

    y, grads, hessian_vector = second_order(block)
    y_ref, grads_ref, hessian_vector_ref = second_order(reference)
    assert y.shape == (5, 4, size // 2, size // 2)
    assert_close(y, y_ref)
    assert_close(grads, grads_ref)
    assert_close(hessian_vector, hessian_vector_ref)


def test_conv_block_reference_path_equals_its_lean_path(recompute_conv):
    # ``lean=False`` is the plain order conv -> TaskBatchNorm -> ReLU -> max-pool
    block = ConvBlock(3, 4).double()
    block.recompute_conv = recompute_conv
    with torch.no_grad():
        block.norm.weight.copy_(torch.tensor([1.5, -0.7, 0.3, -2.0]))
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    outputs = []
    for lean in (True, False):
        block.lean = lean
        y = block(x)
        outputs.append((y, torch.autograd.grad(y.square().sum(), [x, *block.parameters()])))
    assert_close(outputs[0], outputs[1])


@pytest.mark.parametrize("in_channels", [1, 3])
def test_lean_blocks_run_channels_last_and_a_one_channel_input_too(in_channels, recompute_conv):
    # a one-channel input counts as either format; unless made explicitly channels-last, the
    # first block's conv output (the largest) would stay channels-first and pool 7x slower
    block = ConvBlock(in_channels, 8)
    block.recompute_conv = recompute_conv
    y = block(torch.randn(4, in_channels, 8, 8))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert not y.is_contiguous()
    block.channels_last = False
    assert block(torch.randn(4, in_channels, 8, 8)).is_contiguous()


def test_first_block_keeps_no_full_resolution_tensor_for_backward(monkeypatch):
    # the memory saving of ConvBlock's first block: everything saved for backward is smaller
    # than a large conv output (a deeper block keeps the conv output itself)
    monkeypatch.setattr(lean_conv, "_LARGE_NUMEL", 300)
    x = torch.randn(6, 1, 8, 8, requires_grad=True)
    for block, keeps_conv_output in [(ConvBlock(1, 8), False), (ConvBlock(8, 8), True)]:
        assert block.recompute_conv is not keeps_conv_output
        saved: list[int] = []

        def pack(t, saved=saved):
            saved.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            block(x if block.conv.in_channels == 1 else x.expand(-1, 8, -1, -1))
        full_resolution = 6 * 8 * 8 * 8
        assert (max(saved) >= full_resolution) is keeps_conv_output


def test_strided_conv_block_is_conv_batchnorm_relu():
    block = ConvBlock(2, 3, strided=True).double()
    x = torch.randn(4, 2, 9, 9, dtype=torch.float64)
    expected = torch.relu(F.batch_norm(block.conv(x), None, None, training=True))
    assert_close(block(x), expected)
    assert block(x).shape == (4, 3, 5, 5)


def test_second_order_meta_gradient_under_vmap_matches_finite_differences(recompute_conv):
    # PyTorch's native BatchNorm fails this under vmap (0.4% to 2% relative error in float64);
    # the elementary-op TaskBatchNorm must agree with central differences to round-off, and
    # so must ConvBlock's autograd functions.
    torch.manual_seed(1)
    model = Conv4(1, out_features=3, hidden_channels=3, image_size=16).double()
    for block in model.features:
        block.recompute_conv = recompute_conv
    names = [n for n, _ in model.named_parameters()]
    n_tasks, x = 3, torch.randn(3, 12, 1, 16, 16, dtype=torch.float64)
    y = torch.arange(3).repeat(4).expand(n_tasks, -1)

    def task_loss(params, x, y):
        def support_loss(p):
            return F.cross_entropy(functional_call(model, p, (x[:6],)), y[:6])

        grads = torch.func.grad(support_loss)(params)
        fast = {n: params[n] - 0.5 * grads[n] for n in names}
        return F.cross_entropy(functional_call(model, fast, (x[6:],)), y[6:])

    def meta_loss(params):
        return vmap(task_loss, in_dims=(None, 0, 0))(params, x, y).mean()

    params = {n: p.detach() for n, p in model.named_parameters()}
    grads = torch.func.grad(meta_loss)(params)
    eps = 1e-6
    for _ in range(3):
        direction = {n: torch.randn_like(p) for n, p in params.items()}
        plus = meta_loss({n: p + eps * direction[n] for n, p in params.items()})
        minus = meta_loss({n: p - eps * direction[n] for n, p in params.items()})
        numerical = (plus - minus) / (2 * eps)
        analytical = sum((grads[n] * direction[n]).sum() for n in names)
        assert_close(analytical, numerical, rtol=1e-6, atol=1e-9)
