"""MAML meta-training throughput: seconds per meta-iteration, tasks per second, peak memory.

Workloads (issue 3): conv4 (64 channels, max-pool) on 1x28x28 inputs, meta-batch 32, 5-way
1-shot, with 1 query per class (the MAML paper's Omniglot setting) or 15 (a heavier one); 1 or
5 inner steps; second or first order. One iteration is: meta-loss, backward, Adam step, on a
fixed synthetic batch.

CPU s/iteration is the process's CPU time (all threads): on a shared machine it is less
disturbed by other processes than the wall-clock time. Every (implementation, workload, setting)
runs in a fresh subprocess, so that its peak memory (``ru_maxrss``) is its own.

Fair protocol (issue 17): every implementation runs under each setting a user could reasonably
pick, ``OMP_WAIT_POLICY`` unset or PASSIVE and 1 or 2 intra-op threads (``--settings``), and the
summary compares each implementation's best setting with metalearn's best. PASSIVE alone once
made learn2learn look 2.6x slower than it is: its ops run on 2 intra-op threads, which then pay a
wake-up per op, while ours run single-threaded ops on task threads.

A peer implementation (learn2learn, higher, TorchOpt, ...) plugs in as a function
``make_step(workload) -> step``, where ``step()`` runs one meta-iteration on
``synthetic_batch(workload)`` with the same model. Put such functions in a file that defines
``IMPLEMENTATIONS = {"learn2learn": make_step, ...}`` and pass it with ``--plugin`` (it may
import this module for ``Workload``, ``synthetic_batch`` and ``N_WAY``). Peers installed in
another environment: give ``make_step`` an attribute ``python``, that environment's interpreter,
which then runs its child processes (``benchmarks/peers.py`` does).

Usage:
    python benchmarks/maml_throughput.py --settings unset:1 unset:2 PASSIVE:1 PASSIVE:2
    python benchmarks/maml_throughput.py --impl metalearn metalearn-loop --queries 15
    python benchmarks/maml_throughput.py --plugin benchmarks/peers.py --impl metalearn higher
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import runpy
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


def _metalearn(
    batched: bool | None = None,
    chunk_size: int | None = None,
    *,
    auto_chunks: bool = True,
    plain_blocks: bool = False,
    channels_first: bool = False,
    task_threads: int | None = None,
) -> Callable[[Workload], Callable[[], None]]:
    """metalearn's MAML on Conv4; the arguments select a path of ``meta_loss`` or a variant."""

    def make_step(w: Workload) -> Callable[[], None]:
        from metalearn.algorithms.maml import MAML
        from metalearn.episode import Episode
        from metalearn.nn.backbones import Conv4

        model = Conv4(1, out_features=N_WAY)
        if plain_blocks:  # the same function in the plain order conv -> BN -> ReLU -> max-pool
            for block in model.features:
                block.lean = False
        if channels_first:  # the lean blocks in the channels-first memory format
            for block in model.features:
                block.channels_last = False
        learner = MAML(
            model, inner_lr=w.inner_lr, inner_steps=w.inner_steps, first_order=w.first_order
        )
        learner.chunk_size = chunk_size
        if task_threads is not None:
            learner.task_threads = task_threads
        if not auto_chunks:
            learner.chunk_numel = None
        optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
        batch = Episode(*synthetic_batch(w), N_WAY)

        def step() -> None:
            optimizer.zero_grad()
            loss, _ = learner.meta_loss(batch, batched=batched)
            loss.backward()
            optimizer.step()

        return step

    return make_step


IMPLEMENTATIONS: dict[str, Callable[[Workload], Callable[[], None]]] = {
    # the default: vmap over chunks that fit MAML.chunk_numel, each chunk's backward at once
    "metalearn": _metalearn(),
    # the reference: a Python loop over tasks, one graph for the whole meta-batch
    "metalearn-loop": _metalearn(batched=False),
    # one vmap over all 32 tasks, one graph
    "metalearn-vmap-all": _metalearn(batched=True, auto_chunks=False),
    # one task at a time without vmap, each task's backward at once (as learn2learn's examples)
    "metalearn-one-by-one": _metalearn(batched=True, chunk_size=1),
    # the default path with Conv4's blocks in the plain layer order (pooling last)
    "metalearn-plain-blocks": _metalearn(plain_blocks=True),
    # one task at a time without vmap, lean blocks channels-first (before issue 17's change)
    "metalearn-one-by-one-channels-first": _metalearn(
        batched=True, chunk_size=1, channels_first=True
    ),
    # chunks run in turn, each with torch's intra-op threads
    "metalearn-one-thread-per-op": _metalearn(task_threads=1),
}


