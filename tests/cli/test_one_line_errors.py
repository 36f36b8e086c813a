"""One line, the right exit code and no traceback: OS errors, devices, model files, bad ranges."""

from __future__ import annotations

import argparse
import errno
import json
from pathlib import Path

import pytest
import torch

import metalearn.utils.io as io_module
from cli.cli_fixtures import SMALL_SINUSOID_RUN as SINUSOID


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def fail_writes(monkeypatch, code: int, name: str | None = None) -> None:
    """Make atomic writes (of the file ``name``, or all) fail with ``OSError(code)``."""
    original = io_module._write_replace

    def write(path: Path, data: bytes) -> None:
        if name is None or path.name == name:
            raise OSError(code, os_strerror(code))
        original(path, data)

    monkeypatch.setattr(io_module, "_write_replace", write)


def os_strerror(code: int) -> str:
    import os

    return os.strerror(code)


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "free disk space"),
        (errno.EACCES, "check the permissions"),
        (errno.EROFS, "read-only"),
    ],
)
def test_a_failing_write_is_one_line_and_exit_1(run_cli, monkeypatch, code, advice):
    fail_writes(monkeypatch, code)
    exit_code, _, err = run_cli("train", *SINUSOID, "--train.steps=2", "--run-dir", "R")
    assert exit_code == 1
    line = one_line_error(err)
    assert f"cannot write R/config.json: {os_strerror(code)}" in line
    assert advice in line


def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one(run_cli, monkeypatch):
    assert run_cli("train", *SINUSOID, "--train.steps=2", "--run-dir", "R", "--no-test")[0] == 0
    good = Path("R/checkpoint.pt").read_bytes()
    fail_writes(monkeypatch, errno.ENOSPC, "checkpoint.pt")
    code, _, err = run_cli("train", "--resume", "R", "--train.steps=4", "--no-test")
    assert code == 1
    assert "cannot write R/checkpoint.pt: No space left on device" in one_line_error(err)
    assert Path("R/checkpoint.pt").read_bytes() == good
    assert not [p for p in Path("R").iterdir() if p.name.endswith(".tmp")]


def test_evaluate_prints_its_result_before_a_failing_write(run_cli, monkeypatch):
    assert run_cli("train", *SINUSOID, "--train.steps=2", "--run-dir", "R", "--no-test")[0] == 0
    fail_writes(monkeypatch, errno.ENOSPC, "test.json")
    code, out, err = run_cli("evaluate", "R", "--episodes", "6")
    assert code == 1
    assert "on test: mse" in out  # the computed result is not lost
    assert "+-" in out
    assert "cannot write R/test.json" in one_line_error(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "--device=cuda: this PyTorch"),
        ("cuda:7", "--device=cuda:7: this PyTorch"),
        ("tpu", "--device=tpu: expected auto, cpu, cuda, cuda:N or mps"),
        ("cuda:x", "expected auto, cpu"),
    ],
)
def test_a_bad_device_is_one_line_exit_2_and_creates_nothing(run_cli, device, message):
    code, _, err = run_cli("train", *SINUSOID, f"--device={device}")
    assert code == 2
    assert message in one_line_error(err)
    assert not Path("runs").exists()


def test_device_auto_trains_on_what_the_machine_has(run_cli):
    code, _, err = run_cli(
        "train", *SINUSOID, "--device=auto", "--train.steps=2", "--run-dir", "R", "--no-test"
    )
    assert code == 0, err
    assert json.loads(Path("R/config.json").read_text())["device"] == "auto"


def test_evaluate_of_a_missing_path_names_that_path(run_cli, tmp_path):
    missing = tmp_path / "no" / "such" / "path"
    code, _, err = run_cli("evaluate", str(missing))
    assert code == 1
    assert f"{missing} does not exist" in one_line_error(err)


@pytest.fixture
def junk_files(tmp_path) -> dict[str, Path]:
    text = tmp_path / "text.txt"
    text.write_text("this is not a model\n")
    pickle = tmp_path / "namespace.pt"
    torch.save(argparse.Namespace(x=1), pickle)  # refused by weights_only: pages of text
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    return {"text": text, "pickle": pickle, "tensor": tensor}


@pytest.mark.parametrize("kind", ["text", "pickle", "tensor"])
def test_predict_with_a_file_that_is_not_a_personal_model(run_cli, junk_files, tmp_path, kind):
    code, _, err = run_cli("predict", str(junk_files[kind]), str(tmp_path))
    assert code == 1
    line = one_line_error(err)
    assert f"{junk_files[kind]} is not a personal model" in line
    assert "544502645" not in line


@pytest.mark.parametrize("kind", ["text", "pickle", "tensor"])
def test_evaluate_with_a_file_that_is_not_a_checkpoint(run_cli, junk_files, kind):
    assert run_cli("train", *SINUSOID, "--train.steps=2", "--run-dir", "R", "--no-test")[0] == 0
    target = Path("R") / junk_files[kind].name
    target.write_bytes(junk_files[kind].read_bytes())
    code, _, err = run_cli("evaluate", str(target))
    assert code == 1
    assert "not a metalearn" in one_line_error(err)


@pytest.mark.parametrize(
    "override",
    [
        "--data.n_way=-3",
        "--data.n_way=0",
        "--data.n_shot=0",
        "--data.n_shot=-1",
        "--data.n_query=0",
        "--eval.n_shot=0",
        "--algorithm.inner_lr=nan",
        "--model.hidden=0",
        "--data.image_size=0",
    ],
)
def test_an_out_of_range_value_is_refused_by_config_and_train_before_any_folder(run_cli, override):
    code, out, err = run_cli("config", "--preset", "maml-sinusoid", override)
    assert code == 2
    assert out == ""
    key = override.split("=")[0]
    assert key in one_line_error(err)
    code, _, err = run_cli("train", *SINUSOID, override, "--run-dir", "R")
    assert code == 2
    assert key in one_line_error(err)
    assert not Path("R").exists()
    code, _, err = run_cli("train", *SINUSOID, override)
    assert code == 2
    assert not Path("runs").exists()


@pytest.mark.data
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--data.n_way=5000", "exceeds the"),
        ("--data.n_shot=19", "requires at least"),
        ("--eval.n_way=900", "exceeds the"),
    ],
)
def test_an_impossible_episode_is_exit_2_before_any_folder(run_cli, data_root, override, message):
    code, _, err = run_cli(
        "train", "--preset", "protonet-omniglot-5w1s", "--data.root", str(data_root), override
    )
    assert code == 2
    assert message in one_line_error(err)
    assert not Path("runs").exists()
