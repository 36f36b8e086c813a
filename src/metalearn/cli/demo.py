"""``metalearn demo``: the README's main job, a short real end-to-end run.

It meta-trains a metric learner (ProtoNet) and a gradient learner (first-order MAML) on
Omniglot from the data root, and MAML on sinusoids; meta-tests each on fixed test episodes; and
writes a Markdown report with the numbers and the plots. A few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from metalearn.cli.common import normalize_overrides, print_result
from metalearn.cli.overrides import apply_overrides
from metalearn.cli.plot import plot_run
from metalearn.config import RunConfig
from metalearn.config_checks import check_config
from metalearn.presets import get_preset
from metalearn.training.plots import plot_steps
from metalearn.utils.io import atomic_write_text
from metalearn.workflows import train_and_test

__all__ = ["add_parser", "demo_configs", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``metalearn demo``."""
    parser = subparsers.add_parser("demo", help="short end-to-end run: train, meta-test, report")
    parser.add_argument("--out", default=None, help="output folder (default: runs/demo-<time>)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every training length (e.g. 0.1)"
    )
    parser.set_defaults(run=run, accepts_overrides=True)


def _shorten(config: RunConfig, steps: int, **changes: Any) -> RunConfig:
    """Return ``config`` trained for ``steps`` outer steps, validated and saved 4 times."""
    every = max(1, steps // 4)
    train = replace(
        config.train,
        steps=steps,
        eval_every=every,
        checkpoint_every=every,
        log_every=max(1, steps // 50),
    )
    return replace(config, name=f"demo-{config.name}", train=train, **changes)


def demo_configs(scale: float = 1.0) -> list[RunConfig]:
    """Return the demo's runs: short versions of three presets, sized for 2 CPU cores."""

    def steps(n: int) -> int:
        return max(4, int(n * scale))

    protonet = get_preset("protonet-omniglot-5w1s")
    maml = get_preset("fomaml-omniglot-5w1s")
    sinusoid = get_preset("maml-sinusoid")
    return [
        # 20-way training episodes instead of the paper's 60-way: a third of the compute.
        _shorten(
            protonet,
            steps(400),
            data=replace(protonet.data, n_way=20),
            eval=replace(protonet.eval, episodes=200, val_episodes=50),
        ),
        _shorten(
            replace(maml, train=replace(maml.train, meta_batch_size=8)),
            steps(1000),
            eval=replace(maml.eval, episodes=200, val_episodes=50),
        ),
        _shorten(
            sinusoid,
            steps(10000),
            eval=replace(sinusoid.eval, episodes=200, val_episodes=50),
        ),
    ]


def run(args: argparse.Namespace) -> int:
    """Train and meta-test every demo run, then write ``report.md``."""
    out = Path(args.out) if args.out else Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = normalize_overrides(args.overrides)
    rows, started = [], time.perf_counter()
    for config in demo_configs(args.scale):
        config = check_config(apply_overrides(config, overrides))
        run_dir = out / config.name
        print(f"== {config.description}: {config.train.steps} steps -> {run_dir}", flush=True)
        began = time.perf_counter()
        result = train_and_test(config, run_dir, report=print_result)
        assert result is not None  # train_and_test meta-tests unless told not to
        plots = plot_run(run_dir)
        if result.by_steps:
            plots.append(plot_steps(result, run_dir / "steps.png", title=config.description))
        rows.append((config, result, time.perf_counter() - began, plots))
    report = _report(rows, out, time.perf_counter() - started)
    atomic_write_text(report, out / "report.md")
    print(f"\nreport: {out / 'report.md'}")
    return 0


def _report(rows: list[tuple[RunConfig, Any, float, list[Path]]], out: Path, total: float) -> str:
    lines = [
        "# metalearn demo",
        "",
        f"Short runs on this machine ({total / 60:.1f} min in all); "
        "the presets' full lengths are in `metalearn presets`.",
        "",
        "| run | steps | test metric | mean | 95% CI | episodes | time |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for config, result, seconds, _ in rows:
        lines.append(
            f"| {config.description} | {config.train.steps} | {result.metric} | "
            f"{result.mean:.4f} | ± {result.ci95:.4f} | {result.n} | {seconds:.0f} s |"
        )
    for config, result, _, plots in rows:
        lines += [
            "",
            f"## {config.description}",
            "",
            f"Preset `{config.name}` ({config.reference}).",
        ]
        for n_steps, summary in result.steps_summary().items():
            lines.append(f"- after {n_steps} steps: {summary.mean:.4f} ± {summary.ci95:.4f}")
        lines += [f"![{p.stem}]({p.relative_to(out)})" for p in plots]
    return "\n".join(lines) + "\n"
