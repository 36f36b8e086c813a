"""Config -> objects: task sources, networks and learners. The only wiring code.

The CLI and the demo call these functions; the library proper never turns names into objects.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch import nn

from metalearn.algorithms import Learner
from metalearn.applications.transfer import ClassBatches
from metalearn.config import RunConfig
from metalearn.config_checks import config_device
from metalearn.data import (
    ClassDataset,
    ImageFolderDataset,
    SinusoidTasks,
    TaskSampler,
    load_omniglot,
)
from metalearn.data.folders import check_disjoint_classes, folder_channels
from metalearn.data.transforms import Channels
from metalearn.episode import TaskSource
from metalearn.errors import ConfigError
from metalearn.nn.backbones import MLP, Conv4
from metalearn.registry import ALGORITHMS, get_algorithm

if TYPE_CHECKING:  # metalearn.rl is imported for meta-RL runs only (gymnasium)
    from metalearn.rl.learner import MetaRLLearner

__all__ = [
    "image_channels",
    "Subset",
    "METRIC_ALGORITHMS",
    "TRANSFER_ALGORITHMS",
    "RL_ENV_IDS",
    "build_dataset",
    "build_learner",
    "build_model",
    "build_tasks",
    "episode_spec",
    "is_rl",
    "resolve_channels",
    "subset_seed",
]

Subset = Literal["train", "val", "test"]

# the built-in algorithms of each kind (metalearn.registry has every registered one)
METRIC_ALGORITHMS = tuple(name for name, a in ALGORITHMS.items() if a.kind == "metric")
TRANSFER_ALGORITHMS = tuple(name for name, a in ALGORITHMS.items() if a.kind == "transfer")
"""Plain classifiers on every training class, with a new head fitted per episode (Chen et al.)."""
RL_ENV_IDS = {
    "navigation": "metalearn/Navigation2D-v0",
    "cheetah-vel": "metalearn/HalfCheetahVel-v0",
    "cheetah-dir": "metalearn/HalfCheetahDir-v0",
}
"""Meta-RL dataset name -> its registered Gymnasium id."""


def is_rl(config: RunConfig) -> bool:
    """Whether ``config`` names a meta-RL task family."""
    return config.data.dataset in RL_ENV_IDS


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
    """Return the classes of ``subset`` (Omniglot from its archives, or class folders).

    Omniglot's training classes are those of ``data.train_classes`` (``trainval``: the
    training and validation classes together).

    Class folders are ``root/<subset>/<class>/<images>``; ``val/`` and ``test/`` must not share
    a class name (validation would choose the best checkpoint on test classes).
    """
    data = config.data
    if data.dataset == "omniglot":
        return load_omniglot(
            data.root,
            split=data.split,
            subset=data.train_classes if subset == "train" else subset,
            image_size=data.image_size,
            cache_dir=data.cache_dir,
        )
    if data.dataset == "folder":
        root = _folder_root(config)
        if subset != "train":
            check_disjoint_classes(root / "val", root / "test")
        return ImageFolderDataset(root / subset, data.image_size, channels=image_channels(config))
    raise ConfigError(f"dataset {data.dataset!r} has no classes; it is a regression family")


def subset_seed(config: RunConfig, subset: Subset) -> int:
    """Return the seed of ``subset``'s tasks: ``data.seed`` for training, ``eval.seed`` for test.

    Validation uses ``eval.seed + 1``. Sinusoid and RL tasks of every subset come from one
    family, so one seed for validation and test made the validation episodes the first test
    episodes, and the best checkpoint was chosen on test data. An evaluation episode's
    generator is seeded with a 64-bit mix of ``(seed, index)`` that differs for all
    ``(eval.seed + 1, i)`` and ``(eval.seed, j)``; torch keeps 32 bits of it, so two episodes
    coincide with a chance of 2**-32 per pair (none among the presets' sets, see the tests).
    """
    if subset == "train":
        return config.data.seed
    return config.eval.seed + int(subset == "val")


def build_tasks(config: RunConfig, subset: Subset, *, seed: int | None = None) -> TaskSource:
    """Return the task source of ``subset``: episodes, sinusoids, or an RL task distribution.

    ``seed`` defaults to :func:`subset_seed`, so validation and test never share a task.
    """
    if seed is None:
        seed = subset_seed(config, subset)
    if is_rl(config):
        from metalearn.rl import TaskDistribution  # gymnasium is imported for RL runs only

        return TaskDistribution(_env_id(config), seed=seed, env_kwargs=_env_kwargs(config))
    if subset == "train" and config.algorithm.name in TRANSFER_ALGORITHMS:
        return _class_batches(config, seed)
    n_way, n_shot, n_query = episode_spec(config, subset)
    if config.data.dataset == "sinusoid":
        return SinusoidTasks(n_shot, n_query, seed=seed)
    return TaskSampler(build_dataset(config, subset), n_way, n_shot, n_query, seed=seed)


def _class_batches(config: RunConfig, seed: int) -> ClassBatches:
    """Labelled mini-batches over every training class (Baseline/Baseline++ training)."""
    if config.data.dataset == "sinusoid":
        raise ConfigError(f"{config.algorithm.name} classifies images; sinusoids are regression")
    batches = ClassBatches(build_dataset(config, "train"), seed)
    if config.algorithm.n_classes < batches.n_classes:
        raise ConfigError(
            f"the training set has {batches.n_classes} classes: set --algorithm.n_classes="
            f"{batches.n_classes} (now {config.algorithm.n_classes})"
        )
    return batches


def image_channels(config: RunConfig) -> Channels:
    """Return the channels of the run's images (the network's input channels).

    ``data.channels`` if set, else 1 for Omniglot and, for class folders, 1 if every image
    under ``train/``, ``val/`` and ``test/`` is grey, else 3.

    Raises:
        ConfigError: for ``--data.channels=3`` with Omniglot (grey drawings), or class folders
            without ``--data.root``.
    """
    data = config.data
    if data.dataset == "omniglot":
        if data.channels not in (None, 1):
            raise ConfigError(f"--data.channels={data.channels}: Omniglot images have 1 channel")
        return 1
    if data.channels is not None:
        return data.channels
    if data.dataset == "folder":
        root = _folder_root(config)
        return folder_channels([root / subset for subset in ("train", "val", "test")])
    return 1


def resolve_channels(config: RunConfig) -> RunConfig:
    """Return ``config`` with ``data.channels`` set for class folders (read from the files).

    The run folder's ``config.json`` then says how many channels the network takes, so
    ``evaluate``, ``adapt`` and ``predict`` need not read the training images again.
    """
    if config.data.dataset != "folder" or config.data.channels is not None:
        return config
    data = dataclasses.replace(config.data, channels=image_channels(config))
    return dataclasses.replace(config, data=data)


def _folder_root(config: RunConfig) -> Path:
    if config.data.root is None:
        raise ConfigError("--data.root must name a folder holding train/, val/ and test/")
    return Path(config.data.root)


def build_model(config: RunConfig) -> nn.Module:
    """Return the network: a classifier/regressor for gradient learners, an encoder otherwise."""
    model, data = config.model, config.data
    # metric and transfer learners embed: the network is an encoder
    is_metric = get_algorithm(config.algorithm.name).kind != "gradient"
    if data.dataset == "sinusoid":
        return MLP(1, 1, hidden_sizes=(model.hidden,) * model.depth)
    if model.backbone == "mlp":
        raise ConfigError("--model.backbone=mlp is for sinusoids; image tasks use conv4")
    return Conv4(
        in_channels=image_channels(config),
        out_features=None if is_metric else data.n_way,
        hidden_channels=model.hidden,
        image_size=data.image_size,
        strided=model.strided,
    )


def build_learner(config: RunConfig) -> Learner[Any] | MetaRLLearner:
    """Return the learner named by ``config.algorithm.name``, on the network of :func:`build_model`.

    The name is looked up in :mod:`metalearn.registry`, whose entry builds the learner.

    For a meta-RL dataset it is no :class:`~metalearn.algorithms.base.Learner` but a
    :class:`~metalearn.rl.learner.MetaRLLearner` (MAML-TRPO; ``fomaml``: first order) on a
    Gaussian MLP policy, which the training loop updates through its ``meta_update`` hook.

    Raises:
        ConfigError: if a gradient learner's test episodes have another ``n_way`` than its
            training episodes (its output layer has ``n_way`` units), or if a meta-RL run
            names another algorithm than maml or fomaml, or if the name is not registered.
    """
    if is_rl(config):
        return _build_rl_learner(config)
    algorithm = get_algorithm(config.algorithm.name)
    model = build_model(config)
    if (
        algorithm.kind == "gradient"
        and config.data.dataset != "sinusoid"
        and episode_spec(config, "test")[0] != config.data.n_way
    ):
        raise ConfigError(
            f"{algorithm.name} has an output layer of n_way={config.data.n_way} units: set "
            "--eval.n_way to the same value (or use a metric learner)"
        )
    learner = algorithm.build(model, config)
    if config.algorithm.chunk_size is not None:
        learner.chunk_size = config.algorithm.chunk_size
    return learner.to(config_device(config))


def _env_id(config: RunConfig) -> str:
    return RL_ENV_IDS[config.data.dataset]


def _env_kwargs(config: RunConfig) -> dict[str, Any]:
    return {"reward": config.rl.reward} if config.data.dataset == "navigation" else {}


def _build_rl_learner(config: RunConfig) -> MetaRLLearner:
    """MAML-TRPO on a Gaussian MLP policy of ``model.depth`` layers of ``model.hidden`` units."""
    from metalearn.rl import GaussianMLPPolicy, MetaRLLearner, TrajectorySampler

    algo, rl = config.algorithm, config.rl
    if algo.name not in ("maml", "fomaml"):
        raise ConfigError(
            f"--algorithm.name={algo.name} has no meta-RL version: use maml or fomaml"
        )
    if config_device(config).type != "cpu":
        raise ConfigError(f"--device={config.device}: meta-RL rollouts run on cpu only")
    sampler = TrajectorySampler(_env_id(config), rl.trajectories, env_kwargs=_env_kwargs(config))
    hidden = (config.model.hidden,) * config.model.depth
    policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, hidden, activation=rl.activation)
    return MetaRLLearner(
        policy,
        sampler,
        inner_lr=algo.inner_lr,
        inner_steps=algo.inner_steps,
        first_order=algo.name == "fomaml",
        gamma=rl.gamma,
        gae_lambda=rl.gae_lambda,
        max_kl=rl.max_kl,
    )
