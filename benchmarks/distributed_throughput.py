"""Data-parallel MAML throughput: tasks/s with 1 and N processes of one thread each.

The workload is ``maml_throughput.py``'s (conv4 on 1x28x28, meta-batch 32, 5-way 1-shot, 1
query per class by default: the MAML paper's Omniglot setting; second order, one inner step),
on its fixed synthetic batch. Each measurement runs ``meta_train`` itself, so an iteration is
what a real run does: draw the batch, keep this rank's slice, meta-loss, backward, one
all-reduce of the flat gradient, Adam step. 1 process is the plain single-process loop (no
``torch.distributed``); N > 1 processes run under ``torchrun`` with gloo. Every process has one
intra-op thread (``OMP_NUM_THREADS=1``), so N processes use N cores.

Scaling efficiency is ``tasks/s(N) / (N * tasks/s(1))``. Figures are only meaningful on a
machine with at least N idle cores.

Usage:
    python benchmarks/distributed_throughput.py                       # 1 and 2 processes
    python benchmarks/distributed_throughput.py --processes 1 2 4 --repeats 3
    python benchmarks/distributed_throughput.py --meta-batch-size 4 --iterations 1 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from maml_throughput import N_WAY, Workload, synthetic_batch


class FixedBatch:
    """A task source that gives the same synthetic meta-batch at every step."""

    def __init__(self, w: Workload) -> None:
        from metalearn.episode import Episode

        self.batch = Episode(*synthetic_batch(w), N_WAY)

    def sample(self) -> Any:
        return self.batch.unbind()[0]

    def sample_batch(self, n_tasks: int) -> Any:
        return self.batch

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def measure(w: Workload, iterations: int) -> dict[str, float] | None:
    """Run in each worker: a warm-up step, then time ``iterations`` steps of ``meta_train``."""
    from metalearn.algorithms.maml import MAML
    from metalearn.nn.backbones import Conv4
    from metalearn.training import TrainConfig, meta_train
    from metalearn.training.distributed import DataParallel

    torch.set_num_threads(1)
    parallel = DataParallel.from_env()
    torch.manual_seed(0)
    model = Conv4(1, out_features=N_WAY)
    learner = MAML(model, inner_lr=w.inner_lr, inner_steps=w.inner_steps, first_order=w.first_order)
    tasks = FixedBatch(w)

    def train(steps: int) -> None:
        cfg = TrainConfig(
            steps=steps, meta_batch_size=w.meta_batch_size, eval_every=0, progress=False
        )
        meta_train(learner, tasks, cfg, parallel=parallel)

    train(1)  # warm-up: allocations, thread pools, the first all-reduce
    start, cpu_start = time.perf_counter(), time.process_time()
    train(iterations)  # ends with a barrier: the slowest rank's time
    seconds = (time.perf_counter() - start) / iterations
    cpu_seconds = (time.process_time() - cpu_start) / iterations
    if parallel is not None:
        parallel.close()
        if not parallel.is_main:
            return None
    return {"seconds": seconds, "cpu_seconds": cpu_seconds}


def run_isolated(processes: int, w: Workload, args: argparse.Namespace) -> dict[str, float]:
    """Run :func:`measure` in fresh processes (``torchrun`` for more than one)."""
    child = [__file__, "--child", json.dumps(asdict(w)), "--iterations", str(args.iterations)]
    if processes == 1:
        command = [sys.executable, *child]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc_per_node={processes}", *child]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.setdefault("LOGLEVEL", "WARNING")
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    rows = [line for line in out.splitlines() if line.startswith("{")]
    return dict(json.loads(rows[-1]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--queries", type=int, default=1, help="query examples per class")
    parser.add_argument("--steps", type=int, default=1, help="inner steps")
    parser.add_argument("--order", choices=["second", "first"], default="second")
    parser.add_argument("--meta-batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median taken)")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per run")
    parser.add_argument("--child", metavar="WORKLOAD", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        result = measure(Workload(**json.loads(args.child)), args.iterations)
        if result is not None:
            print(json.dumps(result), flush=True)
        return
    w = Workload(args.queries, args.steps, args.order == "first", args.meta_batch_size)
    print(
        f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, 1 thread per "
        f"process, {w}, median of {args.repeats} runs x {args.iterations} iterations, "
        f"1-min load average before {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    print("| processes | s/iteration | CPU s/iteration (rank 0) | tasks/s | scaling efficiency |")
    print("|---|---|---|---|---|")
    base: float | None = None
    for processes in args.processes:
        runs = [run_isolated(processes, w, args) for _ in range(args.repeats)]
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        tasks_per_s = w.meta_batch_size / seconds
        if processes == 1:
            base = tasks_per_s
        efficiency = "" if base is None else f"{tasks_per_s / (processes * base):.2f}"
        print(
            f"| {processes} | {seconds:.3f} | {cpu:.3f} | {tasks_per_s:.1f} | {efficiency} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
