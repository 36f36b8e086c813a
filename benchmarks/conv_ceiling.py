"""The most MAML tasks per second this CPU's convolutions allow, whatever the implementation.

A ceiling for ``maml_throughput.py``'s workloads (conv4, 64 filters, max-pool, 1x28x28, 5-way
1-shot, meta-batch 32, one inner step, second order): it counts only the conv FLOPs of one
meta-iteration (``nominal_flops``: 3 conv4 forwards per query image, 7 per support image) and
runs each of the four conv layers at the best rate measured for it on this machine, every image
of the meta-batch in one call with one shared filter (the largest, most efficient call; MAML's
per-task filters can only be slower), forward or backward (input and filter gradients),
channels-first or channels-last, whichever is fastest. Everything else of a meta-iteration
(BatchNorm, ReLU, pooling, the head, Adam, Python) is counted as free. No implementation can
beat the result on this machine; a target above it cannot be met here.

    python benchmarks/conv_ceiling.py --threads 2 --queries 1 15
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from maml_throughput import (
    IMAGE,
    N_SHOT,
    N_WAY,
    Workload,
    best_seconds,
    cpu_model,
    matmul_gflops,
    nominal_flops,
)

CHANNELS = 64


def layer_rates(images: int, repeats: int) -> list[tuple[int, int, float, float]]:
    """Per conv4 layer: ``(in_channels, size, forward GFLOP/s, backward GFLOP/s)``, best layout.

    The backward computes the input and filter gradients (twice the forward's FLOPs); the first
    layer's input needs none, so its backward computes the filter gradient only (as many FLOPs
    as the forward).
    """
    rates = []
    c_in, size = IMAGE[0], IMAGE[1]
    for layer in range(4):
        forward_flops = 2 * images * size * size * CHANNELS * c_in * 9
        best_forward = best_backward = 0.0
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.rand(images, c_in, size, size).to(memory_format=layout)
            w = (torch.rand(CHANNELS, c_in, 3, 3) - 0.5).to(memory_format=layout)
            z = F.conv2d(x, w, padding=1)
            grad = torch.rand_like(z)
            mask = [layer > 0, True, False]

            def forward(x: torch.Tensor = x, w: torch.Tensor = w) -> object:
                return F.conv2d(x, w, padding=1)

            def backward(
                x: torch.Tensor = x, w: torch.Tensor = w, g: torch.Tensor = grad, m: list = mask
            ) -> object:
                return torch.ops.aten.convolution_backward(
                    g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, m
                )

            backward_flops = forward_flops * (2 if layer > 0 else 1)
            best_forward = max(best_forward, forward_flops / best_seconds(forward, repeats) / 1e9)
            best_backward = max(
                best_backward, backward_flops / best_seconds(backward, repeats) / 1e9
            )
        rates.append((c_in, size, best_forward, best_backward))
        c_in, size = CHANNELS, size // 2
    return rates


def ceiling(w: Workload, repeats: int) -> tuple[float, list[tuple[int, int, float, float]]]:
    """Tasks/s if every layer's nominal conv FLOPs ran at its best measured rate, and the rates."""
    images = w.meta_batch_size * N_WAY * (N_SHOT + w.n_query)
    rates = layer_rates(images, repeats)
    task_flops = nominal_flops(w) / w.meta_batch_size  # FLOPs of one task
    total_forward = sum(2 * s * s * CHANNELS * c * 9 for c, s, _, _ in rates)
    seconds = 0.0
    for c_in, size, forward_rate, backward_rate in rates:
        share = 2 * size * size * CHANNELS * c_in * 9 / total_forward  # this layer's FLOPs
        seconds += task_flops * share / (max(forward_rate, backward_rate) * 1e9)
    return 1.0 / seconds, rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", nargs="+", type=int, default=[1, 15])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (best kept)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {cpu_model()}, {os.cpu_count()} CPUs, {args.threads} "
        f"threads, best of {args.repeats}, {time.strftime('%Y-%m-%d %H:%M')}; "
        f"float32 matmul 4096^3: {matmul_gflops(repeats=args.repeats):.0f} GFLOP/s\n"
    )
    print("| queries/class | layer | in channels | size | forward GFLOP/s | backward GFLOP/s |")
    print("|---|---|---|---|---|---|")
    summary = []
    for n_query in args.queries:
        w = Workload(n_query=n_query)
        tasks_per_s, rates = ceiling(w, args.repeats)
        for layer, (c_in, size, forward, backward) in enumerate(rates, 1):
            print(f"| {n_query} | {layer} | {c_in} | {size} | {forward:.1f} | {backward:.1f} |")
        summary.append((n_query, nominal_flops(w) / w.meta_batch_size / 1e9, tasks_per_s))
    print("\n| queries/class | nominal GFLOP per task | ceiling tasks/s (conv FLOPs only) |")
    print("|---|---|---|")
    for n_query, gflop, tasks_per_s in summary:
        print(f"| {n_query} | {gflop:.2f} | {tasks_per_s:.1f} |")


if __name__ == "__main__":
    main()
