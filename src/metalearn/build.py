"""Config -> objects: task sources, networks and learners. The only wiring code.

The CLI and the demo call these functions; the library proper never turns names into objects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from metalearn.algorithms import (
    ANIL,
    MAML,
    Learner,
    MatchingNet,
    MetaSGD,
    ProtoNet,
    Reptile,
    SiameseNet,
)
from metalearn.config import RunConfig
from metalearn.data import (
    ClassDataset,
    ImageFolderDataset,
    SinusoidTasks,
    TaskSampler,
    load_omniglot,
)
from metalearn.episode import TaskSource
from metalearn.errors import ConfigError
from metalearn.nn.backbones import MLP, Conv4

__all__ = [
    "Subset",
    "GRADIENT_ALGORITHMS",
    "METRIC_ALGORITHMS",
    "build_dataset",
    "build_learner",
    "build_model",
    "build_tasks",
    "episode_spec",
]

Subset = Literal["train", "val", "test"]

GRADIENT_ALGORITHMS = ("maml", "fomaml", "meta-sgd", "anil", "reptile")
METRIC_ALGORITHMS = ("protonet", "matching", "siamese")


def episode_spec(config: RunConfig, subset: Subset) -> tuple[int, int, int]:
    """Return ``(n_way, n_shot, n_query)`` of the episodes of ``subset``.

    Training episodes follow ``config.data``; validation and test episodes follow
    ``config.eval`` where it sets a value (ProtoNet trains 60-way and tests 5-way).
    """
    data, ev = config.data, config.eval
    if subset == "train":
        return data.n_way, data.n_shot, data.n_query
    return (
        ev.n_way if ev.n_way is not None else data.n_way,
        ev.n_shot if ev.n_shot is not None else data.n_shot,
        ev.n_query if ev.n_query is not None else data.n_query,
    )


def build_dataset(config: RunConfig, subset: Subset) -> ClassDataset:
    """Return the classes of ``subset`` (Omniglot from its archives, or class folders)."""
    data = config.data
    if data.dataset == "omniglot":
        return load_omniglot(
            data.root,
            split=data.split,
            subset=subset,
            image_size=data.image_size,
            cache_dir=data.cache_dir,
        )
    if data.dataset == "folder":
        if data.root is None:
            raise ConfigError("--data.root must name a folder holding train/, val/ and test/")
        return ImageFolderDataset(Path(data.root) / subset, data.image_size)
    raise ConfigError(f"dataset {data.dataset!r} has no classes; it is a regression family")


def build_tasks(config: RunConfig, subset: Subset, *, seed: int | None = None) -> TaskSource:
    """Return the task source of ``subset``: a :class:`TaskSampler` or :class:`SinusoidTasks`.

    ``seed`` defaults to ``config.data.seed`` for training and ``config.eval.seed`` otherwise.
    """
    if seed is None:
        seed = config.data.seed if subset == "train" else config.eval.seed
    n_way, n_shot, n_query = episode_spec(config, subset)
    if config.data.dataset == "sinusoid":
        return SinusoidTasks(n_shot, n_query, seed=seed)
    return TaskSampler(build_dataset(config, subset), n_way, n_shot, n_query, seed=seed)


def build_model(config: RunConfig) -> nn.Module:
    """Return the network: a classifier/regressor for gradient learners, an encoder otherwise."""
    model, data = config.model, config.data
    is_metric = config.algorithm.name in METRIC_ALGORITHMS
    if data.dataset == "sinusoid":
        return MLP(1, 1, hidden_sizes=(model.hidden,) * model.depth)
    if model.backbone == "mlp":
        raise ConfigError("--model.backbone=mlp is for sinusoids; image tasks use conv4")
    return Conv4(
        in_channels=1 if data.dataset == "omniglot" else 3,
        out_features=None if is_metric else data.n_way,
        hidden_channels=model.hidden,
        image_size=data.image_size,
        strided=model.strided,
    )


def build_learner(config: RunConfig) -> Learner[Any]:
    """Return the learner named by ``config.algorithm.name``, on the network of :func:`build_model`.

    Raises:
        ConfigError: if a gradient learner's test episodes have another ``n_way`` than its
            training episodes (its output layer has ``n_way`` units).
    """
    algo = config.algorithm
    model = build_model(config)
    if algo.name in METRIC_ALGORITHMS:
        metric: dict[str, Callable[[], Learner[Any]]] = {
            "protonet": lambda: ProtoNet(model, distance=algo.distance),
            "matching": lambda: MatchingNet(model, fce=algo.fce),
            "siamese": lambda: SiameseNet(model),
        }
        return metric[algo.name]().to(torch.device(config.device))
    if config.data.dataset != "sinusoid" and episode_spec(config, "test")[0] != config.data.n_way:
        raise ConfigError(
            f"{algo.name} has an output layer of n_way={config.data.n_way} units: set "
            "--eval.n_way to the same value (or use a metric learner)"
        )
    kwargs: dict[str, Any] = {
        "inner_lr": algo.inner_lr,
        "inner_steps": algo.inner_steps,
        "eval_inner_steps": algo.eval_inner_steps,
        "vectorize": algo.vectorize,
    }
    gradient: dict[str, Callable[[], Learner[Any]]] = {
        "maml": lambda: MAML(model, **kwargs),
        "fomaml": lambda: MAML(model, first_order=True, **kwargs),
        "meta-sgd": lambda: MetaSGD(model, **kwargs),
        "anil": lambda: ANIL(model, **kwargs),
        "reptile": lambda: Reptile(model, **kwargs),
    }
    return gradient[algo.name]().to(torch.device(config.device))
