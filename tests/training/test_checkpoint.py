from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from metalearn.errors import CheckpointError
from metalearn.training.checkpoint import (
    capture_rng_state,
    check_plain_data,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from metalearn.training.logger import MetricsLogger, progress_enabled, read_metrics


def _draws():
    return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002


def _minimal(**extra):
    payload = {"format_version": 1, "step": 3, "learner": {}, "tasks": {}, "train_config": {}}
    return {**payload, "rng": capture_rng_state(), **extra}


def test_rng_state_survives_a_safe_checkpoint_round_trip(tmp_path):
    save_checkpoint(_minimal(), tmp_path / "c.pt")
    expected = _draws()
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])  # weights_only=True load
    assert _draws() == expected


def test_load_checkpoint_rejects_newer_formats_and_foreign_files(tmp_path):
    save_checkpoint(_minimal(format_version=99), tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="upgrade metalearn"):
        load_checkpoint(tmp_path / "new.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a metalearn training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_truncated_checkpoint_raises_checkpoint_error(tmp_path):
    save_checkpoint(_minimal(), tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "c.pt")


def test_check_plain_data_names_the_offending_entry():
    check_plain_data({"a": [1, 2.0, "x", None, torch.zeros(1)], "b": {"c": (True,)}}, "s")
    with pytest.raises(CheckpointError, match=r"s\['b'\]\[0\] is a set"):
        check_plain_data({"b": [{1}]}, "s")


def test_metrics_logger_appends_rows_and_truncates_after_a_step(tmp_path):
    log = MetricsLogger(tmp_path / "m.jsonl")
    for step in (1, 2, 3):
        log.write({"step": step, "split": "train", "loss": float(step)})
    log.truncate_after(2)
    assert [r["step"] for r in read_metrics(tmp_path / "m.jsonl")] == [1, 2]
    log.reset()
    assert read_metrics(tmp_path / "m.jsonl") == []


def test_progress_bar_is_off_under_ci_and_without_a_terminal(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    monkeypatch.delenv("CI", raising=False)
    assert progress_enabled(True)
    assert not progress_enabled(False)
    monkeypatch.setenv("CI", "true")
    assert not progress_enabled(True)


def test_training_tests_run_single_threaded():
    assert torch.get_num_threads() == 1
