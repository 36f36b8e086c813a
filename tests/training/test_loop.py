from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
from training_fixtures import GaussianTasks, TinyMAML, TinyProtoNet, clone_params

from metalearn.errors import CheckpointError, ConfigError, TrainingDivergedError
from metalearn.training import (
    BEST_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    TrainConfig,
    load_checkpoint,
    meta_test,
    meta_train,
    read_metrics,
)

CFG = TrainConfig(
    steps=12,
    meta_batch_size=4,
    outer_lr=0.01,
    lr_decay_every=4,
    lr_decay_gamma=0.5,
    eval_every=3,
    checkpoint_every=6,
    log_every=2,
    progress=False,
)


def _validator(learner):
    val_episodes = GaussianTasks(seed=99).episodes(8)

    def validate():
        torch.rand(3)  # validation consuming the global RNG must not shift training
        return {"accuracy": meta_test(learner, val_episodes, batch_size=4).mean}

    return validate


def _run(tmp_path, cfg, *, learner_cls=TinyProtoNet, resume=False, validate=True):
    torch.manual_seed(1)  # same initial weights for every run of a test
    learner, tasks = learner_cls(), GaussianTasks(seed=0)
    result = meta_train(
        learner,
        tasks,
        cfg,
        run_dir=tmp_path,
        validate=_validator(learner) if validate else None,
        resume=resume,
        extra_state={"preset": "tiny", "n_way": 3},
    )
    return learner, result


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "tasks_per_s")} for r in rows]


@pytest.mark.parametrize("learner_cls", [TinyProtoNet, TinyMAML])
def test_resumed_run_ends_with_parameters_equal_to_an_uninterrupted_run(tmp_path, learner_cls):
    full, _ = _run(tmp_path / "full", CFG, learner_cls=learner_cls)
    _run(tmp_path / "cut", dataclasses.replace(CFG, steps=6), learner_cls=learner_cls)
    resumed, result = _run(tmp_path / "cut", CFG, learner_cls=learner_cls, resume=True)

    assert result.step == 12
    for name, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    full_rows = read_metrics(tmp_path / "full" / METRICS_FILE)
    cut_rows = read_metrics(tmp_path / "cut" / METRICS_FILE)
    # the cut run also validates at its last step (6), which is on the eval_every grid
    assert _without_timing(cut_rows) == _without_timing(full_rows)


def test_training_depends_on_the_seed_so_the_resume_test_can_fail(tmp_path):
    a, _ = _run(tmp_path / "a", CFG)
    b, _ = _run(tmp_path / "b", dataclasses.replace(CFG, seed=1))  # dropout masks differ
    assert not torch.equal(a.encoder[0].weight, b.encoder[0].weight)


def test_validation_does_not_change_the_training_trajectory(tmp_path):
    with_val, _ = _run(tmp_path / "a", CFG)
    without_val, _ = _run(tmp_path / "b", CFG, validate=False)
    assert torch.equal(with_val.encoder[0].weight, without_val.encoder[0].weight)


def test_metrics_jsonl_holds_train_and_val_rows_with_step_lr_and_elapsed(tmp_path):
    _, result = _run(tmp_path, CFG)
    rows = read_metrics(tmp_path / METRICS_FILE)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in val] == [3, 6, 9, 12]
    assert {"loss", "accuracy", "lr", "tasks_per_s", "elapsed_s"} <= train[0].keys()
    # lr halves after every 4 steps: 0.01 for steps 1-4, 0.005 for 5-8, ...
    assert [r["lr"] for r in train] == pytest.approx([0.01, 0.005, 0.005, 0.0025, 0.0025, 0.00125])
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    elapsed = [r["elapsed_s"] for r in rows]
    assert elapsed == sorted(elapsed)
    assert result.history == rows
    assert result.train_metrics["loss"] == train[-1]["loss"]
    assert result.val_metrics == {"accuracy": val[-1]["accuracy"]}


def test_lr_anneal_decays_the_outer_rate_linearly_to_zero(tmp_path):
    cfg = dataclasses.replace(CFG, lr_decay_every=0, lr_anneal=True)
    _run(tmp_path, cfg)
    train = [r for r in read_metrics(tmp_path / METRICS_FILE) if r["split"] == "train"]
    # after k of 12 steps the rate is 0.01 * (1 - k / 12)
    assert [r["lr"] for r in train] == pytest.approx([0.01 * (1 - k / 12) for k in range(2, 13, 2)])


