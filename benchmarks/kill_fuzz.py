"""Kill fuzz: SIGKILL a sinusoid training run at seeded random points, resume it, compare.

Each round trains ``maml-sinusoid`` (short) in a run folder, kills the process with SIGKILL at
random moments -- half of them while a checkpoint is being written (every write is widened by
``METALEARN_WRITE_DELAY_S``) -- resumes it each time, and finally compares every parameter with
an uninterrupted run of the same configuration (``torch.equal``) and the logged losses.

    python benchmarks/kill_fuzz.py --minutes 8 --out kill_fuzz.json

It counts kills, kills inside a write, resumes, unreadable checkpoints, temporaries left after
the final run, and rounds whose result equals the uninterrupted run. Exit status 1 if any
checkpoint was unreadable or any round differed. ``tests/fuzz/test_kill_resume.py`` runs a
short version of :func:`fuzz_round`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from metalearn.errors import CheckpointError
from metalearn.training import load_checkpoint, read_metrics

ARGS = [
    "--preset",
    "maml-sinusoid",
    "--train.meta_batch_size=4",
    "--train.log_every=2",
    "--train.checkpoint_every=4",
    "--train.eval_every=8",
    "--eval.val_episodes=4",
    "--no-test",
]


@dataclass
class Counts:
    """What the fuzz saw, summed over rounds."""

    rounds: int = 0
    kills: int = 0
    kills_in_write: int = 0
    resumes: int = 0
    fresh_restarts: int = 0
    corrupt_checkpoints: int = 0
    stale_temporaries_after_final_run: int = 0
    equal_rounds: int = 0
    differing: list[str] = field(default_factory=list)


def _command() -> list[str]:
    script = Path(sys.executable).with_name("metalearn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "metalearn.cli.main"]


def _env(write_delay: float) -> dict[str, str]:
    return {**os.environ, "CI": "1", "METALEARN_WRITE_DELAY_S": str(write_delay)}


def _start(
    run_dir: Path, steps: int, env: dict[str, str], *, capture: bool = False
) -> tuple[subprocess.Popen[bytes], bool]:
    """Start training in ``run_dir``: a resume once it holds a checkpoint, else a fresh run."""
    resume = (run_dir / "checkpoint.pt").exists()
    where = (
        ["--resume", str(run_dir), "--no-test"] if resume else [*ARGS, "--run-dir", str(run_dir)]
    )
    argv = [*_command(), "train", *where, f"--train.steps={steps}"]
    stderr = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    return proc, resume


def _temporaries(run_dir: Path) -> set[Path]:
    return set(run_dir.glob(".*.pt.*.tmp"))


def _writing(run_dir: Path, stale: set[Path]) -> bool:
    """Whether a checkpoint write is under way (not counting temporaries of earlier kills)."""
    return bool(_temporaries(run_dir) - stale)


def _training(proc: subprocess.Popen[bytes], run_dir: Path) -> bool:
    """Whether ``proc`` holds the run folder's lock (it has started training)."""
    try:
        return (run_dir / ".lock").read_text().strip() == str(proc.pid)
    except OSError:
        return False


