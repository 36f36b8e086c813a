"""Meta-RL through the same `train`, `evaluate`, `plot` and `config` commands as the rest."""

import json
from pathlib import Path

import pytest

from metalearn.config import from_dict
from metalearn.presets import get_preset
from metalearn.training import load_checkpoint, read_metrics

pytest.importorskip("gymnasium")

TINY = [
    "--preset",
    "maml-rl-navigation",
    "--train.meta_batch_size=2",
    "--train.eval_every=2",
    "--train.checkpoint_every=2",
    "--rl.trajectories=4",
    "--model.hidden=16",
    "--eval.episodes=5",
    "--eval.val_episodes=2",
    "--run-dir",
    "run",
]


@pytest.mark.e2e
@pytest.mark.slow
def test_rl_train_resume_evaluate_and_plot_use_the_run_folder(run_cli):
    code, out, err = run_cli("train", *TINY, "--train.steps=2")
    assert code == 0, err
    run = Path("run")
    files = {"config.json", "metrics.jsonl", "checkpoint.pt", "best.pt", "curves.png"}
    assert files | {"test.json", "adaptation.md", "adaptation.png"} <= {
        p.name for p in run.iterdir()
    }
    train_rows = [r for r in read_metrics(run / "metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2]
    assert all(r["return_pre"] < 0 and r["return_post"] < 0 for r in train_rows)
    assert all(k.startswith("policy.") for k in load_checkpoint(run / "checkpoint.pt")["learner"])
    result = json.loads((run / "test.json").read_text())
    assert (result["metric"], result["episodes"]) == ("return", 5)
    assert set(result["by_inner_steps"]) == {"0", "1", "2", "3"}
    assert result["mean"] == result["by_inner_steps"]["1"]["mean"]  # the preset's one step
    assert "after 3 steps" in out
    assert "| maml-rl-navigation |" in (run / "adaptation.md").read_text()

    code, _, err = run_cli("train", "--resume", "run", "--train.steps=4", "--no-test")
    assert code == 0, err
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 4
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if r["split"] == "val"] == [2, 4]

    code, out, err = run_cli("evaluate", "run", "--inner-steps", "0,1")
    assert code == 0, err
    again = json.loads((run / "test.json").read_text())
    assert set(again["by_inner_steps"]) == {"0", "1"}
    assert "after 1 steps" in out
    # Scoring is seeded by eval.seed: a second evaluation of the same checkpoint is identical.
    assert run_cli("evaluate", "run", "--inner-steps", "0,1")[0] == 0
    assert json.loads((run / "test.json").read_text()) == again

    code, out, err = run_cli("plot", "run")
    assert code == 0, err
    assert "curves.png" in out
    assert "episode.png" not in out


@pytest.mark.parametrize(
    "argv",
    [
        ("train", "--preset", "maml-rl-navigaton"),
        ("train", "--preset", "maml-rl-navigation", "--rl.reward=manhattan"),
        ("train", "--preset", "maml-rl-cheetah-vel", "--algorithm.name=protonet"),
    ],
)
def test_rl_config_errors_exit_with_code_2(run_cli, argv):
    code, _, err = run_cli(*argv)
    assert code == 2
    assert "Traceback" not in err


def test_rl_presets_print_and_round_trip(run_cli):
    for name in ("maml-rl-navigation", "maml-rl-cheetah-vel", "maml-rl-cheetah-dir"):
        code, out, _ = run_cli("config", "--preset", name, "--rl.reward=squared")
        assert code == 0
        printed = from_dict(json.loads(out))
        assert printed.rl.reward == "squared"
        assert printed.eval.inner_steps == (0, 1, 2, 3)
        assert printed.data == get_preset(name).data
    navigation = get_preset("maml-rl-navigation")
    assert (navigation.train.meta_batch_size, navigation.rl.trajectories) == (20, 20)
    assert get_preset("maml-rl-cheetah-dir").train.meta_batch_size == 40
