"""Shared by rl_navigation.py and rl_cheetah.py: the MAML paper's RL comparison on this CPU.

Meta-trains MAML-TRPO (one policy-gradient step per task) and a policy pretrained with TRPO on
the mixture of tasks (no adaptation in training), both with the shared ``meta_train`` loop
(run folders, checkpoints, ``--resume``), from the same initialisation and the same task
batches. Then evaluates them and that random initialisation on new tasks after 0..k
policy-gradient steps, and writes ``adaptation.md``, ``adaptation.png``, ``curves.png`` and
``results.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import time
from pathlib import Path

import torch

from metalearn.rl import GaussianMLPPolicy, TaskDistribution, TrajectorySampler
from metalearn.rl.evaluation import (
    adaptation_returns,
    format_adaptation_table,
    write_adaptation_report,
)
from metalearn.rl.learner import MetaRLLearner
from metalearn.training import CHECKPOINT_FILE, TrainConfig, meta_train, read_metrics
from metalearn.utils.stats import mean_ci95

METHODS = {"MAML": 1, "pretrained": 0}  # name -> inner steps in meta-training


def build_parser(description: str, **defaults: object) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, help="meta-iterations (TRPO steps) per method")
    p.add_argument("--meta-batch-size", type=int, help="tasks per meta-iteration")
    p.add_argument("--fast-batch-size", type=int, help="trajectories per task and rollout")
    p.add_argument("--hidden", type=int, nargs="+", default=[100, 100], help="hidden layer widths")
    p.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    p.add_argument("--inner-lr", type=float, default=0.1, help="policy-gradient step size")
    p.add_argument("--first-order", action="store_true", help="first-order MAML")
    p.add_argument("--max-kl", type=float, default=0.01, help="TRPO trust region")
    p.add_argument("--eval-tasks", type=int, default=40, help="new tasks to evaluate on")
    p.add_argument("--eval-steps", type=int, default=3, help="evaluate after 0..N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="output folder (one run folder per method)")
    p.add_argument("--resume", action="store_true", help="continue runs found in --out")
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    p.set_defaults(**defaults)
    return p


def make_learner(args: argparse.Namespace, env_id: str, inner_steps: int) -> MetaRLLearner:
    sampler = TrajectorySampler(env_id, args.fast_batch_size, env_kwargs=args.env_kwargs)
    torch.manual_seed(args.seed)  # every method starts from the same initial policy
    policy = GaussianMLPPolicy(
        sampler.obs_dim, sampler.act_dim, tuple(args.hidden), activation=args.activation
    )
    return MetaRLLearner(
        policy,
        sampler,
        inner_lr=args.inner_lr,
        inner_steps=inner_steps,
        first_order=args.first_order,
        max_kl=args.max_kl,
    )


def env_steps_per_second(learner: MetaRLLearner, env_id: str, n_tasks: int) -> float:
    tasks = TaskDistribution(env_id, seed=999).sample_batch(n_tasks)
    sampler = learner.sampler
    start = time.perf_counter()
    sampler.sample(learner.policy, learner.meta_params(), tasks)
    return n_tasks * sampler.n_trajectories * sampler.horizon / (time.perf_counter() - start)


def train(args: argparse.Namespace, env_id: str, name: str, learner: MetaRLLearner) -> float:
    run_dir = args.out / name
    resume = args.resume and (run_dir / CHECKPOINT_FILE).exists()
    cfg = TrainConfig(
        steps=args.steps,
        meta_batch_size=args.meta_batch_size,
        log_every=1,
        checkpoint_every=args.checkpoint_every,
        eval_every=0,
        seed=args.seed,
    )
    tasks = TaskDistribution(env_id, seed=args.seed, env_kwargs=args.env_kwargs)
    result = meta_train(learner, tasks, cfg, run_dir=run_dir, resume=resume)
    logging.info(
        "%s: %d steps in %.0f s, %s", name, result.step, result.elapsed_s, result.train_metrics
    )
    return result.elapsed_s


def plot_training_curves(args: argparse.Namespace, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for name in METHODS:
        rows = [r for r in read_metrics(args.out / name / "metrics.jsonl") if r["split"] == "train"]
        steps = [r["step"] for r in rows]
        if name == "MAML":
            ax.plot(steps, [r["return_pre"] for r in rows], label="MAML before adaptation")
            ax.plot(steps, [r["return_post"] for r in rows], label="MAML after 1 step")
        else:
            ax.plot(steps, [r["return_post"] for r in rows], label=name)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("average return (training tasks)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "curves.png", dpi=120)


def run(args: argparse.Namespace, env_id: str, title: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    learners = {name: make_learner(args, env_id, steps) for name, steps in METHODS.items()}
    learners["random init"] = make_learner(args, env_id, 0)
    steps_per_s = env_steps_per_second(learners["random init"], env_id, args.meta_batch_size)
    train_seconds = {name: train(args, env_id, name, learners[name]) for name in METHODS}
    eval_tasks = TaskDistribution(env_id, seed=args.seed + 10_000).sample_batch(args.eval_tasks)
    results = {}
    for name, learner in learners.items():
        torch.manual_seed(args.seed + 1)
        results[name] = adaptation_returns(
            learner, eval_tasks, n_steps=args.eval_steps, inner_lr=args.inner_lr
        )
    write_adaptation_report(results, args.out, title=title)
    plot_training_curves(args, title)
    summary = {
        "env_id": env_id,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "returns": {
            name: [mean_ci95(r[:, k])._asdict() for k in range(r.shape[1])]
            for name, r in results.items()
        },
        "train_seconds": train_seconds,
        "env_steps_per_second_sampling": steps_per_s,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "date": datetime.date.today().isoformat(),
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_adaptation_table(results))
    print(f"env steps/s while sampling: {steps_per_s:.0f}; training seconds: {train_seconds}")
