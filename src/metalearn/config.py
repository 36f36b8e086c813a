"""Run configuration as frozen dataclasses, one per section, and their JSON form.

Every field carries a docstring, which is its ``--help`` text. The paper settings are presets
of these (:mod:`metalearn.presets`); what values are refused is :mod:`metalearn.config_checks`.
A run folder holds its configuration as ``config.json`` (:func:`write_config`,
:func:`read_config`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from metalearn.errors import CheckpointError
from metalearn.training.checkpoint import first_line
from metalearn.training.run_folder import CONFIG_FILE, write_config_json
from metalearn.training.settings import TrainConfig

__all__ = [
    "AlgorithmConfig",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "RLConfig",
    "RunConfig",
    "TrainConfig",
    "from_dict",
    "read_config",
    "to_dict",
    "write_config",
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
    train_classes: Literal["train", "trainval"] = "train"
    """Omniglot classes to train on: the training set, or the training and validation sets
    together (``trainval``, the ProtoNet paper's final run once the schedule was chosen on
    validation; a run on them has no validation: ``--train.eval_every=0``)."""
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
    chunk_size: int | None = None
    """Batched path: tasks per ``torch.func.vmap`` call (1: one task at a time, each on a task
    thread); ``None``: the learner's measured rule, from the tasks' input size. Small tasks on
    a light network run faster all in one call (BENCHMARKS.md, "Task batching")."""
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


def write_config(config: RunConfig, run_dir: Path) -> None:
    """Write the resolved config as ``config.json`` in ``run_dir``."""
    write_config_json(to_dict(config), run_dir)


def read_config(run_dir: Path) -> RunConfig:
    """Read ``config.json`` from a run folder.

    Raises:
        CheckpointError: if the folder holds no readable ``config.json``.
    """
    path = run_dir / CONFIG_FILE
    if not run_dir.exists():
        raise CheckpointError(f"{run_dir} does not exist: give a run folder or checkpoint file")
    try:
        return from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} is not a run folder: it has no {CONFIG_FILE}") from None
    except (ValueError, TypeError, AttributeError) as e:  # bad JSON, unknown or missing fields
        raise CheckpointError(f"cannot read {path}: {first_line(e)}") from e
