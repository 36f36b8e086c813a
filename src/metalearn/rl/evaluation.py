"""Evaluation as in the MAML paper: average return on new tasks after 0, 1, 2, 3 gradient steps.

Each step adapts with vanilla policy gradient on fresh rollouts of the current fast policy
(``inner_lr``; the linear baseline refit each time). The results of several policies (the
meta-learned one, one pretrained on all tasks, a random initialisation) go into a Markdown
table and a PNG plot; matplotlib is imported inside :func:`plot_adaptation` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from metalearn.rl.learner import MetaRLLearner
from metalearn.rl.tasks import Task
from metalearn.utils.io import atomic_write_text
from metalearn.utils.stats import mean_ci95

__all__ = [
    "adaptation_returns",
    "format_adaptation_table",
    "plot_adaptation",
    "write_adaptation_report",
]


def adaptation_returns(
    learner: MetaRLLearner,
    tasks: Sequence[Task],
    *,
    n_steps: int = 3,
    inner_lr: float | None = None,
) -> Tensor:
    """Return ``(n_tasks, n_steps + 1)``: each task's mean return after 0..n_steps steps.

    Args:
        learner: supplies the policy (its current parameters), sampler, baseline and step.
        tasks: the evaluation tasks (new ones: sample them with another seed than training).
        n_steps: the largest number of policy-gradient steps.
        inner_lr: the step size (default: the learner's ``inner_lr``).
    """
    fast = {name: p.detach() for name, p in learner.meta_params().items()}
    per_task = False
    returns = []
    for step in range(n_steps + 1):
        rollouts = learner.sampler.sample(learner.policy, fast, tasks, per_task=per_task)
        returns.append(rollouts.episode_returns().mean(-1))
        if step < n_steps:
            batch = learner.process(rollouts)
            fast = learner.adapt_tasks(fast, batch, per_task=per_task, lr=inner_lr)
            per_task = True
    return torch.stack(returns, dim=1)


def format_adaptation_table(results: Mapping[str, Tensor]) -> str:
    """A Markdown table of mean return ± 95% CI over tasks, per method and number of steps.

    Args:
        results: method name -> ``(n_tasks, n_steps + 1)`` returns from
            :func:`adaptation_returns`.

    Examples:
        >>> print(format_adaptation_table({"random": torch.tensor([[-3.0, -1.0]])}))
        | method | 0 steps | 1 step |
        | --- | ---: | ---: |
        | random | -3.00 ± 0.00 | -1.00 ± 0.00 |
    """
    n_columns = max(r.shape[1] for r in results.values())
    names = [f"{k} step{'s' if k != 1 else ''}" for k in range(n_columns)]
    lines = ["| method | " + " | ".join(names) + " |", "| --- |" + " ---: |" * n_columns]
    for method, returns in results.items():
        cells = [mean_ci95(returns[:, k]) for k in range(returns.shape[1])]
        lines.append(
            f"| {method} | " + " | ".join(f"{c.mean:.2f} ± {c.ci95:.2f}" for c in cells) + " |"
        )
    return "\n".join(lines)


def plot_adaptation(
    results: Mapping[str, Tensor], path: str | os.PathLike[str], *, title: str = ""
) -> None:
    """Plot mean return (± 95% CI) against the number of gradient steps into a PNG at ``path``.

    Draws on a ``matplotlib.figure.Figure`` (no pyplot), so the user's backend is untouched.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for method, returns in results.items():
        stats = [mean_ci95(returns[:, k]) for k in range(returns.shape[1])]
        steps = list(range(len(stats)))
        means, errors = [s.mean for s in stats], [s.ci95 for s in stats]
        ax.errorbar(steps, means, yerr=errors, marker="o", capsize=3, label=method)
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return")
    ax.set_xticks(list(range(max(r.shape[1] for r in results.values()))))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_adaptation_report(
    results: Mapping[str, Tensor], directory: str | os.PathLike[str], *, title: str = ""
) -> None:
    """Write ``adaptation.md`` (the table) and ``adaptation.png`` (the plot) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    atomic_write_text(
        format_adaptation_table(results) + "\n", os.path.join(directory, "adaptation.md")
    )
    plot_adaptation(results, os.path.join(directory, "adaptation.png"), title=title)
