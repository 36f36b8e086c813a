import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.data

TINY = ["--train.steps=2", "--train.eval_every=0", "--eval.val_episodes=0", "--eval.episodes=4"]


def _draw(path: Path, shape: str, shift: int = 0) -> None:
    image = Image.new("L", (105, 105), 255)
    draw = ImageDraw.Draw(image)
    box = (25 + shift, 25 + shift, 80 + shift, 80 + shift)
    if shape == "circle":
        draw.ellipse(box, outline=0, width=6)
    elif shape == "square":
        draw.rectangle(box, outline=0, width=6)
    else:
        draw.line(box, fill=0, width=6)
        draw.line((box[0], box[3], box[2], box[1]), fill=0, width=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture
def support(tmp_path) -> Path:
    for shape in ("circle", "cross", "square"):
        _draw(tmp_path / "support" / shape / "a.png", shape)
    return tmp_path / "support"


@pytest.fixture(scope="module")
def protonet_run(data_root, cache_dir, tmp_path_factory) -> Path:
    """One tiny ProtoNet run shared by the module (its files are only read)."""
    from metalearn.cli.main import main

    run = tmp_path_factory.mktemp("proto") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METALEARN_CACHE", str(cache_dir))
        code = main(
            [
                "train",
                "--preset",
                "protonet-omniglot-5w1s",
                *TINY,
                "--data.root",
                str(data_root),
                "--run-dir",
                str(run),
            ]
        )
    assert code == 0
    return run


def test_adapt_then_predict_classifies_the_users_own_classes(run_cli, protonet_run, support):
    code, out, err = run_cli("adapt", str(protonet_run), str(support), "-o", "me.pt")
    assert code == 0, err
    assert "3 classes (circle, cross, square)" in out
    images = [support / s / "a.png" for s in ("circle", "cross", "square")]
    code, out, err = run_cli("predict", "me.pt", *map(str, images), "--json")
    assert code == 0, err
    rows = json.loads(out)
    # A support image sits at distance 0 from its own prototype: its class must come back.
    assert [r["class"] for r in rows] == ["circle", "cross", "square"]
    assert all(0.0 < r["probability"] <= 1.0 for r in rows)
    code, out, _ = run_cli("predict", "me.pt", str(support / "cross"))
    assert code == 0
    assert "cross" in out


def test_plot_writes_curves_and_an_episode_grid(run_cli, protonet_run):
    code, _out, err = run_cli("plot", str(protonet_run))
    assert code == 0, err
    for name in ("curves.png", "episode.png"):
        assert (protonet_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_gradient_learner_refuses_a_support_set_of_the_wrong_width(run_cli, data_root, support):
    code, _, err = run_cli(
        "train",
        "--preset",
        "fomaml-omniglot-5w1s",
        *TINY,
        "--train.meta_batch_size=2",
        "--data.root",
        str(data_root),
        "--run-dir",
        "maml",
    )
    assert code == 0, err
    code, _, err = run_cli("adapt", "maml", str(support))
    assert code == 1
    assert "3 classes" in err
    assert "n_way=5" in err


def test_an_empty_support_folder_is_a_clear_error(run_cli, protonet_run, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("adapt", str(protonet_run), str(tmp_path / "empty"))
    assert code == 1
    assert "empty" in err
    assert "Traceback" not in err


def test_an_unreadable_image_names_the_file(run_cli, protonet_run, support):
    bad = support / "circle" / "broken.png"
    bad.write_bytes(b"not a png")
    code, _, err = run_cli("adapt", str(protonet_run), str(support))
    assert code == 1
    assert "broken.png" in err


def test_evaluate_reads_a_folder_of_fixed_episodes_in_order(run_cli, protonet_run, tmp_path):
    # Queries identical to their support images sit at distance 0 from their own prototype.
    for episode in ("e1", "e2"):
        for part in ("support", "query"):
            for shift, shape in enumerate(("circle", "cross", "square")):
                _draw(tmp_path / "bench" / episode / part / shape / "a.png", shape, shift)
    code, _, err = run_cli(
        "evaluate",
        str(protonet_run),
        "--episode-folder",
        str(tmp_path / "bench"),
        "--out",
        str(tmp_path / "bench.json"),
    )
    assert code == 0, err
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["episodes"] == 2
    assert result["mean"] == 1.0
    assert result["subset"] == f"folder:{tmp_path / 'bench'}"
    code, _, err = run_cli(
        "evaluate", str(protonet_run), "--episode-folder", str(tmp_path / "missing")
    )
    assert code == 1
    assert "missing" in err


def test_predict_rejects_a_file_that_is_not_a_personal_model(run_cli, protonet_run, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    code, _, err = run_cli("predict", str(tmp_path / "junk.pt"), str(tmp_path))
    assert code == 1
    assert "junk.pt is not a personal model" in err
    code, _, err = run_cli("predict", str(protonet_run / "checkpoint.pt"), str(tmp_path))
    assert code == 1
    assert "not a personal model" in err


def test_predict_names_an_image_path_that_does_not_exist(run_cli, protonet_run, support):
    assert run_cli("adapt", str(protonet_run), str(support), "-o", "me.pt")[0] == 0
    code, _, err = run_cli("predict", "me.pt", "no-such-image.png")
    assert code == 1
    assert "no-such-image.png" in err


def test_evaluate_scores_inductive_predictions_on_request(run_cli, protonet_run, tmp_path):
    # queries identical to their support images: nearest to their own prototype in both modes
    for part in ("support", "query"):
        for shift, shape in enumerate(("circle", "cross", "square")):
            _draw(tmp_path / "bench" / "e1" / part / shape / "a.png", shape, shift)
    results = {}
    for mode in ("true", "false"):
        out = tmp_path / f"{mode}.json"
        code, _, err = run_cli(
            "evaluate",
            str(protonet_run),
            "--episode-folder",
            str(tmp_path / "bench"),
            f"--eval.transductive={mode}",
            "--out",
            str(out),
        )
        assert code == 0, err
        results[mode] = json.loads(out.read_text())
    assert results["true"]["transductive"] is True
    assert results["false"]["transductive"] is False
    assert results["false"]["mean"] == 1.0
