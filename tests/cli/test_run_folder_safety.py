"""Refused commands change nothing; resume compares the whole config; locks; divergence advice."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cli.cli_fixtures import SMALL_SINUSOID_RUN as SINUSOID
from metalearn.training import load_checkpoint, read_metrics


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def finished(run_cli) -> Path:
    code, _, err = run_cli("train", *SINUSOID, "--train.steps=4", "--run-dir", "R", "--no-test")
    assert code == 0, err
    return Path("R")


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def test_a_refused_run_dir_leaves_the_run_folder_byte_identical(run_cli, finished):
    before = snapshot(finished)
    code, _, err = run_cli(
        "train", *SINUSOID, "--train.outer_lr=0.1", "--train.steps=2", "--run-dir", "R"
    )
    assert code == 1
    assert "already holds checkpoint.pt" in one_line_error(err)
    assert snapshot(finished) == before
    assert run_cli("evaluate", "R", "--episodes", "5")[0] == 0  # still a working run


def test_a_refused_resume_leaves_the_run_folder_byte_identical(run_cli, finished):
    before = snapshot(finished)
    code, _, err = run_cli("train", "--resume", "R", "--train.outer_lr=0.1", "--no-test")
    assert code == 2
    assert "train.outer_lr (0.001 -> 0.1)" in one_line_error(err)
    assert snapshot(finished) == before
    code, _, err = run_cli("train", "--resume", "R", "--train.steps=6", "--no-test")
    assert code == 0, err  # a later resume is not blocked


def test_resume_refuses_an_edited_config_json_and_lists_every_differing_field(run_cli, finished):
    config = json.loads((finished / "config.json").read_text())
    config["algorithm"]["inner_lr"] = 0.5
    config["model"]["hidden"] = 41
    (finished / "config.json").write_text(json.dumps(config))
    before = snapshot(finished)
    code, _, err = run_cli("train", "--resume", "R", "--train.steps=6", "--no-test")
    assert code == 2
    line = one_line_error(err)
    assert "algorithm.inner_lr (0.01 -> 0.5)" in line
    assert "model.hidden (40 -> 41)" in line
    assert "train.steps" not in line  # a documented changeable field
    assert snapshot(finished) == before


def test_resume_accepts_the_documented_changeable_fields(run_cli, finished):
    code, _, err = run_cli(
        "train",
        "--resume",
        "R",
        "--train.steps=6",
        "--train.log_every=1",
        "--train.checkpoint_every=3",
        "--eval.episodes=7",
        "--device=auto",
        "--no-test",
    )
    assert code == 0, err
    assert load_checkpoint("R/checkpoint.pt")["step"] == 6


def test_allow_change_names_a_known_field_and_needs_resume(run_cli, finished):
    code, _, err = run_cli("train", "--resume", "R", "--allow-change", "train.outer", "--no-test")
    assert code == 2
    assert "did you mean train.outer_lr" in one_line_error(err)
    code, _, err = run_cli("train", *SINUSOID, "--allow-change", "train.outer_lr")
    assert code == 2
    assert "--resume only" in one_line_error(err)
    assert not Path("runs").exists()


def test_divergence_between_log_steps_keeps_the_last_good_checkpoint_and_its_advice_works(
    run_cli,
):
    common = ["--train.checkpoint_every=5", "--train.log_every=5", "--no-test"]
    code, _, err = run_cli("train", *SINUSOID, "--train.steps=10", *common, "--run-dir", "R")
    assert code == 0, err
    good = Path("R/checkpoint.pt").read_bytes()
    code, _, err = run_cli(
        "train", "--resume", "R", "--train.steps=20", "--allow-change", "train.outer_lr",
        "--train.outer_lr=1e9", "--no-test",
    )  # fmt: skip
    assert code == 1
    line = one_line_error(err)
    step = int(re.search(r"at step (\d+)", line).group(1))
    assert 10 < step < 15  # not a log step: caught where it happened
    assert Path("R/checkpoint.pt").read_bytes() == good
    advice = re.search(r"(metalearn train --resume .*)$", line).group(1)
    argv = shlex.split(advice)[1:]
    assert argv[:5] == ["train", "--resume", "R", "--allow-change", "train.outer_lr"]
    argv[-1] = "--train.outer_lr=0.0005"  # the advice with a sensible rate
    code, _, err = run_cli(*argv, "--train.steps=20", "--no-test")
    assert code == 0, err
    rows = [r for r in read_metrics("R/metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert rows[-1]["lr"] == pytest.approx(0.0005)
    weights = load_checkpoint("R/checkpoint.pt")["learner"]
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_the_issue_example_never_writes_non_finite_weights(run_cli):
    code, _, err = run_cli(
        "train", *SINUSOID, "--train.outer_lr=1e9", "--train.checkpoint_every=1",
        "--train.log_every=5", "--train.steps=20", "--run-dir", "R",
    )  # fmt: skip
    assert code == 1
    assert "--allow-change train.outer_lr" in one_line_error(err)
    for name in ("checkpoint.pt", "best.pt"):
        if Path("R", name).exists():
            weights = load_checkpoint(Path("R", name))["learner"]
            assert all(torch.isfinite(w).all() for w in weights.values()), name


def test_a_second_process_on_a_training_run_folder_is_refused_with_the_holders_pid(
    run_cli, tmp_path
):
    script = Path(sys.executable).with_name("metalearn")
    args = [*SINUSOID, "--train.steps=100000", "--train.checkpoint_every=1", "--no-test"]
    env = {**os.environ, "CI": "1"}
    with subprocess.Popen(
        [str(script), "train", *args, "--run-dir", "R"], env=env, stderr=subprocess.DEVNULL
    ) as proc:
        try:
            deadline = time.monotonic() + 120
            while not Path("R/checkpoint.pt").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            config = Path("R/config.json").read_bytes()
            for argv in (["--resume", "R"], [*SINUSOID, "--run-dir", "R"]):
                code, _, err = run_cli("train", *argv, "--no-test")
                assert code == 1
                assert f"R is in use: process {proc.pid} is training in it" in one_line_error(err)
                assert Path("R/config.json").read_bytes() == config
        finally:
            proc.send_signal(signal.SIGKILL)
    step = load_checkpoint("R/checkpoint.pt")["step"]
    code, _, err = run_cli("train", "--resume", "R", f"--train.steps={step + 2}", "--no-test")
    assert code == 0, err  # SIGKILL left no lock behind
    assert not [p for p in Path("R").iterdir() if p.name.endswith(".tmp")]


def test_stale_temporaries_go_at_the_next_start(run_cli, finished):
    stale = finished / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    code, _, err = run_cli("train", "--resume", "R", "--train.steps=5", "--no-test")
    assert code == 0, err
    assert not stale.exists()
