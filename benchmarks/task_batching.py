"""How a preset's meta-batch runs fastest: all tasks in one ``vmap`` call, or tasks on threads.

For each preset named, on Omniglot (``METALEARN_DATA`` or ``../shared/datasets``), one meta-batch
of the preset's size is timed per meta-iteration (meta-loss, backward, Adam step) with the tasks
on threads (``algorithm.chunk_size=1``, one intra-op thread per task thread) and with the whole
meta-batch in one ``vmap`` call (``chunk_size`` = the meta-batch), alternately, after warm-up, on
the same pre-sampled batches. The median of ``--rounds`` rounds is reported. This is the
measurement behind the presets' ``algorithm.chunk_size`` (BENCHMARKS.md, "Task batching").
With ``--loop``, each round also times ``--iterations`` steps of the training loop itself
(``meta_train``: fresh batches, metrics, finiteness checks; no validation, checkpoint or
progress bar) per strategy, to see whether the loop costs one strategy more than the other.

    python benchmarks/task_batching.py maml-omniglot-5w1s maml-omniglot-5w5s --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from maml_throughput import cpu_model

from metalearn.build import build_learner, build_tasks
from metalearn.presets import get_preset
from metalearn.training.loop import meta_train

ROOT = Path(__file__).resolve().parents[1]


def seconds_per_iteration(
    name: str, rounds: int, iterations: int, in_loop: bool = False
) -> dict[str, float]:
    """Median seconds per meta-iteration of preset ``name``, by strategy (and in the loop)."""
    config = get_preset(name)
    data_root = os.environ.get("METALEARN_DATA", str(ROOT.parent / "shared" / "datasets"))
    config = replace(config, data=replace(config.data, root=data_root))
    torch.manual_seed(0)
    learner = build_learner(config)
    tasks = build_tasks(config, "train")
    optimizer = torch.optim.Adam(learner.parameters(), config.train.outer_lr)
    n_tasks = config.train.meta_batch_size
    batches = [tasks.sample_batch(n_tasks) for _ in range(iterations)]
    strategies = {"tasks on threads": 1, "one vmap call": n_tasks}

    def iterate(chunk_size: int) -> float:
        learner.chunk_size = chunk_size
        start = time.perf_counter()
        for batch in batches:
            loss, _ = learner.meta_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / len(batches)

    loop_config = replace(
        config.train, steps=iterations, eval_every=0, checkpoint_every=0, progress=False
    )

    def train(chunk_size: int) -> float:
        learner.chunk_size = chunk_size
        start = time.perf_counter()
        meta_train(learner, tasks, loop_config)
        return (time.perf_counter() - start) / iterations

    for chunk_size in strategies.values():  # warm-up: oneDNN primitives, thread pool, arenas
        iterate(chunk_size)
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for label, chunk_size in strategies.items():
            times.setdefault(label, []).append(iterate(chunk_size))
            if in_loop:
                times.setdefault(f"{label} in meta_train", []).append(train(chunk_size))
    return {label: statistics.median(values) for label, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=4, help="meta-iterations per round")
    parser.add_argument("--loop", action="store_true", help="also time meta_train's steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"{cpu_model()}, {args.threads} threads, torch {torch.__version__}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )
    header = "| preset | tasks on threads (s/it) | one vmap call (s/it) | vmap speed-up |"
    if args.loop:
        header += " in meta_train: threads (s/it) | vmap (s/it) | vmap speed-up |"
    print(header)
    print("|---|" + "---:|" * (header.count("|") - 2))
    for name in args.presets:
        t = seconds_per_iteration(name, args.rounds, args.iterations, args.loop)
        row = f"| {name} |"
        for suffix in ("", " in meta_train") if args.loop else ("",):
            threads, vmapped = t["tasks on threads" + suffix], t["one vmap call" + suffix]
            row += f" {threads:.3f} | {vmapped:.3f} | {threads / vmapped:.2f}x |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
