"""Episodes shared by the metric-learner tests."""

import torch

from metalearn.episode import Episode


def gaussian_episodes(n_tasks, n_way, n_shot, n_query, generator):
    """Fresh Gaussian classes per task: 4 informative dims, 12 dims of large noise to ignore."""
    n = n_shot + n_query
    centres = torch.randn(n_tasks, n_way, 1, 4, generator=generator)
    signal = centres + 0.3 * torch.randn(n_tasks, n_way, n, 4, generator=generator)
    noise = 2.0 * torch.randn(n_tasks, n_way, n, 12, generator=generator)
    x = torch.cat([signal, noise], dim=-1)
    labels = torch.arange(n_way).expand(n_tasks, n_way)
    support_x, query_x = x[:, :, :n_shot].flatten(1, 2), x[:, :, n_shot:].flatten(1, 2)
    support_y = labels.repeat_interleave(n_shot, dim=1)
    return Episode(support_x, support_y, query_x, labels.repeat_interleave(n_query, dim=1), n_way)


def random_batch(n_tasks=3, n_way=3, n_shot=2, n_query=2, x_shape=(4,), dtype=torch.float64):
    labels = torch.stack([torch.randperm(n_way) for _ in range(n_tasks)])
    return Episode(
        torch.randn(n_tasks, n_way * n_shot, *x_shape, dtype=dtype),
        labels.repeat(1, n_shot),
        torch.randn(n_tasks, n_way * n_query, *x_shape, dtype=dtype),
        labels.repeat(1, n_query),
        n_way,
    )


def train_on_gaussian_episodes(learner, steps=200):
    """Adam-train ``learner`` on 5-way 1-shot Gaussian tasks; return test accuracy before, after.

    The test set is 200 fixed tasks; training draws 4 fresh tasks per step.
    """
    test_batch = gaussian_episodes(200, 5, 1, 5, torch.Generator().manual_seed(123))

    def test_accuracy():
        with torch.no_grad():
            return learner.meta_loss(test_batch, batched=True)[1]["accuracy"].item()

    before = test_accuracy()
    optimizer = torch.optim.Adam(learner.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss, _ = learner.meta_loss(gaussian_episodes(4, 5, 1, 5, generator), batched=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return before, test_accuracy()
