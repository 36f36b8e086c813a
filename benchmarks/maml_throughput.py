"""MAML meta-training throughput: seconds per meta-iteration, tasks per second, peak memory.

Workloads (issue 3): conv4 (64 channels) on 1x28x28 inputs, meta-batch 32, 5-way 1-shot, with
1 query per class (the MAML paper's Omniglot setting) or 15 (a heavier one); 1 or 5 inner
steps; second or first order. One iteration is: meta-loss, backward, Adam step.

Every (implementation, workload) pair runs in a fresh subprocess, so that its peak memory
(``ru_maxrss``) is its own. A peer implementation (learn2learn, higher, TorchOpt, ...) plugs in
as a function ``make_step(workload) -> step`` registered in ``IMPLEMENTATIONS``; ``step()``
runs one meta-iteration on its own synthetic batch. Peers may live in a separate virtual
environment: run this script with that environment's Python and ``--impl`` naming them.

Usage:
    python benchmarks/maml_throughput.py --threads 2 --repeats 3
    python benchmarks/maml_throughput.py --impl metalearn metalearn-loop --queries 15 --steps 1
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

N_WAY = 5
N_SHOT = 1
IMAGE = (1, 28, 28)


@dataclass(frozen=True)
class Workload:
    """One benchmark setting."""

    n_query: int = 1
    inner_steps: int = 1
    first_order: bool = False
    meta_batch_size: int = 32
    inner_lr: float = 0.4


def synthetic_batch(w: Workload, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Return ``(support_x, support_y, query_x, query_y)`` stacked over ``meta_batch_size``."""
    g = torch.Generator().manual_seed(seed)
    T = w.meta_batch_size
    support_x = torch.rand(T, N_WAY * N_SHOT, *IMAGE, generator=g)
    query_x = torch.rand(T, N_WAY * w.n_query, *IMAGE, generator=g)
    support_y = torch.arange(N_WAY).repeat_interleave(N_SHOT).expand(T, -1).contiguous()
    query_y = torch.arange(N_WAY).repeat_interleave(w.n_query).expand(T, -1).contiguous()
    return support_x, support_y, query_x, query_y


def _metalearn(vectorize: bool | None) -> Callable[[Workload], Callable[[], None]]:
    def make_step(w: Workload) -> Callable[[], None]:
        from metalearn.algorithms.maml import MAML
        from metalearn.episode import Episode
        from metalearn.nn.backbones import Conv4

        learner = MAML(
            Conv4(1, out_features=N_WAY),
            inner_lr=w.inner_lr,
            inner_steps=w.inner_steps,
            first_order=w.first_order,
        )
        optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
        batch = Episode(*synthetic_batch(w), N_WAY)

        def step() -> None:
            optimizer.zero_grad()
            loss, _ = learner.meta_loss(batch, vectorize=vectorize)
            loss.backward()
            optimizer.step()

        return step

    return make_step


IMPLEMENTATIONS: dict[str, Callable[[Workload], Callable[[], None]]] = {
    "metalearn": _metalearn(None),  # the measured default path
    "metalearn-loop": _metalearn(False),
    "metalearn-vmap": _metalearn(True),
}


def measure(impl: str, w: Workload, iterations: int, threads: int) -> dict[str, float]:
    """Run in this process: one warm-up iteration, then time ``iterations``."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = IMPLEMENTATIONS[impl](w)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    seconds = (time.perf_counter() - start) / iterations
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "peak_gb": peak / 2**20, "delta_gb": (peak - rss_before) / 2**20}


def run_isolated(impl: str, w: Workload, iterations: int, threads: int) -> dict[str, float]:
    """Run :func:`measure` in a fresh interpreter and return its result."""
    args = [sys.executable, __file__, "--child", impl, json.dumps(asdict(w))]
    args += ["--iterations", str(iterations), "--threads", str(threads)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", nargs="+", default=list(IMPLEMENTATIONS))
    parser.add_argument("--queries", nargs="+", type=int, default=[1, 15])
    parser.add_argument("--steps", nargs="+", type=int, default=[1])
    parser.add_argument("--order", nargs="+", choices=["second", "first"], default=["second"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median taken)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        w = Workload(**json.loads(args.child[1]))
        print(json.dumps(measure(args.child[0], w, args.iterations, args.threads)))
        return
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} threads, median of {args.repeats} runs x {args.iterations} iterations\n"
    )
    print(
        "| implementation | queries/class | inner steps | order | s/iteration | tasks/s "
        "| peak RSS (GB) | RSS increase (GB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n_query in args.queries:
        for steps in args.steps:
            for order in args.order:
                w = Workload(n_query=n_query, inner_steps=steps, first_order=order == "first")
                for impl in args.impl:
                    runs = [
                        run_isolated(impl, w, args.iterations, args.threads)
                        for _ in range(args.repeats)
                    ]
                    s = statistics.median(r["seconds"] for r in runs)
                    peak = statistics.median(r["peak_gb"] for r in runs)
                    delta = statistics.median(r["delta_gb"] for r in runs)
                    print(
                        f"| {impl} | {n_query} | {steps} | {order} | {s:.3f} "
                        f"| {w.meta_batch_size / s:.1f} | {peak:.2f} | {delta:.2f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
