"""One meta-step of MAML, ProtoNet and MAML-TRPO, in float64, saved as ``OUT/<case>-<rank>.pt``.

Run with plain ``python`` for the single-process step, or under ``torchrun`` for the
data-parallel one (each rank saves what it holds after the step).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from metalearn.algorithms import MAML, ProtoNet
from metalearn.data import TaskSampler, gaussian_clusters
from metalearn.episode import Episode
from metalearn.nn.backbones import MLP
from metalearn.training import TrainConfig, meta_train
from metalearn.training.distributed import DataParallel

BATCH = 4
# SGD: Adam's first step is about lr * sign(gradient), blind to the gradient's scale
ONE_STEP = TrainConfig(
    steps=1, meta_batch_size=BATCH, optimizer="sgd", outer_lr=0.5, eval_every=0, progress=False
)


class Float64Tasks(TaskSampler):
    """A task sampler whose inputs are float64 (the clusters are drawn in float32)."""

    def sample_batch(self, n_tasks: int) -> Episode:
        return super().sample_batch(n_tasks).to(dtype=torch.float64)


def snapshot(learner: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().clone() for k, v in learner.state_dict().items()}


def gradient_step(learner: nn.Module, parallel: DataParallel | None) -> dict[str, torch.Tensor]:
    tasks = Float64Tasks(gaussian_clusters(10, 8, 4), n_way=5, n_shot=2, n_query=3, seed=3)
    initial = snapshot(learner, "initial.")
    result = meta_train(learner, tasks, ONE_STEP, parallel=parallel)
    return {**initial, **snapshot(learner), "loss": torch.tensor(result.train_metrics["loss"])}


def maml(parallel: DataParallel | None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    learner = MAML(MLP(4, 5, (16, 16)), inner_lr=0.4, inner_steps=2)  # second order
    return gradient_step(learner, parallel)


def protonet(parallel: DataParallel | None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return gradient_step(ProtoNet(MLP(4, 8, (16,))), parallel)


def maml_trpo(parallel: DataParallel | None) -> dict[str, torch.Tensor]:
    from metalearn.rl import GaussianMLPPolicy, TaskDistribution, TrajectorySampler
    from metalearn.rl.learner import MetaRLLearner

    env = "metalearn/Navigation2D-v0"
    sampler = TrajectorySampler(env, 4, env_kwargs={"max_episode_steps": 20})
    tasks = TaskDistribution(env, seed=1).sample_batch(BATCH)
    torch.manual_seed(0)
    learner = MetaRLLearner(GaussianMLPPolicy(2, 2, (16, 16)), sampler)
    data, _ = learner.collect(tasks)  # the whole batch's rollouts, the same on every rank
    if parallel is not None:
        part = parallel.part(BATCH)
        data = torch.utils._pytree.tree_map(lambda t: t[part.start : part.stop], data)
        learner.all_reduce_mean = parallel.all_reduce_mean
    initial = snapshot(learner, "initial.")
    metrics = learner.trpo_update(data)
    sampler.close()
    kept = {name: metrics[name] for name in ("loss", "loss_after", "kl", "accepted")}
    return {**initial, **snapshot(learner), **kept}


def maml_trpo_training(parallel: DataParallel | None) -> dict[str, torch.Tensor]:
    """Two MAML-TRPO steps of ``meta_train``: each rank rolls out its own share of the tasks."""
    from metalearn.rl import GaussianMLPPolicy, TaskDistribution, TrajectorySampler
    from metalearn.rl.learner import MetaRLLearner

    env = "metalearn/Navigation2D-v0"
    sampler = TrajectorySampler(env, 4, env_kwargs={"max_episode_steps": 20})
    torch.manual_seed(0)
    learner = MetaRLLearner(GaussianMLPPolicy(2, 2, (16, 16)), sampler)
    initial = snapshot(learner, "initial.")
    cfg = TrainConfig(steps=2, meta_batch_size=BATCH, eval_every=0, progress=False)
    result = meta_train(learner, TaskDistribution(env, seed=1), cfg, parallel=parallel)
    sampler.close()
    kept = ("loss", "loss_after", "kl", "accepted", "return_pre", "return_post")
    metrics = {k: torch.tensor(result.train_metrics[k]) for k in kept}
    return {**initial, **snapshot(learner), **metrics}


def rank_streams(parallel: DataParallel | None) -> dict[str, torch.Tensor]:
    """A draw inside :meth:`DataParallel.rank_rng` and one after it."""
    torch.manual_seed(0)
    if parallel is None:
        return {}
    with parallel.rank_rng():
        inside = torch.rand(3)
    return {"inside": inside, "after": torch.rand(3)}


def shards(parallel: DataParallel | None) -> dict[str, torch.Tensor]:
    """This rank's slice of a meta-batch whose task ``i`` holds ``i``, as what the loop sees."""
    seen: list[torch.Tensor] = []

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(()))

        def meta_loss(self, batch: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            seen.append(batch.support_x[:, 0].clone())
            return self.weight * batch.support_x.sum(), {}

    class Counting:
        def sample_batch(self, n_tasks: int) -> Episode:
            x = torch.arange(float(n_tasks)).view(n_tasks, 1).expand(n_tasks, 3)
            y = torch.zeros(n_tasks, 3, dtype=torch.long)
            return Episode(x, y, x, y, 2)

        def state_dict(self) -> dict[str, object]:
            return {}

        def load_state_dict(self, state: dict[str, object]) -> None:
            pass

    cfg = TrainConfig(steps=1, meta_batch_size=BATCH, eval_every=0, progress=False)
    meta_train(Recorder(), Counting(), cfg, parallel=parallel)
    tasks = ["a", "b", "c", "d"]
    listed = tasks if parallel is None else parallel.shard(tasks)
    return {"tasks": seen[0], "listed": torch.tensor([tasks.index(t) for t in listed])}


def evaluation(parallel: DataParallel | None) -> dict[str, torch.Tensor]:
    """A meta-test sweep over 7 episodes (an uneven split), shared out when ``parallel``."""
    from metalearn.training import meta_test

    torch.manual_seed(0)
    learner = MAML(MLP(4, 5, (16, 16)), inner_lr=0.4, inner_steps=1)
    tasks = Float64Tasks(gaussian_clusters(10, 8, 4), n_way=5, n_shot=2, n_query=3, seed=3)
    episodes = (e.to(dtype=torch.float64) for e in tasks.episodes(7))
    options = {"inner_steps": [0, 1, 3], "batch_size": 2}
    if parallel is None:
        result = meta_test(learner, episodes, **options)
    else:
        result = parallel.meta_test(learner, episodes, 7, **options)
    return {"values": result.values, **{f"steps{k}": v for k, v in result.by_steps.items()}}


def main(out: Path) -> None:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    parallel = DataParallel.from_env()
    rank = 0 if parallel is None else parallel.rank
    cases = (maml, protonet, maml_trpo, maml_trpo_training, rank_streams, shards, evaluation)
    for case in cases:
        torch.save(case(parallel), out / f"{case.__name__}-{rank}.pt")
    if parallel is not None:
        parallel.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
