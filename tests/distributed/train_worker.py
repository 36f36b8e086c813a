"""``metalearn train`` of sinusoid MAML in float64, optionally SIGKILLing rank 1 mid-run.

Usage: ``python train_worker.py RUN_DIR [KILL_AT]`` (one process) or the same under
``torchrun``. With ``KILL_AT``, rank 1 kills itself with SIGKILL when it draws meta-batch
``KILL_AT`` on torchrun's first attempt; a restarted worker writes ``restarted-<rank>`` in
``RUN_DIR``'s parent, then (being the CLI) resumes from the run's checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch

import metalearn.workflows
from metalearn.cli.main import main
from metalearn.training.distributed import restart_count

ARGS = [
    "train",
    "--preset=maml-sinusoid",
    "--no-test",
    "--train.steps=30",
    "--train.meta_batch_size=4",
    "--train.checkpoint_every=5",
    "--train.log_every=5",
    "--train.eval_every=10",
    "--eval.val_episodes=6",
    "--train.progress=false",
]


class KillAt:
    """Delegates to a task source; rank 1 SIGKILLs itself on drawing batch ``at``."""

    def __init__(self, tasks: Any, at: int) -> None:
        self.tasks, self.at, self.drawn = tasks, at, 0

    def sample_batch(self, n_tasks: int) -> Any:
        self.drawn += 1
        if self.drawn == self.at and os.environ.get("RANK") == "1" and restart_count() == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.tasks.sample_batch(n_tasks)

    def sample(self) -> Any:
        return self.tasks.sample()

    def state_dict(self) -> dict[str, Any]:
        return self.tasks.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks.load_state_dict(state)


def run(run_dir: Path, kill_at: int | None) -> int:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    if restart_count() > 0:
        (run_dir.parent / f"restarted-{os.environ['RANK']}").touch()
    if kill_at is not None:
        build_tasks = metalearn.workflows.build_tasks

        def killing_tasks(config: Any, subset: Any, **kwargs: Any) -> Any:
            tasks = build_tasks(config, subset, **kwargs)
            return KillAt(tasks, kill_at) if subset == "train" else tasks

        metalearn.workflows.build_tasks = killing_tasks  # type: ignore[assignment]
    return main([*ARGS, f"--run-dir={run_dir}"])


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None))
