"""Config -> objects: task sources, networks and learners. The only wiring code.

The CLI and the demo call these functions; the library proper never turns names into objects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

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
from metalearn.config import RunConfig, config_device
from metalearn.data import (
    ClassDataset,
    ImageFolderDataset,
    SinusoidTasks,
    TaskSampler,
    load_omniglot,
)
from metalearn.data.transforms import Channels
from metalearn.episode import TaskSource
from metalearn.errors import ConfigError
from metalearn.nn.backbones import MLP, Conv4

__all__ = [
    "image_channels",
    "Subset",
    "GRADIENT_ALGORITHMS",
    "METRIC_ALGORITHMS",
    "RL_ENV_IDS",
    "build_dataset",
    "build_learner",
    "build_model",
    "build_tasks",
    "episode_spec",
    "is_rl",
]

Subset = Literal["train", "val", "test"]

GRADIENT_ALGORITHMS = ("maml", "fomaml", "meta-sgd", "anil", "reptile")
METRIC_ALGORITHMS = ("protonet", "matching", "siamese")
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
    """Return the task source of ``subset``: episodes, sinusoids, or an RL task distribution.

    ``seed`` defaults to ``config.data.seed`` for training and ``config.eval.seed`` otherwise;
    RL validation uses ``config.eval.seed + 1``, since its tasks come from the one family.
    """
    if seed is None:
        seed = config.data.seed if subset == "train" else config.eval.seed
        seed += int(subset == "val" and is_rl(config))
    if is_rl(config):
        from metalearn.rl import TaskDistribution  # gymnasium is imported for RL runs only

        return TaskDistribution(_env_id(config), seed=seed, env_kwargs=_env_kwargs(config))
    n_way, n_shot, n_query = episode_spec(config, subset)
    if config.data.dataset == "sinusoid":
        return SinusoidTasks(n_shot, n_query, seed=seed)
    return TaskSampler(build_dataset(config, subset), n_way, n_shot, n_query, seed=seed)


def image_channels(config: RunConfig) -> Channels:
    """Channels of the run's images: 1 for Omniglot, 3 for class folders."""
    return 1 if config.data.dataset == "omniglot" else 3


def build_model(config: RunConfig) -> nn.Module:
    """Return the network: a classifier/regressor for gradient learners, an encoder otherwise."""
    model, data = config.model, config.data
    is_metric = config.algorithm.name in METRIC_ALGORITHMS
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


def build_learner(config: RunConfig) -> Learner[Any]:
    """Return the learner named by ``config.algorithm.name``, on the network of :func:`build_model`.

    For a meta-RL dataset it is a ``MetaRLLearner`` (MAML-TRPO; ``fomaml``: first order) on a
    Gaussian MLP policy, which the training loop updates through its ``meta_update`` hook.

    Raises:
        ConfigError: if a gradient learner's test episodes have another ``n_way`` than its
            training episodes (its output layer has ``n_way`` units), or if a meta-RL run
            names another algorithm than maml or fomaml.
    """
    algo = config.algorithm
    if is_rl(config):
        return _build_rl_learner(config)  # type: ignore[return-value]
    model = build_model(config)
    if algo.name in METRIC_ALGORITHMS:
        metric: dict[str, Callable[[], Learner[Any]]] = {
            "protonet": lambda: ProtoNet(model, distance=algo.distance),
            "matching": lambda: MatchingNet(
                model, fce=algo.fce, fce_steps=algo.fce_steps, scale=algo.attention_scale
            ),
            "siamese": lambda: SiameseNet(model),
        }
        return metric[algo.name]().to(config_device(config))
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
    maml_plus_plus: dict[str, Any] = {
        "per_step_lrs": algo.per_step_lrs,
        "multi_step_loss": algo.multi_step_loss,
        "first_order_iterations": algo.first_order_iterations,
    }
    if algo.name not in ("maml", "fomaml") and any(maml_plus_plus.values()):
        raise ConfigError(
            "--algorithm.per_step_lrs, --algorithm.multi_step_loss and "
            "--algorithm.first_order_iterations are MAML++ options of maml and fomaml, not of "
            f"{algo.name}"
        )
    gradient: dict[str, Callable[[], Learner[Any]]] = {
        "maml": lambda: MAML(model, **kwargs, **maml_plus_plus),
        "fomaml": lambda: MAML(model, first_order=True, **kwargs, **maml_plus_plus),
        "meta-sgd": lambda: MetaSGD(model, **kwargs),
        "anil": lambda: ANIL(model, **kwargs),
        "reptile": lambda: Reptile(model, **kwargs),
    }
    return gradient[algo.name]().to(config_device(config))


def _env_id(config: RunConfig) -> str:
    return RL_ENV_IDS[config.data.dataset]


def _env_kwargs(config: RunConfig) -> dict[str, Any]:
    return {"reward": config.rl.reward} if config.data.dataset == "navigation" else {}


def _build_rl_learner(config: RunConfig) -> nn.Module:
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
