"""``torchrun -m metalearn train``: usage errors are one line and write nothing."""

from __future__ import annotations

TRAIN = ["-m", "metalearn", "train", "--preset=maml-sinusoid", "--train.steps=2", "--no-test"]


def test_a_meta_batch_that_does_not_split_evenly_is_an_error(tmp_path, launcher):
    run_dir = tmp_path / "run"
    cmd = launcher.torchrun(*TRAIN, "--train.meta_batch_size=5", f"--run-dir={run_dir}")
    done = launcher.run(cmd, check=False)
    assert done.returncode != 0
    message = "error: meta_batch_size=5 is not divisible by the 2 processes"
    assert message in done.stderr
    assert not run_dir.exists()


def test_elastic_restarts_need_a_run_dir(tmp_path, launcher):
    cmd = launcher.torchrun(*TRAIN, nproc=1, max_restarts=1)
    done = launcher.run(cmd, cwd=tmp_path, check=False)
    assert done.returncode != 0
    assert "error: torchrun --max-restarts needs --run-dir DIR" in done.stderr
    assert not (tmp_path / "runs").exists()
