import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from metalearn.training import load_checkpoint, read_metrics

SINUSOID = [
    "--preset",
    "maml-sinusoid",
    "--train.meta_batch_size=4",
    "--train.log_every=2",
    "--eval.episodes=20",
    "--eval.val_episodes=10",
    "--eval.inner_steps=0,1",
]


def test_train_writes_config_metrics_checkpoints_plots_and_a_test_result(run_cli):
    code, out, err = run_cli(
        "train", *SINUSOID, "--train.steps=6", "--train.eval_every=3", "--run-dir", "run"
    )
    assert code == 0, err
    run = Path("run")
    assert {
        "config.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "best.pt",
        "curves.png",
        "test.json",
    } <= {p.name for p in run.iterdir()}
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows if r["split"] == "train"] == [2, 4, 6]
    assert [r["step"] for r in rows if r["split"] == "val"] == [3, 6]
    assert all(r["mse"] > 0 for r in rows if r["split"] == "val")
    result = json.loads((run / "test.json").read_text())
    assert result["metric"] == "mse"
    assert result["episodes"] == 20
    assert set(result["by_inner_steps"]) == {"0", "1"}
    assert f"test mse: mse {result['mean']:.4f}" in out
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 6


def test_resume_continues_to_the_new_step_count(run_cli):
    assert run_cli("train", *SINUSOID, "--train.steps=4", "--run-dir", "run", "--no-test")[0] == 0
    before = load_checkpoint("run/checkpoint.pt")["step"]
    code, _, err = run_cli("train", "--resume", "run", "--train.steps=8", "--no-test")
    assert code == 0, err
    assert before == 4
    assert load_checkpoint("run/checkpoint.pt")["step"] == 8
    steps = [r["step"] for r in read_metrics("run/metrics.jsonl") if r["split"] == "train"]
    assert steps == [2, 4, 6, 8]


def test_resume_after_a_killed_process_ends_like_an_uninterrupted_run(tmp_path):
    script = Path(sys.executable).with_name("metalearn")
    args = [
        str(script),
        "train",
        *SINUSOID,
        "--train.steps=120",
        "--train.checkpoint_every=10",
        "--train.eval_every=0",
        "--no-test",
    ]
    env = {**os.environ, "CI": "1"}
    proc = subprocess.Popen([*args, "--run-dir", "killed"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # a loaded machine starts a process slowly
    while not (tmp_path / "killed" / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["step"]
    assert 0 < killed_at < 120
    subprocess.run(
        [str(script), "train", "--resume", "killed", "--no-test"],
        env=env,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run([*args, "--run-dir", "whole"], env=env, check=True, stderr=subprocess.DEVNULL)
    resumed = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["learner"]
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["learner"]
    assert resumed.keys() == whole.keys()
    for name in whole:
        assert torch.equal(resumed[name], whole[name]), name


def test_evaluate_prints_and_saves_mean_and_ci(run_cli):
    assert run_cli("train", *SINUSOID, "--train.steps=2", "--run-dir", "run", "--no-test")[0] == 0
    code, out, err = run_cli("evaluate", "run", "--episodes", "30", "--inner-steps", "0,2")
    assert code == 0, err
    saved = json.loads(Path("run/test.json").read_text())
    assert saved["episodes"] == 30
    assert set(saved["by_inner_steps"]) == {"0", "2"}
    assert "+-" in out
    assert "after 2 steps" in out


def test_a_missing_data_root_is_one_line_and_exit_1(run_cli, tmp_path):
    code, _, err = run_cli(
        "train", "--preset", "protonet-omniglot-5w1s", "--data.root", str(tmp_path / "nowhere")
    )
    assert code == 1
    assert err.startswith("error: Omniglot archives not found")
    assert "Traceback" not in err
    assert "images_background.zip" in err


def test_evaluate_of_a_folder_that_is_not_a_run_fails_clearly(run_cli, tmp_path):
    code, _, err = run_cli("evaluate", str(tmp_path))
    assert code == 1
    assert "not a run folder" in err


@pytest.mark.slow
@pytest.mark.data
def test_demo_trains_meta_tests_and_writes_a_report_with_plots(run_cli, data_root):
    code, out, err = run_cli(
        "demo",
        "--scale",
        "0.01",
        "--out",
        "demo",
        "--data.root",
        str(data_root),
        "--eval.episodes=20",
        "--eval.val_episodes=5",
    )
    assert code == 0, err
    report = Path("demo/report.md").read_text()
    assert report.count("| accuracy |") == 2
    assert report.count("| mse |") == 1
    for image in ("curves.png", "episode.png", "steps.png"):
        assert image in report
    for line in report.splitlines():
        if line.startswith("![") and "(" in line:
            png = Path("demo") / line[line.index("(") + 1 : -1]
            assert png.read_bytes()[:4] == b"\x89PNG", png
    assert "report: demo/report.md" in out


def test_adapt_refuses_a_run_that_is_not_an_image_classifier(run_cli, tmp_path):
    assert run_cli("train", *SINUSOID, "--train.steps=2", "--run-dir", "run", "--no-test")[0] == 0
    code, _, err = run_cli("adapt", "run", str(tmp_path))
    assert code == 2
    assert "personalizes image classifiers" in err
