"""`metalearn predict` output (table, JSON, --invert) and `adapt --reject` (answers unknown)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.data

TINY = ["--train.steps=2", "--train.eval_every=0", "--eval.val_episodes=0", "--eval.episodes=4"]


@pytest.fixture(scope="module")
def protonet_run(data_root, cache_dir, tmp_path_factory) -> Path:
    from metalearn.cli.main import main

    run = tmp_path_factory.mktemp("proto") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METALEARN_CACHE", str(cache_dir))
        argv = ["train", "--preset", "protonet-omniglot-5w1s", *TINY, "--data.root", str(data_root)]
        assert main([*argv, "--run-dir", str(run)]) == 0
    return run


@pytest.fixture
def support(tmp_path) -> Path:
    for shape in ("circle", "cross", "square"):
        image = Image.new("L", (105, 105), 255)
        draw = ImageDraw.Draw(image)
        if shape == "circle":
            draw.ellipse((25, 25, 80, 80), outline=0, width=6)
        elif shape == "square":
            draw.rectangle((25, 25, 80, 80), outline=0, width=6)
        else:
            draw.line((25, 25, 80, 80), fill=0, width=6)
            draw.line((25, 80, 80, 25), fill=0, width=6)
        (tmp_path / "support" / shape).mkdir(parents=True)
        image.save(tmp_path / "support" / shape / "a.png")
    return tmp_path / "support"


def test_adapt_with_reject_makes_predict_answer_unknown_for_noise(run_cli, protonet_run, support):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (105, 105), dtype=np.uint8)).save("noise.png")
    code, out, err = run_cli(
        "adapt", str(protonet_run), str(support), "-o", "me.pt", "--reject", "0.95",
        "--calibration-episodes", "40",
    )  # fmt: skip
    assert code == 0, err
    assert "calibrated 'unknown' on 600 validation images" in out  # 40 episodes, 3 x 5 queries
    images = [str(support / s / "a.png") for s in ("circle", "cross", "square")]
    code, out, err = run_cli("predict", "me.pt", *images, "noise.png", "--json")
    assert code == 0, err
    # a support image is at distance 0 from its prototype (the highest score there is)
    assert [r["class"] for r in json.loads(out)] == ["circle", "cross", "square", "unknown"]

    code, out, err = run_cli("adapt", str(protonet_run), str(support), "-o", "plain.pt")
    assert code == 0, err
    code, out, err = run_cli("predict", "plain.pt", "noise.png", "--json")
    assert json.loads(out)[0]["class"] != "unknown"  # without --reject a class is always named


@pytest.mark.parametrize(
    "bad", [["--reject", "1.5"], ["--reject", "0.9", "--calibration-episodes", "0"]]
)
def test_a_bad_reject_option_is_a_usage_error_and_writes_nothing(
    run_cli, protonet_run, support, bad
):
    code, _out, err = run_cli("adapt", str(protonet_run), str(support), "-o", "me.pt", *bad)
    assert code == 2
    assert err.startswith("error: --")
    assert not Path("me.pt").exists()


def test_predict_json_gives_every_class_probability_and_the_table_a_header(
    run_cli, protonet_run, support
):
    assert run_cli("adapt", str(protonet_run), str(support), "-o", "me.pt")[0] == 0
    image = str(support / "cross" / "a.png")
    code, out, err = run_cli("predict", "me.pt", image, "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert set(row["probabilities"]) == {"circle", "cross", "square"}
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=2e-4)
    assert (
        row["probabilities"][row["class"]]
        == row["probability"]
        == max(row["probabilities"].values())
    )
    code, out, err = run_cli("predict", "me.pt", image)
    assert code == 0, err
    header, line = out.splitlines()
    assert header.split() == ["image", "class", "probability"]
    assert line.split()[:2] == [image, "cross"]
    assert line.index("cross", len(image)) == header.index("class")  # aligned columns


def test_predict_invert_overrides_the_personal_models_setting(run_cli, protonet_run, support):
    assert run_cli("adapt", str(protonet_run), str(support), "-o", "me.pt")[0] == 0  # inverts
    image = str(support / "circle" / "a.png")

    def probabilities(*flags: str) -> dict[str, float]:
        code, out, err = run_cli("predict", "me.pt", image, "--json", *flags)
        assert code == 0, err
        return json.loads(out)[0]["probabilities"]

    assert probabilities("--invert") == probabilities()
    assert probabilities("--no-invert") != probabilities()
