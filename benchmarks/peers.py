"""Peer MAML implementations for ``maml_throughput.py``: learn2learn, higher and TorchOpt.

Each peer meta-trains the same network as metalearn's ``Conv4`` (conv3x3 -> BatchNorm without
running statistics -> ReLU -> 2x2 max-pool, four times, then a linear head) on
``synthetic_batch(workload)``, one task at a time with each task's backward at once, as in the
libraries' MAML Omniglot examples; the meta-loss is the mean of the task losses, as ours.

The peers are installed in their own virtual environment, whose interpreter (``PEERS_PYTHON``,
default ``/work/peers-venv/bin/python``) runs their child processes; the parent only reads
this file, so it needs neither the peers nor that environment's packages:

    .venv/bin/python benchmarks/maml_throughput.py --plugin benchmarks/peers.py \
        --impl metalearn learn2learn higher torchopt

Check that the peers' meta-gradients agree with each other and with metalearn's (float64, a
small case, second and first order):

    PYTHONPATH=src /work/peers-venv/bin/python benchmarks/peers.py
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from maml_throughput import N_WAY, Workload, synthetic_batch
from torch import Tensor, nn

PYTHON = os.environ.get("PEERS_PYTHON", "/work/peers-venv/bin/python")

Batch = Sequence[Tensor]  # support_x, support_y, query_x, query_y, stacked over tasks
MetaGrad = Callable[[Batch], None]  # accumulates the meta-gradient into the model's .grad


def conv4(hidden: int = 64) -> nn.Module:
    """Conv4 for 1x28x28 inputs in plain torch.nn, with the parameter names of ours."""
    blocks, c_in = [], 1
    for _ in range(4):
        block = OrderedDict(
            conv=nn.Conv2d(c_in, hidden, 3, padding=1),
            norm=nn.BatchNorm2d(hidden, track_running_stats=False),
            relu=nn.ReLU(),
            pool=nn.MaxPool2d(2),
        )
        blocks.append(nn.Sequential(block))
        c_in = hidden
    # 28 -> 14 -> 7 -> 3 -> 1 pixels: the embedding is `hidden` wide
    head = nn.Linear(hidden, N_WAY)
    return nn.Sequential(
        OrderedDict(features=nn.Sequential(*blocks), flatten=nn.Flatten(), head=head)
    )


def learn2learn_maml(w: Workload, model: nn.Module) -> MetaGrad:
    import learn2learn as l2l

    maml = l2l.algorithms.MAML(model, lr=w.inner_lr, first_order=w.first_order)

    def meta_grad(batch: Batch) -> None:
        support_x, support_y, query_x, query_y = batch
        for t in range(len(support_x)):
            learner = maml.clone()
            for _ in range(w.inner_steps):
                learner.adapt(F.cross_entropy(learner(support_x[t]), support_y[t]))
            (F.cross_entropy(learner(query_x[t]), query_y[t]) / len(support_x)).backward()

    return meta_grad


def higher_maml(w: Workload, model: nn.Module) -> MetaGrad:
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=w.inner_lr)

    def meta_grad(batch: Batch) -> None:
        support_x, support_y, query_x, query_y = batch
        for t in range(len(support_x)):
            with higher.innerloop_ctx(
                model, inner_opt, copy_initial_weights=False, track_higher_grads=not w.first_order
            ) as (fmodel, diffopt):
                for _ in range(w.inner_steps):
                    diffopt.step(F.cross_entropy(fmodel(support_x[t]), support_y[t]))
                loss = F.cross_entropy(fmodel(query_x[t]), query_y[t]) / len(support_x)
                if not w.first_order:
                    loss.backward()
                    continue
                # without higher grads the fast weights are detached leaves, so the first-order
                # meta-gradient is their gradient, added to the initial weights' by hand
                fast_grads = torch.autograd.grad(loss, list(fmodel.parameters()))
                for p, g in zip(model.parameters(), fast_grads, strict=True):
                    p.grad = g if p.grad is None else p.grad + g

    return meta_grad


def torchopt_functional_maml(w: Workload, model: nn.Module) -> MetaGrad:
    import torchopt

    inner_opt = torchopt.sgd(lr=w.inner_lr)
    names = [name for name, _ in model.named_parameters()]

    def loss_at(params: tuple[Tensor, ...], x: Tensor, y: Tensor) -> Tensor:
        logits = torch.func.functional_call(model, dict(zip(names, params, strict=True)), (x,))
        return F.cross_entropy(logits, y)

    def meta_grad(batch: Batch) -> None:
        support_x, support_y, query_x, query_y = batch
        meta_params = tuple(model.parameters())
        for t in range(len(support_x)):
            params, state = meta_params, inner_opt.init(meta_params)
            for _ in range(w.inner_steps):
                loss = loss_at(params, support_x[t], support_y[t])
                grads = torch.autograd.grad(loss, params, create_graph=not w.first_order)
                updates, state = inner_opt.update(grads, state, inplace=False)
                params = torchopt.apply_updates(params, updates, inplace=False)
            (loss_at(params, query_x[t], query_y[t]) / len(support_x)).backward()

    return meta_grad


def torchopt_maml(w: Workload, model: nn.Module) -> MetaGrad:
    import torchopt

    if w.first_order:  # MetaSGD always differentiates through its steps
        return torchopt_functional_maml(w, model)
    inner_opt = torchopt.MetaSGD(model, lr=w.inner_lr)

    def meta_grad(batch: Batch) -> None:
        support_x, support_y, query_x, query_y = batch
        model_state = torchopt.extract_state_dict(model, by="reference", detach_buffers=True)
        opt_state = torchopt.extract_state_dict(inner_opt, by="reference")
        for t in range(len(support_x)):
            for _ in range(w.inner_steps):
                inner_opt.step(F.cross_entropy(model(support_x[t]), support_y[t]))
            (F.cross_entropy(model(query_x[t]), query_y[t]) / len(support_x)).backward()
            torchopt.recover_state_dict(model, model_state)
            torchopt.recover_state_dict(inner_opt, opt_state)

    return meta_grad


PEERS: dict[str, Callable[[Workload, nn.Module], MetaGrad]] = {
    "learn2learn": learn2learn_maml,
    "higher": higher_maml,
    "torchopt": torchopt_maml,  # MetaSGD (second order), the functional API for first order
    "torchopt-functional": torchopt_functional_maml,
}


def _make_step(peer: Callable[[Workload, nn.Module], MetaGrad]) -> Callable:
    def make_step(w: Workload) -> Callable[[], None]:
        model = conv4()
        meta_grad = peer(w, model)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = synthetic_batch(w)

        def step() -> None:
            optimizer.zero_grad()
            meta_grad(batch)
            optimizer.step()

        return step

    make_step.python = PYTHON  # type: ignore[attr-defined]  # read by maml_throughput.py
    return make_step


IMPLEMENTATIONS = {name: _make_step(peer) for name, peer in PEERS.items()}


def metalearn_grad(w: Workload, init: dict[str, Tensor], batch: Batch, hidden: int) -> Tensor:
    from metalearn.algorithms.maml import MAML
    from metalearn.episode import Episode
    from metalearn.nn.backbones import Conv4

    model = Conv4(1, out_features=N_WAY, hidden_channels=hidden).double()
    model.load_state_dict(init)
    learner = MAML(model, inner_lr=w.inner_lr, inner_steps=w.inner_steps, first_order=w.first_order)
    learner.meta_loss(Episode(*batch, N_WAY))[0].backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def check(hidden: int = 8) -> None:
    """Print how far each meta-gradient is from learn2learn's on a small float64 case."""
    torch.set_num_threads(1)
    for first_order in (False, True):
        w = Workload(n_query=2, inner_steps=2, first_order=first_order, meta_batch_size=3)
        torch.manual_seed(0)
        init = conv4(hidden).double().state_dict()
        for value in init.values():  # nonzero BN shifts, some negative BN scales
            value.add_(0.5 * torch.randn_like(value))
        batch = [x.double() if x.is_floating_point() else x for x in synthetic_batch(w)]
        grads = {}
        for name, peer in PEERS.items():
            model = conv4(hidden).double()
            model.load_state_dict(init)
            peer(w, model)(batch)
            grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
        try:
            grads["metalearn"] = metalearn_grad(w, init, batch, hidden)
        except ImportError:
            print("metalearn not importable: run with PYTHONPATH=src to compare with it")
        ref = grads["learn2learn"]
        for name, g in grads.items():
            print(
                f"{'first' if first_order else 'second'} order, {name} vs learn2learn: "
                f"max |diff| = {(g - ref).abs().max():.2e}, max |grad| = {ref.abs().max():.2e}"
            )


if __name__ == "__main__":
    check()
