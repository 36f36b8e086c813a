"""convert_batchnorm: a user's ResNet-style network with torch.nn BatchNorm, made MAML-ready."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from metalearn import MAML, Episode
from metalearn.nn import TaskBatchNorm, convert_batchnorm


class Residual(nn.Module):
    """conv -> norm -> ReLU -> conv -> norm, plus the input, then ReLU (a ResNet basic block)."""

    def __init__(self, channels: int, norm: type[nn.Module]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm(channels)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(h)))


def small_resnet(norm: type[nn.Module], n_way: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        norm(4),
        nn.ReLU(),
        Residual(4, norm),
        Residual(4, norm),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, n_way),
    )


def random_batch(n_tasks: int = 2, n_way: int = 3) -> Episode:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n_way).repeat(2)
    episodes = [
        Episode(
            torch.randn(len(labels), 1, 6, 6, generator=generator, dtype=torch.float64),
            labels,
            torch.randn(len(labels), 1, 6, 6, generator=generator, dtype=torch.float64),
            labels,
            n_way,
        )
        for _ in range(n_tasks)
    ]
    return Episode.stack(episodes)


def meta_gradient(model: nn.Module, batch: Episode, batched: bool) -> dict[str, Tensor]:
    learner = MAML(model, inner_lr=0.3, inner_steps=2)  # second order
    learner.zero_grad()
    loss, _ = learner.meta_loss(batch, batched=batched)
    loss.backward()
    return {name: p.grad.clone() for name, p in learner.model.named_parameters()}


def test_maml_refuses_native_batchnorm_and_names_the_conversion():
    with pytest.raises(ValueError, match=r"metalearn\.nn\.convert_batchnorm\(model\)"):
        MAML(small_resnet(nn.BatchNorm2d))


@pytest.mark.parametrize("batched", [True, False])
def test_converted_resnet_has_the_meta_gradient_of_the_hand_written_one(batched):
    torch.manual_seed(0)
    native = small_resnet(nn.BatchNorm2d).double()
    with torch.no_grad():  # non-trivial scales and shifts, so that copying them matters
        for module in native.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    hand_written = small_resnet(TaskBatchNorm).double()
    hand_written.load_state_dict(
        {k: v for k, v in native.state_dict().items() if "running" not in k and "batches" not in k}
    )

    converted = convert_batchnorm(native)

    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in converted.modules())
    assert [name for name, _ in converted.named_parameters()] == [
        name for name, _ in hand_written.named_parameters()
    ]
    assert list(converted.buffers()) == []
    batch = random_batch()
    expected = meta_gradient(hand_written, batch, batched)
    got = meta_gradient(converted, batch, batched)
    for name, grad in expected.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(got[name], grad, rtol=1e-12, atol=1e-14, msg=name)


def test_converted_layer_computes_what_torch_batchnorm_computes_in_training_mode():
    layer = nn.BatchNorm2d(3, eps=1e-3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    converted = convert_batchnorm(layer)

    assert isinstance(converted, TaskBatchNorm)
    assert converted.eps == 1e-3
    torch.testing.assert_close(converted(x), layer.train()(x), rtol=1e-12, atol=1e-12)
    # its own parameters: training the converted model does not move the original's
    assert converted.weight is not None
    assert converted.weight.data_ptr() != layer.weight.data_ptr()


def test_non_affine_and_1d_layers_convert():
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4, affine=False), nn.ReLU())
    converted = convert_batchnorm(model)
    assert isinstance(converted[1], TaskBatchNorm)
    assert converted[1].weight is None
    assert list(converted.parameters()) == list(converted[0].parameters())
