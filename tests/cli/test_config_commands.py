import json
import subprocess
import sys
from pathlib import Path

import pytest

from metalearn.cli.overrides import apply_overrides
from metalearn.config import from_dict, to_dict
from metalearn.errors import ConfigError
from metalearn.presets import PRESETS, get_preset


def test_presets_lists_every_paper_setting(run_cli):
    code, out, _ = run_cli("presets")
    assert code == 0
    for name in (
        "maml-omniglot-5w1s",
        "protonet-omniglot-20w5s",
        "siamese-omniglot-5w1s",
        "reptile-omniglot-20w1s",
        "meta-sgd-sinusoid",
        "maml-sinusoid",
    ):
        assert name in out
    assert len(out.strip().splitlines()) == len(PRESETS)


def test_config_prints_the_resolved_preset_and_round_trips(run_cli):
    code, out, _ = run_cli(
        "config",
        "--preset",
        "maml-omniglot-20w1s",
        "--train.steps=7",
        "--eval.inner_steps",
        "0,1,2",
        "--data.root",
        "/data",
    )
    assert code == 0
    printed = from_dict(json.loads(out))
    expected = apply_overrides(
        get_preset("maml-omniglot-20w1s"),
        ["train.steps=7", "eval.inner_steps=0,1,2", "data.root=/data"],
    )
    assert printed == expected
    assert printed.train.steps == 7
    assert printed.eval.inner_steps == (0, 1, 2)
    assert printed.algorithm.inner_steps == 5
    assert printed.train.meta_batch_size == 16


def test_an_unknown_override_fails_with_a_suggestion(run_cli):
    code, _, err = run_cli("config", "--preset", "maml-sinusoid", "--train.step=5")
    assert code == 2
    assert "unknown config key --train.step" in err
    assert "--train.steps" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--train.steps=many", "expected int"),
        ("--algorithm.name=mamal", "expected one of"),
        ("--data.n_way", "needs a value"),
        ("--train.outer_lr=-1", "outer_lr"),
    ],
)
def test_a_bad_override_value_is_one_clear_line(run_cli, override, message):
    code, _, err = run_cli("config", "--preset", "maml-sinusoid", override)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_preset_fails_with_close_names(run_cli):
    code, _, err = run_cli("config", "--preset", "protonet-omniglot-5w")
    assert code == 2
    assert "protonet-omniglot-5w1s" in err


def test_every_preset_round_trips_through_json():
    for name, config in PRESETS.items():
        assert from_dict(json.loads(json.dumps(to_dict(config)))) == config, name


def test_overrides_parse_optional_bool_and_tuple_fields():
    config = apply_overrides(
        get_preset("maml-sinusoid"),
        [
            "algorithm.batched=false",
            "algorithm.eval_inner_steps=none",
            "train.grad_clip=1.5",
            "eval.inner_steps=(0, 3)",
        ],
    )
    assert config.algorithm.batched is False
    assert config.algorithm.eval_inner_steps is None
    assert config.train.grad_clip == 1.5
    assert config.eval.inner_steps == (0, 3)
    with pytest.raises(ConfigError, match="boolean"):
        apply_overrides(config, ["algorithm.fce=maybe"])


def test_info_reports_versions_and_the_data_root(run_cli, data_root):
    code, out, _ = run_cli("info", "--data.root", str(data_root))
    assert code == 0
    assert "torch: " in out
    assert f"found at {data_root}" in out
    code, out, _ = run_cli("info", "--data.root", "/nowhere")
    assert code == 0
    assert "omniglot: not found" in out


def test_the_installed_console_script_runs():
    script = Path(sys.executable).with_name("metalearn")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in ("train", "evaluate", "adapt", "predict", "plot", "demo", "presets", "info"):
        assert command in result.stdout
    result = subprocess.run(
        [str(script), "config", "--preset", "nope"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown preset")


def test_a_run_config_written_before_the_rename_of_vectorize_still_loads():
    data = to_dict(get_preset("maml-sinusoid"))
    del data["algorithm"]["batched"]
    data["algorithm"]["vectorize"] = False
    assert from_dict(data).algorithm.batched is False


def test_a_plot_title_names_the_preset_only_when_the_run_folder_has_another_name(tmp_path):
    from metalearn.presets import get_preset
    from metalearn.workflows import run_title

    config = get_preset("maml-sinusoid")
    assert run_title(tmp_path / "maml-sinusoid", config) == "maml-sinusoid"
    assert run_title(tmp_path / "mine", config) == "mine (preset maml-sinusoid)"