def load_plugins(paths: list[str]) -> None:
    """Merge the ``IMPLEMENTATIONS`` of each plugin file into this module's."""
    for path in paths:
        IMPLEMENTATIONS.update(runpy.run_path(path)["IMPLEMENTATIONS"])


def measure(impl: str, w: Workload, iterations: int, threads: int) -> dict[str, float]:
    """Run in this process: one warm-up iteration, then time ``iterations``."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = IMPLEMENTATIONS[impl](w)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        step()
    seconds = (time.perf_counter() - start) / iterations
    cpu_seconds = (time.process_time() - cpu_start) / iterations
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_gb": peak / 2**20,
        "delta_gb": (peak - rss_before) / 2**20,
    }


@dataclass(frozen=True)
class Setting:
    """What a user may set around a run: OpenMP's wait policy and torch's intra-op threads."""

    wait_policy: str  # "unset" removes OMP_WAIT_POLICY from the environment
    threads: int

    @classmethod
    def parse(cls, text: str) -> Setting:
        policy, _, threads = text.partition(":")
        return cls(policy, int(threads))

    def __str__(self) -> str:
        return f"{self.wait_policy}:{self.threads}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if self.wait_policy != "unset":
            env["OMP_WAIT_POLICY"] = self.wait_policy
        return env


def run_isolated(
    impl: str, w: Workload, setting: Setting, args: argparse.Namespace
) -> dict[str, float]:
    """Run :func:`measure` in a fresh interpreter under ``setting`` and return its result."""
    python = getattr(IMPLEMENTATIONS[impl], "python", sys.executable)
    command = [python, __file__, "--child", impl, json.dumps(asdict(w))]
    command += ["--iterations", str(args.iterations), "--threads", str(setting.threads)]
    command += [f"--plugin={path}" for path in args.plugin]
    env = setting.environment()
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def conv4_forward_flops(image: int = 28, channels: int = 64, in_channels: int = 1) -> int:
    """FLOPs (2 per multiply-add) of one max-pool Conv4 forward on one image, head included."""
    flops, size, c_in = 0, image, in_channels
    for _ in range(4):
        flops += 2 * size * size * channels * c_in * 9
        size, c_in = size // 2, channels
    return flops + 2 * channels * size * size * N_WAY


def nominal_flops(w: Workload) -> float:
    """Nominal FLOPs of one meta-iteration, in conv4 forward passes over single images.

    Query images cost a forward and a backward (3 forwards); support images cost 3 forwards per
    inner step, plus 4 more for the second-order backward through each step.
    """
    n_support, n_query = N_WAY * N_SHOT, N_WAY * w.n_query
    per_support_step = 3 if w.first_order else 7
    images = 3 * n_query + per_support_step * n_support * w.inner_steps
    return float(w.meta_batch_size * images * conv4_forward_flops())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--impl", nargs="+", default=["metalearn", "metalearn-loop"])
    parser.add_argument("--queries", nargs="+", type=int, default=[1, 15])
    parser.add_argument("--steps", nargs="+", type=int, default=[1])
    parser.add_argument("--order", nargs="+", choices=["second", "first"], default=["second"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median taken)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per run")
    parser.add_argument(
        "--settings",
        nargs="+",
        type=Setting.parse,
        default=[Setting.parse(t) for t in ("unset:1", "unset:2", "PASSIVE:1", "PASSIVE:2")],
        help="OMP_WAIT_POLICY:threads pairs each implementation runs under ('unset' removes "
        "the variable); the summary compares each implementation's best with metalearn's best",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads of a --child run")
    parser.add_argument(
        "--peak-gflops",
        type=float,
        default=None,
        help="float32 matmul peak of the machine, for the %% column (default: measured at "
        "start, a 4096^3 matmul on --threads threads)",
    )
    parser.add_argument(
        "--plugin", action="append", default=[], help="file defining IMPLEMENTATIONS (peers)"
    )
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_plugins(args.plugin)
    if args.child:
        w = Workload(**json.loads(args.child[1]))
        print(json.dumps(measure(args.child[0], w, args.iterations, args.threads)))
        return
    settings = ", ".join(map(str, args.settings))
    if args.peak_gflops is None:
        torch.set_num_threads(args.threads)
        args.peak_gflops = matmul_gflops()
    print(
        f"torch {torch.__version__}, {platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs, "
        f"settings (OMP_WAIT_POLICY:threads) {settings}, "
        f"median of {args.repeats} runs x {args.iterations} iterations, "
        f"1-min load average before {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"% of peak: of {args.peak_gflops:.0f} GFLOP/s (float32 matmul)\n"
    )
    print(
        "| implementation | queries/class | inner steps | order | setting | s/iteration "
        "| CPU s/iteration | tasks/s | GFLOP/s (% of peak) | peak RSS (GB) | RSS increase (GB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    best: dict[tuple[Workload, str], tuple[float, Setting, float]] = {}
    for n_query in args.queries:
        for steps in args.steps:
            for order in args.order:
                w = Workload(n_query, steps, order == "first")
                for impl in args.impl:
                    for setting in args.settings:
                        tasks_per_s, peak = measure_cell(impl, w, setting, args)
                        if (w, impl) not in best or tasks_per_s > best[w, impl][0]:
                            best[w, impl] = (tasks_per_s, setting, peak)
    print_best_vs_best(best, args.impl)


def measure_cell(
    impl: str, w: Workload, setting: Setting, args: argparse.Namespace
) -> tuple[float, float]:
    """Print one row (median of ``args.repeats`` runs); return its tasks/s and peak RSS."""
    runs = [run_isolated(impl, w, setting, args) for _ in range(args.repeats)]
    s = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    peak = statistics.median(r["peak_gb"] for r in runs)
    delta = statistics.median(r["delta_gb"] for r in runs)
    gflops = nominal_flops(w) / s / 1e9
    order = "first" if w.first_order else "second"
    print(
        f"| {impl} | {w.n_query} | {w.inner_steps} | {order} | {setting} | {s:.3f} | {cpu:.3f} "
        f"| {w.meta_batch_size / s:.1f} | {gflops:.1f} "
        f"({100 * gflops / args.peak_gflops:.0f}%) | {peak:.2f} | {delta:.2f} |",
        flush=True,
    )
    return w.meta_batch_size / s, peak


def print_best_vs_best(
    best: dict[tuple[Workload, str], tuple[float, Setting, float]], impls: list[str]
) -> None:
    """Print each implementation's best setting and metalearn's best tasks/s over it."""
    ours = impls[0]
    print(f"\nBest setting of each implementation; the ratio is {ours}'s best over its best.\n")
    print(
        "| implementation | queries/class | inner steps | order | best setting | tasks/s "
        f"| peak RSS (GB) | {ours} best / this best |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (w, impl), (tasks_per_s, setting, peak) in best.items():
        ratio = best[w, ours][0] / tasks_per_s
        order = "first" if w.first_order else "second"
        print(
            f"| {impl} | {w.n_query} | {w.inner_steps} | {order} | {setting} "
            f"| {tasks_per_s:.1f} | {peak:.2f} | {ratio:.2f}x |"
        )


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(size: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of ``repeats`` float32 ``size``^3 matmuls."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    return 2 * size**3 / best_seconds(lambda: a @ b, repeats) / 1e9


def cpu_model() -> str:
    """The CPU's model name and its widest vector extensions (they change between machines)."""
    try:
        with open("/proc/cpuinfo") as file:
            lines = file.read().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), "?")
    flags = set(next((x for x in lines if x.startswith("flags")), "").split())
    wide = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({' '.join(wide) or 'no AVX2'})"


if __name__ == "__main__":
    main()
