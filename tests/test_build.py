"""Config -> learner wiring: every algorithm option reaches the learner it configures."""

import pytest

from metalearn.build import build_learner
from metalearn.cli.overrides import apply_overrides
from metalearn.errors import ConfigError
from metalearn.presets import get_preset


def test_matching_options_reach_the_learner():
    config = apply_overrides(
        get_preset("matching-omniglot-5w1s"),
        ["algorithm.fce=true", "algorithm.fce_steps=3", "algorithm.attention_scale=10"],
    )
    learner = build_learner(config)
    assert learner.scale == 10.0
    assert learner.query_context is not None
    assert learner.query_context.steps == 3


def test_matching_defaults_are_the_papers_omniglot_model():
    learner = build_learner(get_preset("matching-omniglot-5w1s"))
    assert learner.scale == 1.0
    assert learner.support_context is None
    assert learner.query_context is None


def test_maml_plus_plus_options_reach_maml_and_are_refused_elsewhere():
    options = ["algorithm.inner_steps=3", "algorithm.per_step_lrs=true"]
    annealing = ["algorithm.multi_step_loss=50", "algorithm.first_order_iterations=20"]
    learner = build_learner(
        apply_overrides(get_preset("maml-omniglot-5w1s"), [*options, *annealing])
    )
    assert learner.step_lrs is not None
    assert (learner.multi_step_loss, learner.first_order_iterations) == (50, 20)
    for refused in [options, annealing[1:]]:
        with pytest.raises(ConfigError, match="MAML\\+\\+ options"):
            build_learner(apply_overrides(get_preset("meta-sgd-omniglot-5w1s"), refused))


def test_chunk_size_reaches_the_learner_and_the_5_way_1_shot_maml_presets_set_it():
    # measured faster for those small tasks (BENCHMARKS.md); larger tasks keep the rule
    for name in ["maml-omniglot-5w1s", "fomaml-omniglot-5w1s", "anil-omniglot-5w1s"]:
        assert build_learner(get_preset(name)).chunk_size == 32
    assert build_learner(get_preset("maml-omniglot-5w5s")).chunk_size is None
    config = apply_overrides(get_preset("maml-omniglot-5w5s"), ["algorithm.chunk_size=1"])
    assert build_learner(config).chunk_size == 1


def test_a_chunk_size_below_one_is_refused():
    from metalearn.config_checks import check_config

    config = apply_overrides(get_preset("maml-omniglot-5w1s"), ["algorithm.chunk_size=0"])
    refusal = r"--algorithm\.chunk_size=0 must be in \[1, 100000\] or none"
    with pytest.raises(ConfigError, match=refusal):
        check_config(config)


def test_trainval_training_classes_are_the_training_and_validation_classes(data_root, cache_dir):
    from metalearn.build import build_dataset

    config = apply_overrides(
        get_preset("protonet-omniglot-5w1s"),
        [
            "data.train_classes=trainval",
            "train.eval_every=0",
            f"data.root={data_root}",
            f"data.cache_dir={cache_dir}",
        ],
    )
    train, val = build_dataset(config, "train"), build_dataset(config, "val")
    test = build_dataset(config, "test")
    assert train.n_classes == 4112 + 688
    assert set(val.class_names) < set(train.class_names)
    assert not set(test.class_names) & set(train.class_names)


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        (["train.eval_every=500"], "set --train.eval_every=0"),
        (["train.eval_every=0", "data.split=lake"], "only Omniglot's vinyals and maml splits"),
        (["train.eval_every=0", "data.dataset=folder"], "only Omniglot's vinyals and maml"),
    ],
    ids=["with-validation", "lake-split", "class-folders"],
)
def test_trainval_is_refused_with_validation_or_without_validation_classes(overrides, refusal):
    from metalearn.config_checks import check_config

    config = apply_overrides(
        get_preset("protonet-omniglot-5w1s"), ["data.train_classes=trainval", *overrides]
    )
    with pytest.raises(ConfigError, match=refusal):
        check_config(config)
    check_config(apply_overrides(get_preset("protonet-omniglot-5w1s"), overrides))
