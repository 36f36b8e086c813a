"""Non-finite steps, the checkpoint's finite-weights guard, allowed resume changes, the run lock."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import torch
from training_fixtures import GaussianTasks, TinyProtoNet

from metalearn.errors import CheckpointError, TrainingDivergedError
from metalearn.training import CHECKPOINT_FILE, TrainConfig, load_checkpoint, meta_train
from metalearn.training.checkpoint import save_checkpoint
from metalearn.utils.io import RunFolderLockedError, lock_holder, run_lock

CFG = TrainConfig(
    steps=12, meta_batch_size=2, outer_lr=0.01, checkpoint_every=1, log_every=10, progress=False
)


class PoisonedAt(TinyProtoNet):
    """A TinyProtoNet whose loss (or only its gradient) is not finite from one step on."""

    def __init__(self, bad_step: int, *, gradient_only: bool = False):
        super().__init__(dropout=0.0)
        self.bad_step, self.gradient_only, self.calls = bad_step, gradient_only, 0

    def meta_loss(self, batch, vectorize=None):
        self.calls += 1
        loss, metrics = super().meta_loss(batch)
        if self.calls >= self.bad_step:
            w = self.encoder[0].bias[0]
            # sqrt(0) = 0 has an infinite derivative: a finite loss with an infinite gradient
            poison = torch.sqrt(w - w) if self.gradient_only else w * float("nan")
            loss = loss + poison
        return loss, metrics


def _all_finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("gradient_only", [False, True])
def test_a_non_finite_step_between_log_steps_stops_before_anything_is_written(
    tmp_path, gradient_only
):
    learner = PoisonedAt(bad_step=4, gradient_only=gradient_only)
    with pytest.raises(TrainingDivergedError, match="at step 4") as caught:
        meta_train(learner, GaussianTasks(), CFG, run_dir=tmp_path)
    assert caught.value.step == 4
    what = "meta-gradient of encoder.0.bias" if gradient_only else "loss is nan"
    assert what in str(caught.value)
    saved = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert saved["step"] == 3  # the last good step is kept
    assert _all_finite(saved["learner"])
    assert _all_finite(learner.state_dict())  # the optimizer never applied the bad step


def test_save_checkpoint_refuses_non_finite_weights_and_keeps_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"last good")
    payload = {"learner": {"w": torch.tensor([1.0, float("inf")])}, "step": 5}
    with pytest.raises(TrainingDivergedError, match=r"'?w'? holds NaN or infinite"):
        save_checkpoint(payload, path)
    assert path.read_bytes() == b"last good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary


def test_resume_may_change_the_outer_lr_only_when_allowed(tmp_path):
    torch.manual_seed(0)
    meta_train(TinyProtoNet(), GaussianTasks(), dataclasses.replace(CFG, steps=4), run_dir=tmp_path)
    lower = dataclasses.replace(CFG, steps=6, outer_lr=0.001)
    with pytest.raises(CheckpointError, match="outer_lr"):
        meta_train(TinyProtoNet(), GaussianTasks(), lower, run_dir=tmp_path, resume=True)
    result = meta_train(
        TinyProtoNet(),
        GaussianTasks(),
        lower,
        run_dir=tmp_path,
        resume=True,
        allow_change=("outer_lr",),
    )
    assert result.step == 6
    saved = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.001)


def test_a_decayed_lr_is_rescaled_to_the_new_outer_lr(tmp_path):
    decayed = dataclasses.replace(CFG, steps=4, lr_decay_every=2, lr_decay_gamma=0.5)
    meta_train(TinyProtoNet(), GaussianTasks(), decayed, run_dir=tmp_path)
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["optimizer"]["param_groups"][0][
        "lr"
    ] == pytest.approx(0.0025)
    lower = dataclasses.replace(decayed, steps=6, outer_lr=0.001)
    meta_train(
        TinyProtoNet(), GaussianTasks(), lower, run_dir=tmp_path, resume=True,
        allow_change=("outer_lr",),
    )  # fmt: skip
    # 0.001 decayed 3 times (steps 2, 4, 6), as if the run had started with it
    lr = load_checkpoint(tmp_path / CHECKPOINT_FILE)["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(0.001 * 0.5**3)


def test_the_run_lock_names_the_holder_and_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from metalearn.utils.io import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert lock_holder(tmp_path) == str(holder.pid)
        with pytest.raises(RunFolderLockedError, match=f"process {holder.pid} is training"):
            meta_train(TinyProtoNet(), GaussianTasks(), CFG, run_dir=tmp_path)
        assert not (tmp_path / CHECKPOINT_FILE).exists()
    finally:
        holder.kill()  # SIGKILL: the kernel drops the flock with the process
        holder.wait()
        holder.stdout.close()
    assert lock_holder(tmp_path) is None
    with run_lock(tmp_path), run_lock(tmp_path):  # re-entrant in one process
        assert lock_holder(tmp_path) is None
    assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


def test_temporaries_of_killed_writes_are_removed_at_the_next_start(tmp_path):
    stale = [tmp_path / ".checkpoint.pt.k1ll3d.tmp", tmp_path / ".metrics.jsonl.x.tmp"]
    other = tmp_path / ".notes.txt.keep.tmp"
    for path in [*stale, other]:
        path.write_bytes(b"torn")
    meta_train(TinyProtoNet(), GaussianTasks(), dataclasses.replace(CFG, steps=2), run_dir=tmp_path)
    assert not any(p.exists() for p in stale)
    assert other.exists()  # not a file the loop writes: left alone
