"""The algorithms by config name: what each is, how it is built, and its presets.

One table (:data:`ALGORITHMS`) names every learner the CLI and :func:`metalearn.build.build_learner`
know. An entry (:class:`Algorithm`) says whether the network is a classifier whose parameters
adapt (``"gradient"``: a ``head`` of ``n_way`` units) or an embedding encoder (``"metric"``), and
holds a builder ``(network, config) -> Learner``. :func:`register` adds an entry (and its
presets); ``docs/adding-an-algorithm.md`` walks through adding a learner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from metalearn.algorithms import (
    ANIL,
    MAML,
    Learner,
    MAMLPlusPlus,
    MatchingNet,
    MetaSGD,
    ProtoNet,
    Reptile,
    SiameseNet,
)
from metalearn.algorithms.baseline import Baseline
from metalearn.algorithms.heads import FitSettings
from metalearn.config import AlgorithmConfig, RunConfig
from metalearn.errors import ConfigError
from metalearn.presets import PRESETS

__all__ = ["ALGORITHMS", "Algorithm", "Builder", "get_algorithm", "register"]

Kind = Literal["gradient", "metric", "transfer"]
"""How the network is used: an adapted classifier, an encoder, or a pretrained classifier."""

Builder = Callable[[nn.Module, RunConfig], Learner[Any]]
"""Builds a learner from its network (see :func:`metalearn.build.build_model`) and the config."""


@dataclass(frozen=True)
class Algorithm:
    """One registered algorithm.

    Attributes:
        name: its config name (``--algorithm.name``).
        kind: ``"gradient"`` (the network is a classifier or regressor with a ``head``; test
            episodes must have the training ``n_way``), ``"metric"`` (an encoder) or
            ``"transfer"`` (an encoder pretrained with a classifier head over every training
            class, a new head fitted per episode; trained on class batches, not episodes).
        build: the builder.
        presets: the presets of this algorithm, by name (``metalearn presets`` lists them).
    """

    name: str
    kind: Kind
    build: Builder
    presets: Mapping[str, RunConfig] = field(default_factory=dict)


ALGORITHMS: dict[str, Algorithm] = {}
"""Config name -> :class:`Algorithm`, the built-in ones first."""


def register(algorithm: Algorithm) -> None:
    """Add ``algorithm`` (and its presets) under its name.

    Raises:
        ConfigError: if the name, or one of its preset names, is taken.
    """
    if algorithm.name in ALGORITHMS:
        raise ConfigError(f"algorithm {algorithm.name!r} is already registered")
    taken = [name for name in algorithm.presets if name in PRESETS]
    if taken:
        raise ConfigError(f"preset names {taken} are taken; choose others")
    ALGORITHMS[algorithm.name] = algorithm
    PRESETS.update(algorithm.presets)


def get_algorithm(name: str) -> Algorithm:
    """Return the algorithm registered as ``name``.

    Raises:
        ConfigError: for an unknown name, listing the known ones.
    """
    if name not in ALGORITHMS:
        raise ConfigError(f"--algorithm.name={name}: expected one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def _gradient_kwargs(algo: AlgorithmConfig) -> dict[str, Any]:
    return {
        "inner_lr": algo.inner_lr,
        "inner_steps": algo.inner_steps,
        "eval_inner_steps": algo.eval_inner_steps,
        "batched": algo.batched,
    }


def _maml(first_order: bool) -> Builder:
    """MAML or FOMAML; :class:`MAMLPlusPlus` when a MAML++ option is set."""

    def build(model: nn.Module, config: RunConfig) -> Learner[Any]:
        algo = config.algorithm
        options = _maml_plus_plus_options(algo)
        kwargs = {**_gradient_kwargs(algo), "first_order": first_order}
        if any(options.values()):
            return MAMLPlusPlus(model, **options, **kwargs)
        return MAML(model, **kwargs)

    return build


def _maml_plus_plus_options(algo: AlgorithmConfig) -> dict[str, Any]:
    return {
        "per_step_lrs": algo.per_step_lrs,
        "multi_step_loss": algo.multi_step_loss,
        "first_order_iterations": algo.first_order_iterations,
    }


def _plain(cls: Callable[..., Learner[Any]]) -> Builder:
    """A gradient learner without MAML++'s options (refused with a clear message)."""

    def build(model: nn.Module, config: RunConfig) -> Learner[Any]:
        algo = config.algorithm
        if any(_maml_plus_plus_options(algo).values()):
            raise ConfigError(
                "--algorithm.per_step_lrs, --algorithm.multi_step_loss and "
                "--algorithm.first_order_iterations are MAML++ options of maml and fomaml, not "
                f"of {algo.name}"
            )
        return cls(model, **_gradient_kwargs(algo))

    return build


def _protonet(model: nn.Module, config: RunConfig) -> Learner[Any]:
    return ProtoNet(model, distance=config.algorithm.distance)


def _matching(model: nn.Module, config: RunConfig) -> Learner[Any]:
    algo = config.algorithm
    return MatchingNet(model, fce=algo.fce, fce_steps=algo.fce_steps, scale=algo.attention_scale)


def _siamese(model: nn.Module, config: RunConfig) -> Learner[Any]:
    return SiameseNet(model)


def _baseline(model: nn.Module, config: RunConfig) -> Learner[Any]:
    algo = config.algorithm
    fit = FitSettings(
        lr=algo.finetune_lr, batch_size=algo.finetune_batch_size, epochs=algo.finetune_epochs
    )
    return Baseline(
        model,
        head="cosine" if algo.name == "baseline-pp" else "linear",
        n_classes=algo.n_classes,
        fit=fit,
        finetune_encoder=algo.finetune_encoder,
        scale=algo.cosine_scale,
        keep_head=algo.keep_head,
    )


def _builtin(name: str, kind: Kind, build: Builder) -> Algorithm:
    presets = {key: c for key, c in PRESETS.items() if c.algorithm.name == name}
    return Algorithm(name, kind, build, presets)


for _algorithm in [
    _builtin("maml", "gradient", _maml(first_order=False)),
    _builtin("fomaml", "gradient", _maml(first_order=True)),
    _builtin("meta-sgd", "gradient", _plain(MetaSGD)),
    _builtin("anil", "gradient", _plain(ANIL)),
    _builtin("reptile", "gradient", _plain(Reptile)),
    _builtin("protonet", "metric", _protonet),
    _builtin("matching", "metric", _matching),
    _builtin("siamese", "metric", _siamese),
    _builtin("baseline", "transfer", _baseline),
    _builtin("baseline-pp", "transfer", _baseline),
]:
    ALGORITHMS[_algorithm.name] = _algorithm
