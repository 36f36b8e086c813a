"""The presets: one frozen :class:`~metalearn.config.RunConfig` per paper setting.

A variant is ``dataclasses.replace`` of another preset, never a copy; each preset names the
paper and code whose protocol it follows (``reference``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from metalearn.config import (
    AlgorithmConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from metalearn.errors import ConfigError

__all__ = ["PRESETS", "get_preset"]


_MAML_OMNIGLOT = "Finn et al. 2017, App. A.1 and cbfinn/maml"
_OMNIGLOT_SETTINGS = {"5w1s": (5, 1), "5w5s": (5, 5), "20w1s": (20, 1), "20w5s": (20, 5)}


def _maml_omniglot(n_way: int, n_shot: int) -> RunConfig:
    """MAML on Omniglot: 5-way 1 step at 0.4 (3 at test), 20-way 5 steps at 0.1."""
    five_way = n_way == 5
    meta_batch = 32 if five_way else 16
    # 10 small images per task: the whole meta-batch in one vmap call ran 1.15x (MAML) to 1.9x
    # (ANIL) the speed of tasks on threads; larger tasks keep the threads
    # (BENCHMARKS.md, "Task batching")
    chunk_size = meta_batch if (n_way, n_shot) == (5, 1) else None
    return RunConfig(
        name=f"maml-omniglot-{n_way}w{n_shot}s",
        description=f"MAML (second order), Omniglot {n_way}-way {n_shot}-shot",
        reference=_MAML_OMNIGLOT + "; strided conv4, 1,200/423 characters with rotations",
        data=DataConfig(split="maml", n_way=n_way, n_shot=n_shot, n_query=n_shot),
        model=ModelConfig(strided=True),
        algorithm=AlgorithmConfig(
            inner_lr=0.4 if five_way else 0.1,
            inner_steps=1 if five_way else 5,
            eval_inner_steps=3 if five_way else 5,
            chunk_size=chunk_size,
        ),
        train=TrainConfig(steps=60_000, meta_batch_size=meta_batch, outer_lr=1e-3),
        eval=EvalConfig(episodes=600),
    )


def _variant(base: RunConfig, algorithm: str, title: str, reference: str) -> RunConfig:
    name = base.name.replace("maml", algorithm, 1)
    description = base.description.replace("MAML (second order)", title)
    algo = replace(base.algorithm, name=algorithm)
    return replace(base, name=name, description=description, reference=reference, algorithm=algo)


def _metric_omniglot(algorithm: str, n_way: int, n_shot: int) -> RunConfig:
    """Metric learners on the Vinyals split; ProtoNet trains on 60-way episodes (Snell et al.)."""
    train_way = 60 if algorithm == "protonet" else n_way
    titles = {
        "protonet": ("Prototypical Networks", "Snell et al. 2017, Sec. 3.1"),
        "matching": ("Matching Networks (cosine, no FCE)", "Vinyals et al. 2016"),
        "siamese": ("Siamese Networks (weighted L1)", "Koch et al. 2015"),
    }
    title, reference = titles[algorithm]
    return RunConfig(
        name=f"{algorithm}-omniglot-{n_way}w{n_shot}s",
        description=f"{title}, Omniglot {n_way}-way {n_shot}-shot",
        reference=reference + "; Vinyals split (rotations as classes), 1,000 test episodes",
        data=DataConfig(split="vinyals", n_way=train_way, n_shot=n_shot, n_query=5),
        algorithm=AlgorithmConfig(name=algorithm),
        train=TrainConfig(
            steps=20_000, meta_batch_size=1, outer_lr=1e-3, lr_decay_every=2000, log_every=50
        ),
        eval=EvalConfig(episodes=1000, n_way=n_way, n_query=15),
    )


def _sinusoid(algorithm: str) -> RunConfig:
    """Sinusoid regression with K=10, as in MAML's code.

    MAML is tested after 10 steps (its paper's plots); Meta-SGD after the one step its learned
    rates were trained for (more steps with those rates diverge).
    """
    is_maml = algorithm == "maml"
    return RunConfig(
        name=f"{algorithm}-sinusoid",
        description=f"{'MAML' if is_maml else 'Meta-SGD'} on sinusoid regression, K=10",
        reference="Finn et al. 2017, Sec. 5.1 and cbfinn/maml (1 step, alpha 0.01, batch 25)",
        data=DataConfig(dataset="sinusoid", n_shot=10, n_query=10),
        model=ModelConfig(backbone="mlp", hidden=40, depth=2),
        algorithm=AlgorithmConfig(
            name=algorithm,
            inner_lr=0.01,
            eval_inner_steps=10 if is_maml else 1,
        ),
        train=TrainConfig(steps=70_000, meta_batch_size=25, outer_lr=1e-3, log_every=100),
        eval=EvalConfig(episodes=600, inner_steps=(0, 1, 5, 10) if is_maml else (0, 1)),
    )


_MAML_RL = "Finn et al. 2017, Sec. 5.3 and App. A.2, and cbfinn/maml_rl"
_RLDataset = Literal["navigation", "cheetah-vel", "cheetah-dir"]
_RL_FAMILIES: dict[_RLDataset, tuple[str, int, int]] = {
    "navigation": ("2D navigation (goal in [-0.5, 0.5]^2, horizon 100)", 20, 100),
    "cheetah-vel": ("HalfCheetah goal velocity U[0, 2] (horizon 200)", 40, 500),
    "cheetah-dir": ("HalfCheetah forward/backward (horizon 200)", 40, 500),
}


def _maml_rl(dataset: _RLDataset) -> RunConfig:
    """MAML-TRPO: 2x100 ReLU policy, one VPG step at 0.1 on 20 trajectories, max KL 0.01.

    Meta-batch 20 tasks for navigation, 40 for locomotion (App. A.2). Navigation trains 100
    iterations as ``maml_trpo_point.py``; locomotion 500, the paper's "up to 500" (the code's
    ``cluster_maml_trpo_cheetah.py`` runs 1,000). Tested on 40 new tasks after 0-3 steps.
    """
    title, meta_batch, steps = _RL_FAMILIES[dataset]
    return RunConfig(
        name=f"maml-rl-{dataset}",
        description=f"MAML-TRPO (second order), {title}",
        reference=_MAML_RL + "; validation: mean return after 1 step on 10 held-out tasks",
        data=DataConfig(dataset=dataset),
        model=ModelConfig(backbone="mlp", hidden=100, depth=2),
        algorithm=AlgorithmConfig(inner_lr=0.1, inner_steps=1),
        train=TrainConfig(
            steps=steps, meta_batch_size=meta_batch, log_every=1, eval_every=10, checkpoint_every=10
        ),
        eval=EvalConfig(episodes=40, val_episodes=10, inner_steps=(0, 1, 2, 3)),
    )


def _all_presets() -> dict[str, RunConfig]:
    presets: dict[str, RunConfig] = {}
    for n_way, n_shot in _OMNIGLOT_SETTINGS.values():
        maml = _maml_omniglot(n_way, n_shot)
        variants = [
            maml,
            _variant(maml, "fomaml", "First-order MAML", _MAML_OMNIGLOT),
            _variant(maml, "meta-sgd", "Meta-SGD", "Li et al. 2017 (MAML's Omniglot setup)"),
            _variant(maml, "anil", "ANIL (head-only inner loop)", "Raghu et al. 2020"),
            _reptile(n_way, n_shot),
            *(_metric_omniglot(a, n_way, n_shot) for a in ("protonet", "matching", "siamese")),
        ]
        presets.update({config.name: config for config in variants})
    for algorithm in ("maml", "meta-sgd"):
        presets[f"{algorithm}-sinusoid"] = _sinusoid(algorithm)
    presets.update({f"maml-rl-{d}": _maml_rl(d) for d in _RL_FAMILIES})
    presets.update({c.name: c for c in (_baseline("baseline"), _baseline("baseline-pp"))})
    return presets


def _baseline(algorithm: str) -> RunConfig:
    """Baseline/Baseline++ (Chen et al. 2019): a classifier over the 4,112 training classes.

    Adam at 1e-3 on batches of 16 for 5 epochs of the 82,240 training images (25,700 steps;
    ``train.py``), then a new head per test episode fitted on the frozen features
    (``baselinefinetune.py``). Tested on 5-way 1-shot episodes; ``--eval.n_shot=5`` scores the
    same network 5-shot. Validation (Chen et al. use none) is 5-way accuracy on the val classes.
    """
    title = "Baseline++ (cosine head)" if algorithm == "baseline-pp" else "Baseline (linear head)"
    return RunConfig(
        name=f"{algorithm}-omniglot",
        description=f"{title}, pretrained on every Omniglot training class, 5-way test",
        reference="Chen et al. 2019 and wyharveychen/CloserLookFewShot (train.py, "
        "methods/baselinetrain.py, methods/baselinefinetune.py); Vinyals split",
        data=DataConfig(split="vinyals", n_way=5, n_shot=1, n_query=15),
        algorithm=AlgorithmConfig(name=algorithm, n_classes=4112),
        train=TrainConfig(
            steps=25_700,
            meta_batch_size=16,
            outer_lr=1e-3,
            log_every=50,
            eval_every=2_500,
            checkpoint_every=500,
        ),
        eval=EvalConfig(episodes=600, n_way=5, n_shot=1, n_query=15),
    )


def _reptile(n_way: int, n_shot: int) -> RunConfig:
    """Reptile (Nichol et al. 2018): inner SGD steps, outer SGD towards the adapted weights.

    The paper's inner Adam is replaced by plain SGD; the outer SGD step size is annealed
    linearly from 1 to 0 over the run (``train.lr_anneal``), as in the paper.
    """
    base = _maml_omniglot(n_way, n_shot)
    return replace(
        base,
        name=f"reptile-omniglot-{n_way}w{n_shot}s",
        description=f"Reptile, Omniglot {n_way}-way {n_shot}-shot (inner SGD, outer SGD)",
        reference="Nichol et al. 2018 and openai/supervised-reptile (5 inner steps, batch 5)",
        model=ModelConfig(),
        algorithm=AlgorithmConfig(name="reptile", inner_lr=0.1, inner_steps=5, eval_inner_steps=50),
        train=replace(
            base.train,
            meta_batch_size=5,
            optimizer="sgd",
            outer_lr=1.0,
            lr_anneal=True,
            steps=100_000,
        ),
    )


PRESETS: dict[str, RunConfig] = _all_presets()
"""Preset name -> its :class:`RunConfig` (frozen: derive variants with ``dataclasses.replace``)."""


def get_preset(name: str) -> RunConfig:
    """Return the preset ``name``.

    Raises:
        ConfigError: for an unknown name, with the closest known names.
    """
    import difflib

    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `metalearn presets`"
        raise ConfigError(f"unknown preset {name!r}{hint}")
    return PRESETS[name]