def test_an_annealed_run_resumes_exactly_and_only_with_the_same_steps(tmp_path, monkeypatch):
    cfg = dataclasses.replace(CFG, lr_decay_every=0, lr_anneal=True, checkpoint_every=3)
    full, _ = _run(tmp_path / "full", cfg)
    sample_batch, calls = GaussianTasks.sample_batch, []

    def crash_at_step_8(self, n_tasks):
        calls.append(n_tasks)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return sample_batch(self, n_tasks)

    monkeypatch.setattr(GaussianTasks, "sample_batch", crash_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", cfg)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="steps"):  # another length, another schedule
        _run(tmp_path / "cut", dataclasses.replace(cfg, steps=24), resume=True)
    resumed, _ = _run(tmp_path / "cut", cfg, resume=True)
    for name, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_resume_drops_rows_logged_after_the_checkpoint_and_a_torn_line(tmp_path):
    _run(tmp_path / "full", CFG)
    _run(tmp_path / "cut", dataclasses.replace(CFG, steps=6))
    with (tmp_path / "cut" / METRICS_FILE).open("a") as f:  # a kill after step 8's row
        f.write('{"step": 7, "split": "train", "loss": 1.0}\n{"step": 8, "split": "tr')
    _run(tmp_path / "cut", CFG, resume=True)
    full_rows = read_metrics(tmp_path / "full" / METRICS_FILE)
    assert _without_timing(read_metrics(tmp_path / "cut" / METRICS_FILE)) == _without_timing(
        full_rows
    )


def test_best_checkpoint_keeps_the_highest_accuracy(tmp_path):
    learner, tasks = TinyProtoNet(), GaussianTasks()
    scores, snapshots = iter([0.5, 0.8, 0.6, 0.7]), {}

    def validate():
        snapshots[len(snapshots) + 1] = clone_params(learner)
        return {"accuracy": next(scores), "loss": 1.0}

    cfg = dataclasses.replace(CFG, eval_every=3)
    result = meta_train(learner, tasks, cfg, run_dir=tmp_path, validate=validate)

    assert result.best == {"metric": "accuracy", "value": 0.8, "step": 6}
    best = load_checkpoint(tmp_path / BEST_FILE)
    assert best["step"] == 6
    for name, value in snapshots[2].items():
        assert torch.equal(best["learner"][name], value)
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["step"] == 12


def _scripted(scores):
    it = iter(scores)
    return lambda: {"accuracy": next(it)}


def test_patience_stops_after_that_many_validations_without_improvement(tmp_path):
    # validations at steps 3, 6, 9, 12, ...; the best (0.8) is at step 6, then two without
    # improvement (0.7 at 9, 0.8 at 12: equal is no gain) stop the run at step 12 of 30
    cfg = dataclasses.replace(CFG, steps=30, eval_every=3, patience=2)
    scores = [0.5, 0.8, 0.7, 0.8, 0.9, 1.0]
    result = meta_train(
        TinyProtoNet(), GaussianTasks(), cfg, run_dir=tmp_path, validate=_scripted(scores)
    )
    assert result.step == 12
    assert result.stopped_early
    assert result.best == {"metric": "accuracy", "value": 0.8, "step": 6}
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["step"] == 12  # 12 % checkpoint_every
    assert load_checkpoint(tmp_path / BEST_FILE)["step"] == 6
    rows = read_metrics(tmp_path / METRICS_FILE)
    assert [r["step"] for r in rows if r["split"] == "val"] == [3, 6, 9, 12]


def test_a_resumed_run_that_stopped_early_trains_no_further(tmp_path):
    cfg = dataclasses.replace(CFG, steps=30, eval_every=3, patience=1, checkpoint_every=0)
    meta_train(
        TinyProtoNet(), GaussianTasks(), cfg, run_dir=tmp_path, validate=_scripted([0.9, 0.1])
    )
    again = meta_train(
        TinyProtoNet(), GaussianTasks(), cfg, run_dir=tmp_path, validate=_scripted([]), resume=True
    )
    assert (again.step, again.stopped_early) == (6, True)


def test_patience_resumes_exactly_and_without_patience_trains_all_steps(tmp_path):
    cfg = dataclasses.replace(CFG, steps=30, eval_every=3, patience=2)
    scores = [0.5, 0.6, 0.7, 0.6, 0.6, 0.9]
    whole = meta_train(TinyProtoNet(), GaussianTasks(), cfg, validate=_scripted(scores))
    torch.manual_seed(0)
    killed = dataclasses.replace(cfg, steps=6)  # "killed" at step 6, then resumed to 30
    meta_train(
        TinyProtoNet(), GaussianTasks(), killed, run_dir=tmp_path, validate=_scripted(scores)
    )
    resumed = meta_train(
        TinyProtoNet(), GaussianTasks(), cfg, run_dir=tmp_path,
        validate=_scripted(scores[2:]), resume=True,
    )  # fmt: skip
    assert whole.step == resumed.step == 15  # best at 9, then 12 and 15 without gain
    no_patience = dataclasses.replace(cfg, patience=0)
    assert (
        meta_train(
            TinyProtoNet(), GaussianTasks(), no_patience, validate=_scripted(scores * 2)
        ).step
        == 30
    )


def test_patience_without_validation_is_refused():
    cfg = dataclasses.replace(CFG, patience=2)
    with pytest.raises(ConfigError, match="patience"):
        meta_train(TinyProtoNet(), GaussianTasks(), cfg)
    with pytest.raises(ConfigError, match="patience"):
        dataclasses.replace(CFG, eval_every=0, patience=2)


def test_best_checkpoint_keeps_the_lowest_mse(tmp_path):
    scores = iter([3.0, 1.0, 2.0, 0.5])
    cfg = dataclasses.replace(CFG, eval_every=3)
    result = meta_train(
        TinyProtoNet(),
        GaussianTasks(),
        cfg,
        run_dir=tmp_path,
        validate=lambda: {"mse": next(scores)},
    )
    assert result.best == {"metric": "mse", "value": 0.5, "step": 12}


def test_validation_without_the_chosen_metric_raises_config_error():
    cfg = dataclasses.replace(CFG, val_metric="max:success")
    with pytest.raises(ConfigError, match="success"):
        meta_train(TinyProtoNet(), GaussianTasks(), cfg, validate=lambda: {"accuracy": 1.0})


def test_failed_checkpoint_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    _run(tmp_path, dataclasses.replace(CFG, steps=6))

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _run(tmp_path, CFG, resume=True)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["step"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock",  # the run lock's file (unlocked once the process is gone)
        BEST_FILE,
        CHECKPOINT_FILE,
        METRICS_FILE,
    ]


def test_resume_without_a_checkpoint_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*checkpoint\.pt"):
        _run(tmp_path, CFG, resume=True)


def test_resume_from_a_corrupt_checkpoint_raises_checkpoint_error(tmp_path):
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        _run(tmp_path, CFG, resume=True)


def test_resume_with_another_learner_or_settings_raises_checkpoint_error(tmp_path):
    _run(tmp_path, dataclasses.replace(CFG, steps=6))
    with pytest.raises(CheckpointError, match=r"TinyProtoNet, not a .*TinyMAML"):
        _run(tmp_path, CFG, learner_cls=TinyMAML, resume=True)
    with pytest.raises(CheckpointError, match="optimizer='adam', this run has 'sgd'"):
        _run(tmp_path, dataclasses.replace(CFG, optimizer="sgd"), resume=True)


def test_resume_into_a_differently_shaped_learner_raises_checkpoint_error(tmp_path):
    _run(tmp_path, dataclasses.replace(CFG, steps=6))
    learner = TinyProtoNet()
    learner.encoder[0] = nn.Linear(4, 5)
    with pytest.raises(CheckpointError, match="does not load into this run"):
        meta_train(learner, GaussianTasks(), CFG, run_dir=tmp_path, resume=True)


def test_fresh_run_refuses_a_run_dir_that_holds_a_checkpoint(tmp_path):
    _run(tmp_path, dataclasses.replace(CFG, steps=2))
    with pytest.raises(CheckpointError, match="resume=True"):
        _run(tmp_path, CFG)


def test_checkpoint_holds_everything_to_resume(tmp_path):
    _run(tmp_path, dataclasses.replace(CFG, steps=6))
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert ckpt["step"] == 6
    assert ckpt["extra_state"] == {"preset": "tiny", "n_way": 3}
    assert ckpt["train_config"]["outer_lr"] == 0.01
    assert ckpt["optimizer"]["state"]
    assert ckpt["scheduler"]["last_epoch"] == 6
    assert {"python", "numpy", "torch"} <= ckpt["rng"].keys()
    assert ckpt["tasks"]["generator"].dtype == torch.uint8
    assert ckpt["objective_class"].endswith("TinyProtoNet")


def test_extra_state_that_is_not_plain_data_is_rejected_up_front(tmp_path):
    with pytest.raises(CheckpointError, match=r"extra_state\['root'\] is a PosixPath"):
        meta_train(TinyProtoNet(), GaussianTasks(), CFG, extra_state={"root": tmp_path})


class _Quadratic(nn.Module):
    """meta_loss(batch) = sum((w - batch)^2): gradient 2 (w - batch)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0]))

    def meta_loss(self, batch):
        loss = ((self.w - batch.mean(0)) ** 2).sum()
        return loss, {"loss": loss.detach()}


class _Constant:
    """Always the batch [[3, 4]]: gradient at w=(1,-2) is 2 (w - (3, 4)) = (-4, -12)."""

    def sample_batch(self, n_tasks):
        return torch.tensor([[3.0, 4.0]]).expand(n_tasks, 2)

    def sample(self):
        return self.sample_batch(1)[0]

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_sgd_outer_step_equals_the_hand_update():
    objective = _Quadratic()
    cfg = TrainConfig(steps=1, meta_batch_size=2, outer_lr=0.1, optimizer="sgd", progress=False)
    result = meta_train(objective, _Constant(), cfg)
    # w - lr * grad = (1, -2) - 0.1 * (-4, -12) = (1.4, -0.8); loss before = 4 + 36 = 40
    torch.testing.assert_close(objective.w.detach(), torch.tensor([1.4, -0.8]))
    assert result.train_metrics["loss"] == pytest.approx(40.0)


def test_grad_clip_scales_the_meta_gradient_to_the_given_norm():
    objective = _Quadratic()
    cfg = TrainConfig(
        steps=1, meta_batch_size=1, outer_lr=1.0, optimizer="sgd", grad_clip=1.0, progress=False
    )
    result = meta_train(objective, _Constant(), cfg)
    # grad (-4, -12) has norm sqrt(160); clipped to norm 1 -> step (4, 12) / sqrt(160)
    step = torch.tensor([4.0, 12.0]) / math.sqrt(160.0)
    torch.testing.assert_close(objective.w.detach(), torch.tensor([1.0, -2.0]) + step)
    assert result.train_metrics["grad_norm"] == pytest.approx(math.sqrt(160.0))


class _SelfUpdating(_Quadratic):
    """Takes its own outer step (as meta-RL's TRPO does) and keeps a step counter."""

    def __init__(self):
        super().__init__()
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def meta_loss(self, batch):
        raise AssertionError("the loop must call meta_update instead")

    def meta_update(self, batch):
        with torch.no_grad():
            self.w.sub_(0.5 * (self.w - batch.mean(0)))
        self.updates += 1
        return {"loss": torch.tensor(2.0), "return": torch.tensor(-1.0)}


def test_meta_update_hook_replaces_backward_and_the_optimizer(tmp_path):
    objective = _SelfUpdating()
    cfg = TrainConfig(steps=3, meta_batch_size=2, log_every=1, progress=False)
    result = meta_train(objective, _Constant(), cfg, run_dir=tmp_path)
    # w <- w - 0.5 (w - c) three times: w = c + (w0 - c) / 8 = (3, 4) + (-2, -6) / 8
    torch.testing.assert_close(objective.w.detach(), torch.tensor([2.75, 3.25]))
    assert int(objective.updates) == 3
    assert result.train_metrics["loss"] == 2.0
    assert result.train_metrics["return"] == -1.0
    assert "lr" not in result.train_metrics  # no optimizer of the loop's own
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert ckpt["optimizer"] is None
    assert int(ckpt["learner"]["updates"]) == 3

    resumed = _SelfUpdating()
    meta_train(
        resumed, _Constant(), dataclasses.replace(cfg, steps=4), run_dir=tmp_path, resume=True
    )
    assert int(resumed.updates) == 4


def test_diverging_loss_raises_training_diverged_error():
    objective = _Quadratic()
    cfg = TrainConfig(steps=50, meta_batch_size=1, outer_lr=10.0, optimizer="sgd", progress=False)
    with pytest.raises(TrainingDivergedError, match="at step"):
        meta_train(objective, _Constant(), cfg)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", -1),
        ("meta_batch_size", 0),
        ("outer_lr", 0.0),
        ("optimizer", "rmsprop"),
        ("grad_clip", 0.0),
        ("lr_decay_gamma", 1.5),
        ("lr_anneal", True),  # with CFG's lr_decay_every
        ("log_every", 0),
        ("patience", -1),
        ("val_metric", "f1"),
    ],
)
def test_train_config_rejects_invalid_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(CFG, **{field: value})


def test_resume_needs_a_run_dir():
    with pytest.raises(ConfigError, match="run_dir"):
        meta_train(TinyProtoNet(), GaussianTasks(), CFG, resume=True)
