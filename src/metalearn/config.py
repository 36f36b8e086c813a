"""Run configuration as frozen dataclasses, one per section, and their JSON form.

Every field carries a docstring, which is its ``--help`` text. The paper settings are presets
of these (:mod:`metalearn.presets`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from metalearn.errors import ConfigError
from metalearn.training.settings import TrainConfig
from metalearn.utils.devices import DeviceError, check_device_name, resolve_device

__all__ = [
    "AlgorithmConfig",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "RLConfig",
    "RunConfig",
    "TrainConfig",
    "check_config",
    "config_device",
    "to_dict",
    "from_dict",
]


@dataclass(frozen=True)
class DataConfig:
    """Where tasks come from, and the shape of the training episodes."""

    dataset: Literal[
        "omniglot", "sinusoid", "folder", "navigation", "cheetah-vel", "cheetah-dir"
    ] = "omniglot"
    """Task family: Omniglot, MAML's sinusoids, ``root/{train,val,test}/<class>/`` folders, or
    a meta-RL family (MAML's 2D navigation, HalfCheetah velocity or direction; see ``rl``)."""
    root: str | None = None
    """Data root holding ``omniglot/`` (or the class folders); else ``$METALEARN_DATA``."""
    split: Literal["vinyals", "lake", "maml"] = "vinyals"
    """Omniglot class split (see ``metalearn.data.load_omniglot``)."""
    image_size: int = 28
    """Side of the square images fed to the network."""
    channels: Literal[1, 3] | None = None
    """Image channels fed to the network: 1 (grey) or 3 (RGB); ``None``: Omniglot 1, class
    folders what their files hold (1 if every image is grey or 1-bit, else 3). Transparent
    pixels are painted white and palettes converted."""
    n_way: int = 5
    """Classes per training episode (ignored for regression)."""
    n_shot: int = 1
    """Support examples per class in training episodes (support points for regression)."""
    n_query: int = 15
    """Query examples per class in training episodes (query points for regression)."""
    cache_dir: str | None = None
    """Writable cache of decoded images; default ``$METALEARN_CACHE`` or ``~/.cache/metalearn``."""
    seed: int = 0
    """Seed of the training episode stream."""


@dataclass(frozen=True)
class ModelConfig:
    """The network: an encoder for metric learners, a classifier or regressor otherwise."""

    backbone: Literal["conv4", "mlp"] = "conv4"
    """``conv4``: the 4-block conv net of the papers; ``mlp``: a ReLU MLP (sinusoids, clusters)."""
    hidden: int = 64
    """Filters per conv block (64 for Omniglot), or the width of each MLP hidden layer."""
    depth: int = 2
    """Hidden layers of the MLP."""
    strided: bool = False
    """Conv4 with stride-2 convs instead of max-pooling (MAML's Omniglot network)."""


@dataclass(frozen=True)
class AlgorithmConfig:
    """The meta-learning algorithm and its own hyper-parameters."""

    name: str = "maml"
    """Algorithm: a name in :data:`metalearn.registry.ALGORITHMS` (maml, fomaml, meta-sgd, anil,
    reptile, protonet, matching, siamese, and any registered one)."""
    inner_lr: float = 0.4
    """Inner learning rate (initial value of the learned rates for Meta-SGD)."""
    inner_steps: int = 1
    """Inner gradient steps during meta-training."""
    eval_inner_steps: int | None = None
    """Inner gradient steps at meta-test time; ``None``: as in training."""
    distance: Literal["euclidean", "cosine"] = "euclidean"
    """ProtoNet distance."""
    fce: bool = False
    """Matching Networks: Full Context Embeddings (bidirectional LSTM + attention LSTM)."""
    fce_steps: int = 1
    """Matching Networks with ``fce``: processing steps of the query attention LSTM."""
    attention_scale: float = 1.0
    """Matching Networks: inverse temperature of the softmax over cosine similarities (1 in
    the paper; 10 trained far better on Omniglot, see BENCHMARKS.md)."""
    per_step_lrs: bool = False
    """MAML/FOMAML: MAML++'s learned learning rate per adapted tensor and inner step (LSLR)."""
    multi_step_loss: int = 0
    """MAML/FOMAML: MAML++'s multi-step loss (MSL), annealed to the last step over this many
    meta-iterations; 0: off."""
    first_order_iterations: int = 0
    """MAML: MAML++'s derivative-order annealing (DA), first order for this many
    meta-iterations, then second order; 0: off."""
    batched: bool | None = None
    """Tasks of a meta-batch run together (``true``) or in a loop (``false``); ``None``: the
    learner's measured default."""
    n_classes: int = 0
    """Baseline/Baseline++: classes of the classifier trained on every training class at once
    (Omniglot's Vinyals split: 4,112); 0: no trained head (fine-tune another run's encoder)."""
    finetune_lr: float = 0.01
    """Baseline/Baseline++: SGD learning rate of each episode's new head (Chen et al.: 0.01,
    with momentum 0.9, dampening 0.9 and weight decay 1e-3)."""
    finetune_epochs: int = 100
    """Baseline/Baseline++: epochs over the support set of each episode's head fit."""
    finetune_batch_size: int = 4
    """Baseline/Baseline++: support examples per SGD step of the head fit."""
    finetune_encoder: bool = False
    """Baseline/Baseline++: fine-tune (a copy of) the whole network on each support set too."""
    cosine_scale: float | None = None
    """Baseline++: logit scale of the cosine heads; ``None``: 2 up to 200 classes, else 10."""
    keep_head: bool = False
    """Baseline/Baseline++: predict with the trained head (a ``metalearn finetune`` model)."""


@dataclass(frozen=True)
class EvalConfig:
    """Meta-test protocol: a fixed set of episodes every learner is scored on."""

    episodes: int = 600
    """Test episodes (600 in MAML, 1,000 in ProtoNets)."""
    n_way: int | None = None
    """Classes per test episode; ``None``: as in training."""
    n_shot: int | None = None
    """Support examples per class at test time; ``None``: as in training."""
    n_query: int | None = None
    """Query examples per class at test time; ``None``: as in training."""
    seed: int = 1234
    """Seed of the fixed test (and validation) episodes."""
    val_episodes: int = 100
    """Validation episodes scored every ``train.eval_every`` steps (0: no validation)."""
    batch_size: int = 16
    """Episodes scored together."""
    transductive: bool = True
    """Normalise each episode's queries with their own batch statistics, as the papers' numbers
    do; ``false``: inductive, each query alone with its support set's statistics (as
    ``metalearn predict`` serves them)."""
    inner_steps: tuple[int, ...] = ()
    """Also report accuracy/MSE after each of these numbers of adaptation steps.

    Meta-RL reads ``episodes`` and ``val_episodes`` as numbers of tasks, and reports the mean
    return after every number of steps up to the largest of these."""


@dataclass(frozen=True)
class RLConfig:
    """Meta-RL: rollouts, returns and the TRPO meta-update (``model`` sizes the policy MLP)."""

    trajectories: int = 20
    """Trajectories per task and rollout, for each adaptation step and the post-update one."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE's lambda (1: returns minus the linear baseline, as in MAML)."""
    max_kl: float = 0.01
    """TRPO's trust region: the bound on the mean KL of each meta-update."""
    activation: Literal["relu", "tanh"] = "relu"
    """Nonlinearity of the policy MLP."""
    reward: Literal["distance", "squared"] = "distance"
    """2D navigation reward: minus the distance to the goal (MAML's code) or its square."""


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, resolved: the object saved as ``config.json``."""

    name: str = "custom"
    """Preset name, used for the run folder."""
    description: str = ""
    """One line on what this run reproduces."""
    reference: str = ""
    """Where the hyper-parameters come from."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    device: str = "cpu"
    """Torch device: ``cpu``, ``cuda``, ``cuda:N``, ``mps``, or ``auto`` (cuda if available,
    else mps, else cpu)."""


def to_dict(config: RunConfig) -> dict[str, Any]:
    """Return ``config`` as plain JSON-ready data."""
    return dataclasses.asdict(config)


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` from :func:`to_dict` output (as read from ``config.json``)."""
    sections = {
        "data": DataConfig,
        "model": ModelConfig,
        "algorithm": AlgorithmConfig,
        "train": TrainConfig,
        "eval": EvalConfig,
        "rl": RLConfig,
    }
    values = dict(data)
    for name, cls in sections.items():
        section = dict(values.get(name, {}))
        if name == "eval" and "inner_steps" in section:
            section["inner_steps"] = tuple(section["inner_steps"])
        if name == "algorithm" and "vectorize" in section:  # its former name (run folders)
            section["batched"] = section.pop("vectorize")
        values[name] = cls(**section)
    return RunConfig(**values)


# Upper bounds catch typos (an extra zero) before they allocate gigabytes or run for days.
_MAX_COUNT = 100_000
_MAX_EPISODES = 1_000_000


def _range_checks(config: RunConfig) -> list[tuple[bool, str, str]]:
    """``(ok, dotted key, constraint)`` for every field with a range."""
    data, model, algo, ev, rl = config.data, config.model, config.algorithm, config.eval, config.rl
    min_image = 16 if model.backbone == "conv4" and not model.strided else 1

    def count(value: int | None, low: int = 1, high: int = _MAX_COUNT) -> bool:
        return value is None or low <= value <= high

    def finite(value: float, low: float, high: float = math.inf) -> bool:
        return math.isfinite(value) and low <= value <= high

    return [
        (count(data.n_way), "data.n_way", f"must be in [1, {_MAX_COUNT}]"),
        (count(data.n_shot), "data.n_shot", f"must be in [1, {_MAX_COUNT}]"),
        (count(data.n_query), "data.n_query", f"must be in [1, {_MAX_COUNT}]"),
        (
            count(data.image_size, min_image, 1024),
            "data.image_size",
            f"must be in [{min_image}, 1024]",
        ),
        (count(model.hidden, 1, 8192), "model.hidden", "must be in [1, 8192]"),
        (count(model.depth, 0, 64), "model.depth", "must be in [0, 64]"),
        (finite(algo.inner_lr, 0.0), "algorithm.inner_lr", "must be a finite number >= 0"),
        (count(algo.inner_steps, 0, 10_000), "algorithm.inner_steps", "must be in [0, 10000]"),
        (
            count(algo.eval_inner_steps, 0, 10_000),
            "algorithm.eval_inner_steps",
            "must be in [0, 10000] or none",
        ),
        (count(algo.fce_steps, 1, 1000), "algorithm.fce_steps", "must be in [1, 1000]"),
        (
            finite(algo.attention_scale, 1e-12),
            "algorithm.attention_scale",
            "must be a finite number > 0",
        ),
        (algo.multi_step_loss >= 0, "algorithm.multi_step_loss", "must be >= 0 (0: off)"),
        (
            algo.first_order_iterations >= 0,
            "algorithm.first_order_iterations",
            "must be >= 0 (0: off)",
        ),
        (
            config.train.meta_batch_size <= _MAX_COUNT,
            "train.meta_batch_size",
            f"must be <= {_MAX_COUNT}",
        ),
        (count(ev.episodes, 1, _MAX_EPISODES), "eval.episodes", f"must be in [1, {_MAX_EPISODES}]"),
        (
            count(ev.val_episodes, 0, _MAX_EPISODES),
            "eval.val_episodes",
            f"must be in [0, {_MAX_EPISODES}]",
        ),
        (count(ev.n_way), "eval.n_way", f"must be in [1, {_MAX_COUNT}] or none"),
        (count(ev.n_shot), "eval.n_shot", f"must be in [1, {_MAX_COUNT}] or none"),
        (count(ev.n_query), "eval.n_query", f"must be in [1, {_MAX_COUNT}] or none"),
        (count(ev.batch_size, 1, _MAX_COUNT), "eval.batch_size", f"must be in [1, {_MAX_COUNT}]"),
        (
            all(0 <= s <= 10_000 for s in ev.inner_steps),
            "eval.inner_steps",
            "must each be in [0, 10000]",
        ),
        (count(rl.trajectories), "rl.trajectories", f"must be in [1, {_MAX_COUNT}]"),
        (finite(rl.gamma, 0.0, 1.0), "rl.gamma", "must be in [0, 1]"),
        (finite(rl.gae_lambda, 0.0, 1.0), "rl.gae_lambda", "must be in [0, 1]"),
        (finite(rl.max_kl, 1e-12), "rl.max_kl", "must be a finite number > 0"),
    ]


_RL_DATASETS = ("navigation", "cheetah-vel", "cheetah-dir")


def _combination_error(config: RunConfig) -> str | None:
    """Why the dataset, algorithm and backbone do not fit together, or ``None``."""
    dataset, algo, backbone = config.data.dataset, config.algorithm.name, config.model.backbone
    if dataset in _RL_DATASETS and algo not in ("maml", "fomaml"):
        return f"--algorithm.name={algo} has no meta-RL version: use maml or fomaml"
    if dataset in ("omniglot", "folder") and backbone == "mlp":
        return "--model.backbone=mlp is for sinusoids; image tasks use conv4"
    return None


def check_config(config: RunConfig) -> RunConfig:
    """Return ``config`` if every field is in range and ``device`` is a device name.

    Checks what can be checked without data or hardware: counts, rates, sizes and the form of
    ``device`` (whether this machine has that device is checked when a learner is built).

    Raises:
        ConfigError: naming the first offending field, its value and the constraint.
    """
    try:
        checks = _range_checks(config)
    except TypeError as e:  # a hand-edited config.json with a value of the wrong type
        raise ConfigError(f"a config field has a value of the wrong type ({e})") from None
    for ok, key, constraint in checks:
        if not ok:
            section, name = key.split(".")
            value = getattr(getattr(config, section), name)
            raise ConfigError(f"--{key}={value!r} {constraint}")
    problem = _combination_error(config)
    if problem is not None:
        raise ConfigError(problem)
    try:
        check_device_name(config.device)
    except DeviceError as e:
        raise ConfigError(str(e)) from None
    return config


def config_device(config: RunConfig) -> torch.device:
    """Return the device of ``config`` on this machine (``auto``: cuda, else mps, else cpu).

    Raises:
        ConfigError: if the name is malformed or this machine lacks that device.
    """
    try:
        return resolve_device(config.device)
    except DeviceError as e:
        raise ConfigError(str(e)) from None
