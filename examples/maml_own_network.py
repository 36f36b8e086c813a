"""MAML with your own network and your own tasks, in a few lines of metalearn's Python API.

The textbook example: a small MLP regresses sine waves ``a * sin(x + p)``; every task is a
``(support_x, support_y, query_x, query_y)`` tuple of tensors. ``MAML`` takes one inner SGD
step on each task's support set; Adam takes the outer step on the query loss after it. On one
CPU thread 1,000 outer steps (about 30 s) lower the mean squared error on 100 held-out tasks,
after one inner step on 10 points, from 4.9 to 1.8 (longer training lowers it further).

    python examples/maml_own_network.py
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from metalearn import MAML, Episode

Task = tuple[Tensor, Tensor, Tensor, Tensor]  # support_x, support_y, query_x, query_y


def sample_task(generator: torch.Generator, k_shot: int = 10, n_query: int = 10) -> Task:
    """Return one sine-wave task: ``k_shot`` support points and ``n_query`` query points."""
    amplitude = 0.1 + 4.9 * torch.rand((), generator=generator)
    phase = math.pi * torch.rand((), generator=generator)
    x = 10 * torch.rand(k_shot + n_query, 1, generator=generator) - 5
    y = amplitude * torch.sin(x + phase)
    return x[:k_shot], y[:k_shot], x[k_shot:], y[k_shot:]


def as_batch(tasks: list[Task]) -> Episode:
    """Stack tuples of tensors into a meta-batch; ``n_way=None`` means regression (MSE loss)."""
    return Episode.stack([Episode(*task) for task in tasks])


def main(steps: int = 1000, meta_batch_size: int = 10, seed: int = 0) -> tuple[float, float]:
    """Meta-train for ``steps`` outer steps; return the held-out query MSE before and after."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    hidden = 40
    model = nn.Sequential(
        nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )
    maml = MAML(model, inner_lr=0.01, inner_steps=1)  # one inner SGD step, second order
    outer = torch.optim.Adam(maml.parameters(), lr=1e-3)

    held_out = as_batch([sample_task(torch.Generator().manual_seed(10**4 + i)) for i in range(100)])
    with torch.no_grad():
        before = maml.meta_loss(held_out)[0].item()  # query MSE after one inner step
    for step in range(1, steps + 1):
        loss, _ = maml.meta_loss(as_batch([sample_task(generator) for _ in range(meta_batch_size)]))
        outer.zero_grad()
        loss.backward()
        outer.step()
        if step % 200 == 0:
            print(f"step {step:4d}: query MSE after one inner step {loss.item():.3f}")
    with torch.no_grad():  # adaptation still takes its inner step (without a second-order graph)
        after = maml.meta_loss(held_out)[0].item()

    # a new task: adapt on its support set, predict its query inputs
    support_x, support_y, query_x, query_y = sample_task(generator)
    fast_weights = maml.adapt(support_x, support_y, n_way=None)
    prediction = maml.predict(fast_weights, query_x)
    print(f"new task: query MSE {nn.functional.mse_loss(prediction, query_y).item():.3f}")
    print(f"held-out tasks: query MSE {before:.3f} before meta-training, {after:.3f} after")
    return before, after


if __name__ == "__main__":
    torch.set_num_threads(1)  # many small operations: one thread is fastest on a CPU
    main()
