"""Time to accuracy: metalearn's MAML and learn2learn's, each for the same wall-clock budget.

Both meta-train MAML (second order) on Omniglot 5-way 1-shot with the hyper-parameters of the
``maml-omniglot-5w1s`` preset (MAML's split of 1,200 training characters with rotations, strided
conv4 with spatial mean pooling, one inner step at 0.4, meta-batch 32, Adam 1e-3, one query per
class) on the same task stream (metalearn's sampler, seed 0), one after the other, each in a
process of its own with 2 threads and ``OMP_WAIT_POLICY`` unset (the best setting of both in
BENCHMARKS.md's throughput table). learn2learn runs the logic of its
``examples/vision/maml_omniglot.py``: its ``OmniglotCNN``, ``MAML.clone()`` and ``adapt`` per
task, each task's backward at once, the summed gradients scaled by 1/32, ``Adam.step``.
metalearn runs ``meta_train`` as ``metalearn train`` does.

The clock counts training only: it stops while the same 200 validation episodes (15 queries per
class, 3 adaptation steps as the preset tests) are scored after each budget mark. At the end
each final model is tested on the preset's 600 test episodes (one query per class).

    .venv/bin/python benchmarks/time_to_accuracy.py --minutes 30 --out runs/tta

writes ``<impl>.jsonl`` (one row per validation), ``<impl>-test.json``, ``time-to-accuracy.png``
and prints the table of BENCHMARKS.md; ``metalearn-run/`` is metalearn's run folder (its
checkpoint is from the last multiple of 250 steps), which ``metalearn evaluate`` reads.
learn2learn's process runs with ``PEERS_PYTHON`` (default ``/work/peers-venv/bin/python``, see
``benchmarks/setup_peers.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = os.environ.get("PEERS_PYTHON", "/work/peers-venv/bin/python")
PRESET = "maml-omniglot-5w1s"
VAL_EPISODES, VAL_QUERIES, TEST_EPISODES = 200, 15, 600
REPORT_MINUTES = (5, 10, 20, 30)


def marks(minutes: float) -> list[float]:
    """Training seconds after which to validate: every minute up to 5, then every 2.5."""
    points = [m for m in (1, 2, 3, 4) if m < minutes]
    m = 5.0
    while m < minutes:
        points.append(m)
        m += 2.5
    return [p * 60 for p in points] + [minutes * 60]


class TrainingClock:
    """Wall-clock seconds of training only: paused while validating."""

    def __init__(self) -> None:
        self.trained_s = 0.0
        self.resumed = time.perf_counter()

    def pause(self) -> float:
        self.trained_s += time.perf_counter() - self.resumed
        return self.trained_s

    def resume(self) -> None:
        self.resumed = time.perf_counter()


class BudgetSpentError(Exception):
    """Raised from the validation hook when the training budget is spent."""


class StepHook:
    """A task source that calls ``after_step(n)`` when the loop asks for step n + 1's batch.

    It lets ``meta_train`` run untouched (no validation hook inside the timed loop).
    """

    def __init__(self, tasks: Any, after_step: Callable[[int], None]) -> None:
        self.tasks, self.after_step, self.drawn = tasks, after_step, 0

    def sample_batch(self, n_tasks: int) -> Any:
        if self.drawn:
            self.after_step(self.drawn)
        self.drawn += 1
        return self.tasks.sample_batch(n_tasks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tasks, name)


# --- the child process: one implementation --------------------------------------------------


def config_and_episodes() -> tuple[Any, list[Any], list[Any]]:
    """The preset, and its fixed validation and test episodes (metalearn's sampler)."""
    from metalearn.build import build_tasks
    from metalearn.presets import get_preset

    config = get_preset(PRESET)
    data_root = os.environ.get("METALEARN_DATA", str(ROOT.parent / "shared" / "datasets"))
    config = replace(config, data=replace(config.data, root=data_root))
    val_config = replace(config, eval=replace(config.eval, n_query=VAL_QUERIES))
    val = list(build_tasks(val_config, "val").episodes(VAL_EPISODES))
    test = list(build_tasks(config, "test").episodes(TEST_EPISODES))
    return config, val, test


def run_child(impl: str, minutes: float, out: Path) -> None:
    import torch

    from metalearn.utils.stats import mean_ci95

    torch.set_num_threads(2)
    config, val, test = config_and_episodes()
    torch.manual_seed(0)
    if impl == "metalearn":
        train, evaluate = metalearn_run(config, out)
    else:
        train, evaluate = learn2learn_run(config)
    clock, pending, rows = TrainingClock(), marks(minutes), []
    log = (out / f"{impl}.jsonl").open("w")

    def after_step(step: int) -> None:
        if clock.pause() < pending[0]:
            clock.resume()
            return
        pending.pop(0)
        accuracy = evaluate(val)
        row = {"train_s": clock.trained_s, "step": step, "val_accuracy": accuracy}
        rows.append(row)
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(impl, row, flush=True)
        if not pending:
            raise BudgetSpentError
        clock.resume()

    with contextlib.suppress(BudgetSpentError):
        train(after_step)
    log.close()
    test_result = mean_ci95(evaluate(test, per_episode=True))
    result = {"mean": test_result.mean, "ci95": test_result.ci95, "episodes": test_result.n}
    result.update(steps=rows[-1]["step"], train_s=rows[-1]["train_s"])
    (out / f"{impl}-test.json").write_text(json.dumps(result, indent=2) + "\n")
    print(impl, "test", result, flush=True)


def metalearn_run(config: Any, out: Path) -> tuple[Callable, Callable]:
    import torch

    from metalearn.build import build_learner, build_tasks
    from metalearn.config import to_dict
    from metalearn.training.evaluation import meta_test
    from metalearn.training.loop import meta_train

    learner = build_learner(config)
    tasks = build_tasks(config, "train")

    def train(after_step: Callable[[int], None]) -> None:
        # a run folder that `metalearn evaluate` reads (checkpoint every 250 steps)
        cfg = replace(config.train, steps=10**6, eval_every=0, checkpoint_every=250, progress=False)
        run_dir = out / "metalearn-run"
        extra = {"config": to_dict(config)}
        meta_train(learner, StepHook(tasks, after_step), cfg, run_dir=run_dir, extra_state=extra)

    def evaluate(episodes: list[Any], per_episode: bool = False) -> Any:
        with torch.random.fork_rng():  # validation leaves the training stream as it was
            result = meta_test(learner, episodes, batch_size=16, progress=False)
        return result.values.tolist() if per_episode else result.mean

    return train, evaluate


def learn2learn_run(config: Any) -> tuple[Callable, Callable]:
    """learn2learn's examples/vision/maml_omniglot.py, on metalearn's task stream."""
    import learn2learn as l2l
    import torch
    from torch import nn

    from metalearn.build import build_tasks

    ways, algo, train_cfg = config.data.n_way, config.algorithm, config.train
    model = l2l.vision.models.OmniglotCNN(ways)
    maml = l2l.algorithms.MAML(model, lr=algo.inner_lr, first_order=False)
    opt = torch.optim.Adam(maml.parameters(), train_cfg.outer_lr)
    loss = nn.CrossEntropyLoss(reduction="mean")
    tasks = build_tasks(config, "train")

    def fast_adapt(support_x, support_y, query_x, query_y, learner, steps):
        for _ in range(steps):
            learner.adapt(loss(learner(support_x), support_y))
        predictions = learner(query_x)
        accuracy = (predictions.argmax(dim=1) == query_y).float().mean()
        return loss(predictions, query_y), accuracy

    def train(after_step: Callable[[int], None]) -> None:
        for iteration in range(1, 10**6):
            opt.zero_grad()
            batch = tasks.sample_batch(train_cfg.meta_batch_size)
            for task in range(train_cfg.meta_batch_size):
                learner = maml.clone()
                error, _ = fast_adapt(*(t[task] for t in batch[:4]), learner, algo.inner_steps)
                error.backward()
            for p in maml.parameters():
                p.grad.data.mul_(1.0 / train_cfg.meta_batch_size)
            opt.step()
            after_step(iteration)

    def evaluate(episodes: list[Any], per_episode: bool = False) -> Any:
        values = []
        for episode in episodes:
            learner = maml.clone()
            _, accuracy = fast_adapt(*episode[:4], learner, algo.eval_inner_steps)
            values.append(float(accuracy))
        return values if per_episode else sum(values) / len(values)

    return train, evaluate


# --- the parent: both, one after the other; figure and table ---------------------------------


def child_command(impl: str, args: argparse.Namespace) -> list[str]:
    python = sys.executable if impl == "metalearn" else PEERS_PYTHON
    return [python, __file__, "--child", impl, "--minutes", str(args.minutes), "--out", args.out]


def child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(ROOT / "src")  # the peers' venv imports metalearn's sampler
    return env


def read_rows(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def accuracy_at(rows: list[dict[str, float]], seconds: float) -> float | None:
    """Validation accuracy of the last validation within ``seconds`` of training."""
    if rows[-1]["train_s"] < seconds - 1.0:  # beyond the budget
        return None
    within = [r for r in rows if r["train_s"] <= seconds + 1.0]
    return within[-1]["val_accuracy"] if within else None


def time_to_reach(rows: list[dict[str, float]], accuracy: float) -> float | None:
    return next((r["train_s"] for r in rows if r["val_accuracy"] >= accuracy), None)


def report(out: Path, impls: list[str]) -> Iterator[str]:
    runs = {impl: read_rows(out / f"{impl}.jsonl") for impl in impls}
    tests = {impl: json.loads((out / f"{impl}-test.json").read_text()) for impl in impls}
    head = " | ".join(f"val. {m} min" for m in REPORT_MINUTES)
    yield f"| implementation | steps | {head} | test (600 episodes, 95% CI) |"
    yield "|---|---:|" + "---:|" * len(REPORT_MINUTES) + "---:|"
    for impl, rows in runs.items():
        cells = [accuracy_at(rows, 60 * m) for m in REPORT_MINUTES]
        text = " | ".join("" if a is None else f"{100 * a:.2f} %" for a in cells)
        t = tests[impl]
        test = f"{100 * t['mean']:.2f} ± {100 * t['ci95']:.2f} %"
        yield f"| {impl} | {t['steps']} | {text} | {test} |"
    if "learn2learn" in runs and "metalearn" in runs:
        target = runs["learn2learn"][-1]["val_accuracy"]
        reached = time_to_reach(runs["metalearn"], target)
        when = "not within the budget" if reached is None else f"after {reached / 60:.1f} min"
        yield ""
        yield (
            f"learn2learn's validation accuracy after its budget, {100 * target:.2f} %: "
            f"metalearn reached it {when}."
        )


def plot(out: Path, impls: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for impl in impls:
        rows = read_rows(out / f"{impl}.jsonl")
        minutes = [r["train_s"] / 60 for r in rows]
        ax.plot(minutes, [100 * r["val_accuracy"] for r in rows], marker="o", label=impl)
    ax.set_xlabel("training wall-clock (minutes, 2 threads, validation excluded)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"MAML, Omniglot 5-way 1-shot ({PRESET}): time to accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "time-to-accuracy.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget of each")
    parser.add_argument("--out", default="runs/time-to-accuracy")
    parser.add_argument("--impl", nargs="+", default=["learn2learn", "metalearn"])
    parser.add_argument("--report-only", action="store_true", help="table and figure only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        run_child(args.child, args.minutes, out)
        return
    if not args.report_only:
        for impl in args.impl:
            subprocess.run(child_command(impl, args), env=child_environment(), check=True)
    plot(out, args.impl)
    print("\n".join(report(out, args.impl)))


if __name__ == "__main__":
    main()
