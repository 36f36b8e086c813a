"""What a run configuration may hold: ranges, combinations and the device name.

:func:`check_config` refuses what can be refused without data or hardware, before anything is
written; :func:`config_device` checks that this machine has the device.
"""

from __future__ import annotations

import math

import torch

from metalearn.config import RunConfig
from metalearn.errors import ConfigError
from metalearn.utils.devices import DeviceError, check_device_name, resolve_device

__all__ = ["check_config", "config_device"]

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
        (
            count(algo.chunk_size),
            "algorithm.chunk_size",
            f"must be in [1, {_MAX_COUNT}] or none",
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
    if config.data.train_classes == "trainval":
        if dataset != "omniglot" or config.data.split == "lake":
            return (
                "--data.train_classes=trainval: only Omniglot's vinyals and maml splits have "
                "validation classes to train on"
            )
        if config.train.eval_every != 0:
            return (
                "--data.train_classes=trainval trains on the validation classes, so validation "
                "would score seen classes: set --train.eval_every=0 (choose the schedule on a "
                "run with validation first)"
            )
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