def _wait(proc: subprocess.Popen[bytes], until: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None and not until():
        time.sleep(0.005)


def _logged_step(run_dir: Path) -> int:
    rows = read_metrics(run_dir / "metrics.jsonl")
    return int(rows[-1]["step"]) if rows else 0


def _kill_at_random(
    proc: subprocess.Popen[bytes], run_dir: Path, rng: random.Random, steps: int, window: float
) -> tuple[bool, bool]:
    """SIGKILL ``proc`` in a checkpoint write or at a random time: ``(killed, in_write)``.

    Half of the kills wait for a write that replaces an existing checkpoint (a kill in the very
    first write only restarts the run); the others wait until a random step is logged, then up
    to ``window`` seconds more (so they land anywhere, whatever the machine's speed).
    """
    stale = _temporaries(run_dir)  # left by the previous kill; the new process deletes them
    _wait(proc, lambda: _training(proc, run_dir), 300.0)
    if rng.random() < 0.5:
        _wait(
            proc, lambda: (run_dir / "checkpoint.pt").exists() and _writing(run_dir, stale), 300.0
        )
    else:
        target = rng.randint(1, steps - 1)
        _wait(proc, lambda: _logged_step(run_dir) >= target, 300.0)
        _wait(proc, lambda: False, rng.uniform(0.0, window))
    if proc.poll() is not None:
        return False, False  # it finished first
    in_write = _writing(run_dir, stale)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True, in_write


def _readable(path: Path) -> bool:
    try:
        load_checkpoint(path)
    except CheckpointError:
        return False
    return True


def _same_run(a: Path, b: Path) -> list[str]:
    """Names of what differs between two finished runs (empty: bit-identical parameters)."""
    left, right = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    diffs = [
        k for k in right["learner"] if not torch.equal(left["learner"][k], right["learner"][k])
    ]
    if left["step"] != right["step"]:
        diffs.append("step")

    def losses(run: Path) -> list[tuple[int, float]]:
        rows = read_metrics(run / "metrics.jsonl")
        return [(r["step"], r["loss"]) for r in rows if r["split"] == "train"]

    if losses(a) != losses(b):
        diffs.append("metrics.jsonl losses")
    return diffs


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"training failed ({proc.returncode}): {err.decode()[-500:]}")


def fuzz_round(
    workdir: Path,
    seed: int,
    *,
    kills: int,
    steps: int,
    write_delay: float,
    counts: Counts,
    window: float = 0.2,
) -> None:
    """One round: ``kills`` SIGKILLs and resumes, a final resume, and the comparison.

    Random kills land up to ``window`` seconds after a random logged step.
    """
    rng = random.Random(seed)
    env = _env(write_delay)
    killed, whole = workdir / f"killed-{seed}", workdir / f"whole-{seed}"
    for _ in range(kills):
        proc, resumed = _start(killed, steps, env)
        counts.resumes += resumed
        counts.fresh_restarts += not resumed
        try:
            was_killed, in_write = _kill_at_random(proc, killed, rng, steps, window)
        finally:
            proc.kill()  # never leave a child behind (no-op once it has exited)
            proc.wait()
        counts.kills += was_killed
        counts.kills_in_write += in_write
        for name in ("checkpoint.pt", "best.pt"):
            if (killed / name).exists() and not _readable(killed / name):
                counts.corrupt_checkpoints += 1
    proc, resumed = _start(killed, steps, env, capture=True)
    counts.resumes += resumed
    _finish(proc)
    counts.stale_temporaries_after_final_run += len(list(killed.glob(".*.tmp")))
    proc, _ = _start(whole, steps, env, capture=True)
    _finish(proc)
    diffs = _same_run(killed, whole)
    counts.rounds += 1
    counts.equal_rounds += not diffs
    if diffs:
        counts.differing.append(f"seed {seed}: {', '.join(diffs)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="stop starting rounds after")
    parser.add_argument("--kills", type=int, default=6, help="kills per round")
    parser.add_argument("--steps", type=int, default=80, help="outer steps of each run")
    parser.add_argument("--write-delay", type=float, default=0.05, help="seconds per write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="kill_fuzz_runs")
    parser.add_argument("--out", default=None, help="JSON file for the counts")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    counts, started, seed = Counts(), time.monotonic(), args.seed
    while time.monotonic() - started < args.minutes * 60:
        fuzz_round(
            workdir, seed, kills=args.kills, steps=args.steps, write_delay=args.write_delay,
            counts=counts,
        )  # fmt: skip
        print(json.dumps(asdict(counts)), flush=True)
        seed += 1
    summary = {**asdict(counts), "minutes": (time.monotonic() - started) / 60}
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    return int(bool(counts.corrupt_checkpoints or counts.differing))


if __name__ == "__main__":
    sys.exit(main())
