"""Tiny learners and task sources for the training-loop tests (no metalearn.data)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metalearn.algorithms.base import Learner, require_n_way
from metalearn.algorithms.inner import gradient_descent
from metalearn.episode import Episode

N_WAY, N_SHOT, N_QUERY, DIM = 3, 2, 4, 4


class GaussianTasks:
    """Seeded N-way K-shot episodes: each task draws fresh class centres in R^DIM."""

    def __init__(self, seed: int = 0, *, n_way=N_WAY, n_shot=N_SHOT, n_query=N_QUERY, noise=0.5):
        self.n_way, self.n_shot, self.n_query, self.noise = n_way, n_shot, n_query, noise
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> Episode:
        g = self.generator
        centres = 2.0 * torch.randn(self.n_way, DIM, generator=g)
        order = torch.randperm(self.n_way, generator=g)

        def draw(k):
            y = torch.arange(self.n_way).repeat_interleave(k)
            x = centres[y] + self.noise * torch.randn(len(y), DIM, generator=g)
            return x, order[y]

        sx, sy = draw(self.n_shot)
        qx, qy = draw(self.n_query)
        return Episode(sx, sy, qx, qy, self.n_way)

    def sample_batch(self, n_tasks: int) -> Episode:
        return Episode.stack([self.sample() for _ in range(n_tasks)])

    def episodes(self, n: int) -> list[Episode]:
        return [self.sample() for _ in range(n)]

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state) -> None:
        self.generator.set_state(state["generator"])


class TinyProtoNet(Learner[Tensor]):
    """Class means of a linear encoder (with dropout, so training consumes the global RNG)."""

    def __init__(self, dropout: float = 0.2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(DIM, 8), nn.Dropout(dropout))

    def adapt(self, support_x, support_y, n_way):
        one_hot = F.one_hot(support_y, require_n_way(n_way)).to(support_x.dtype)
        return one_hot.T @ self.encoder(support_x) / one_hot.sum(0).unsqueeze(1)

    def predict(self, prototypes, query_x):
        return -(torch.cdist(self.encoder(query_x), prototypes) ** 2)


class TinyMAML(Learner[dict]):
    """A linear classifier adapted by functional SGD; ``eval_inner_steps`` at test time (or
    ``steps``)."""

    batched = False

    def __init__(self, inner_steps: int = 1, eval_inner_steps: int = 2, inner_lr: float = 0.5):
        super().__init__()
        self.model = nn.Linear(DIM, N_WAY)
        self.inner_steps, self.eval_inner_steps, self.inner_lr = (
            inner_steps,
            eval_inner_steps,
            inner_lr,
        )

    def adapt(self, support_x, support_y, n_way, *, steps=None):
        def loss(params):
            logits = torch.func.functional_call(self.model, params, (support_x,))
            return F.cross_entropy(logits, support_y)

        if steps is None:
            steps = self.inner_steps if self.training else self.eval_inner_steps
        return gradient_descent(
            loss, dict(self.model.named_parameters()), steps=steps, lr=self.inner_lr
        )

    def predict(self, fast_params, query_x):
        return torch.func.functional_call(self.model, fast_params, (query_x,))


def clone_params(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
