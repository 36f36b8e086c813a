"""A learner added through the registry trains from the CLI (docs/adding-an-algorithm.md)."""

from dataclasses import replace
from pathlib import Path

import pytest
from torch import Tensor, nn

from metalearn.algorithms import Learner
from metalearn.presets import PRESETS
from metalearn.registry import ALGORITHMS, Algorithm, get_algorithm, register
from metalearn.training import load_checkpoint, read_metrics


class MeanOffset(Learner[Tensor]):
    """A toy regressor: the network's output plus the task's mean support residual."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def adapt(self, support_x: Tensor, support_y: Tensor, n_way: int | None) -> Tensor:
        return (support_y - self.model(support_x)).mean(0)

    def predict(self, offset: Tensor, query_x: Tensor) -> Tensor:
        return self.model(query_x) + offset


@pytest.fixture
def mean_offset():
    """Register ``mean-offset`` with a preset; the registry and the presets are restored after."""
    algorithms, presets = dict(ALGORITHMS), dict(PRESETS)
    base = PRESETS["maml-sinusoid"]
    preset = replace(
        base, name="mean-offset-sinusoid", algorithm=replace(base.algorithm, name="mean-offset")
    )
    register(
        Algorithm(
            "mean-offset",
            "gradient",  # its network is MLP(1, 1) on sinusoids, as MAML's
            lambda model, config: MeanOffset(model),
            {preset.name: replace(preset, eval=replace(preset.eval, inner_steps=()))},
        )
    )
    yield
    ALGORITHMS.clear()
    ALGORITHMS.update(algorithms)
    PRESETS.clear()
    PRESETS.update(presets)


SHORT = [
    "--train.steps=6",
    "--train.meta_batch_size=4",
    "--train.eval_every=3",
    "--eval.episodes=8",
    "--eval.val_episodes=4",
    "--eval.inner_steps=",  # a sweep is for learners with inner steps
]


def test_a_registered_learner_trains_through_the_cli_by_override(mean_offset, run_cli):
    code, out, err = run_cli(
        "train",
        "--preset",
        "maml-sinusoid",
        "--algorithm.name=mean-offset",
        *SHORT,
        "--run-dir",
        "r",
    )
    assert code == 0, err
    checkpoint = load_checkpoint(Path("r/checkpoint.pt"))
    assert checkpoint["objective_class"] == f"{__name__}.MeanOffset"
    assert checkpoint["step"] == 6
    assert all(name.startswith("model.") for name in checkpoint["learner"])
    assert [r["step"] for r in read_metrics("r/metrics.jsonl") if r["split"] == "val"] == [3, 6]
    assert "test mse: mse" in out


def test_a_registered_preset_is_listed_and_trains(mean_offset, run_cli):
    assert set(get_algorithm("mean-offset").presets) == {"mean-offset-sinusoid"}
    code, out, _ = run_cli("presets")
    assert code == 0
    assert "mean-offset-sinusoid" in out
    code, _, err = run_cli(
        "train",
        "--preset",
        "mean-offset-sinusoid",
        "--train.steps=2",
        "--no-test",
        "--run-dir",
        "r",
    )
    assert code == 0, err


def test_a_taken_name_is_refused(mean_offset):
    with pytest.raises(Exception, match="'mean-offset' is already registered"):
        register(get_algorithm("mean-offset"))


def test_an_unknown_algorithm_is_a_usage_error_that_writes_nothing(run_cli):
    code, _, err = run_cli(
        "train", "--preset", "maml-sinusoid", "--algorithm.name=nope", "--run-dir", "r"
    )
    assert code == 2
    assert "error: --algorithm.name=nope: expected one of maml, fomaml, " in err
    assert not Path("r").exists()


def test_every_builtin_algorithm_is_registered_with_its_presets():
    assert list(ALGORITHMS) == [
        "maml", "fomaml", "meta-sgd", "anil", "reptile", "protonet", "matching", "siamese"
    ]  # fmt: skip
    for name, algorithm in ALGORITHMS.items():
        assert algorithm.presets, name
        assert all(config.algorithm.name == name for config in algorithm.presets.values())
    assert sum(len(a.presets) for a in ALGORITHMS.values()) == len(PRESETS)
