"""A 2-process run equals a 1-process run (float64, 1e-10), with or without a killed rank.

Sinusoid MAML, 30 steps of 4 tasks, through ``metalearn train`` (train_worker.py). In the
third run, rank 1 is SIGKILLed at step 18; torchrun (``--max-restarts=1``) restarts both
workers, which resume from the step-15 checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from metalearn.training import load_checkpoint, read_metrics


@pytest.fixture(scope="module")
def single(tmp_path_factory, launcher) -> Path:
    """The run folder of the 1-process run."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    launcher.run([sys.executable, launcher.script("train_worker.py"), str(run_dir)])
    return run_dir


def assert_same_run(run_dir: Path, reference: Path) -> None:
    ours, theirs = (
        load_checkpoint(run_dir / "checkpoint.pt"),
        load_checkpoint(reference / "checkpoint.pt"),
    )
    assert ours["step"] == theirs["step"] == 30
    assert ours["learner"].keys() == theirs["learner"].keys()
    for name, expected in theirs["learner"].items():
        assert expected.dtype == torch.float64
        torch.testing.assert_close(ours["learner"][name], expected, rtol=0, atol=1e-10, msg=name)
    rows, expected_rows = (
        read_metrics(run_dir / "metrics.jsonl"),
        read_metrics(reference / "metrics.jsonl"),
    )
    assert [(r["step"], r["split"]) for r in rows] == [
        (r["step"], r["split"]) for r in expected_rows
    ]
    for row, expected in zip(rows, expected_rows, strict=True):
        key = "loss" if row["split"] == "train" else "mse"
        assert row[key] == pytest.approx(expected[key], rel=1e-10)


def test_two_processes_end_with_the_parameters_of_one(single, tmp_path, launcher):
    run_dir = tmp_path / "run"
    done = launcher.run(launcher.torchrun(launcher.script("train_worker.py"), str(run_dir)))
    assert done.stdout.count("run folder:") == 1  # rank 0 alone prints
    assert_same_run(run_dir, single)


def test_a_rank_killed_mid_run_is_restarted_and_the_run_ends_the_same(single, tmp_path, launcher):
    run_dir = tmp_path / "run"
    cmd = launcher.torchrun(launcher.script("train_worker.py"), str(run_dir), "18", max_restarts=1)
    launcher.run(cmd)
    assert (tmp_path / "restarted-0").is_file()
    assert (tmp_path / "restarted-1").is_file()
    assert_same_run(run_dir, single)
