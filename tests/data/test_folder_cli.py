"""Class-folder datasets from the command line: mixed colour modes train, evaluate and adapt.

Issue 11, item 2: ``--data.dataset=folder`` built a 3-channel network and fed it 1-channel
images, so training crashed at step 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metalearn.cli.main import main

# Each class is a colour and stripes (width, direction); the modes cycle through the files.
COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 200, 40), (160, 60, 200)]
MODES = ["L", "RGB", "RGBA", "P", "1"]


@pytest.fixture
def run_cli(capsys, tmp_path, monkeypatch):
    """Run ``metalearn`` in-process in ``tmp_path``; return ``(exit_code, stdout, stderr)``."""
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def drawing(label: int, index: int, mode: str) -> Image.Image:
    """A 20x20 image of class ``label``: its colour in stripes of its own width and direction."""
    rng = np.random.default_rng(100 * label + index)
    array = np.full((20, 20, 3), 255, dtype=np.uint8)
    stripes = (np.arange(20) // (2 + label)) % 2 == 0
    mask = stripes[:, None] if label % 2 == 0 else stripes[None, :]
    array[np.broadcast_to(mask, (20, 20))] = COLOURS[label]
    noise = rng.integers(-20, 21, size=array.shape)
    image = Image.fromarray(np.clip(array + noise, 0, 255).astype(np.uint8))
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(Image.new("L", image.size, 200))
    elif mode == "P":
        image = image.quantize(16)
        image.info["transparency"] = 0
    elif mode != "RGB":
        image = image.convert(mode)
    return image


def write_dataset(root: Path, modes: list[str]) -> None:
    """``root/{train,val,test}/<class>/`` with classes 0-4, 5-7 and 8-10 (colours cycle)."""
    splits = {"train": range(5), "val": range(5, 8), "test": range(8, 11)}
    for split, labels in splits.items():
        for label in labels:
            folder = root / split / f"class{label:02d}"
            folder.mkdir(parents=True)
            for i in range(6):
                mode = modes[(label + i) % len(modes)]
                name = folder / f"{i}.{'gif' if mode == 'P' else 'png'}"
                drawing(label % len(COLOURS), i, mode).save(name)


def train_args(root: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--preset=protonet-omniglot-5w1s",
        "--data.dataset=folder",
        "--data.root",
        str(root),
        "--data.image_size=16",
        "--data.n_way=2",
        "--data.n_query=3",
        "--eval.n_way=2",
        "--eval.n_query=3",
        "--train.steps=4",
        "--train.eval_every=2",
        "--train.log_every=2",
        "--train.progress=false",
        "--eval.val_episodes=4",
        "--eval.episodes=30",
        "--run-dir=run",
        *extra,
    ]


def test_mixed_modes_train_evaluate_adapt_and_predict_from_the_cli(run_cli, tmp_path):
    write_dataset(tmp_path / "data", MODES)
    code, out, err = run_cli(*train_args(tmp_path / "data"))
    assert code == 0, err
    config = json.loads(Path("run/config.json").read_text())
    assert config["data"]["channels"] == 3  # colour files: RGB, read from the files
    test = json.loads(Path("run/test.json").read_text())
    assert test["episodes"] == 30
    assert test["mean"] > 0.8  # 2-way, chance 0.5: the colours and stripes are learnt

    code, out, err = run_cli("evaluate", "run", "--episodes=10")
    assert code == 0, err
    assert "on test: accuracy" in out

    support = tmp_path / "data" / "test"
    assert run_cli("adapt", "run", str(support), "-o", "me.pt")[0] == 0
    folders = [str(support / name) for name in ("class08", "class09", "class10")]
    code, out, err = run_cli("predict", "me.pt", *folders, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 18
    assert sum(Path(r["image"]).parent.name == r["class"] for r in rows) >= 14  # chance: 6


def test_grey_folders_give_a_one_channel_network_and_channels_can_be_chosen(run_cli, tmp_path):
    write_dataset(tmp_path / "grey", ["L", "1"])
    assert run_cli(*train_args(tmp_path / "grey", "--no-test"))[0] == 0
    assert json.loads(Path("run/config.json").read_text())["data"]["channels"] == 1
    write_dataset(tmp_path / "colour", MODES)
    overrides = ("--no-test", "--data.channels=1", "--run-dir=run1")
    code, _, err = run_cli(*train_args(tmp_path / "colour"), *overrides)
    assert code == 0, err
    assert json.loads(Path("run1/config.json").read_text())["data"]["channels"] == 1


def test_bad_channel_choices_are_usage_errors(run_cli, tmp_path):
    write_dataset(tmp_path / "data", ["L"])
    code, _, err = run_cli(*train_args(tmp_path / "data", "--data.channels=2"))
    assert code == 2
    assert err.startswith("error: --data.channels=2")
    assert err.count("\n") == 1
    code, _, err = run_cli("train", "--preset=maml-omniglot-5w1s", "--data.channels=3")
    assert code == 2
    assert err == "error: --data.channels=3: Omniglot images have 1 channel\n"


def test_without_a_val_folder_validation_is_switched_off_and_the_last_checkpoint_tested(
    run_cli, tmp_path
):
    write_dataset(tmp_path / "data", ["RGB"])
    (tmp_path / "data" / "val").rename(tmp_path / "elsewhere")
    code, _, err = run_cli(*train_args(tmp_path / "data"))
    assert code == 1
    assert "val" in err
    assert err.count("\n") == 1
    code, _, err = run_cli(*train_args(tmp_path / "data", "--eval.val_episodes=0", "--run-dir=r2"))
    assert code == 0, err
    assert not Path("r2/best.pt").exists()
    assert json.loads(Path("r2/test.json").read_text())["episodes"] == 30
