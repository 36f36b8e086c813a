"""A run folder made by the Python API works with `metalearn evaluate` and `metalearn plot`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from metalearn.build import build_learner, build_tasks
from metalearn.config import from_dict, to_dict
from metalearn.presets import get_preset
from metalearn.training import meta_train

pytestmark = pytest.mark.data


def test_an_api_run_passing_its_config_works_with_evaluate_and_plot(run_cli, data_root, tmp_path):
    config = get_preset("protonet-omniglot-5w1s")
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, root=str(data_root)),
        train=dataclasses.replace(config.train, steps=3, eval_every=0, progress=False),
    )
    learner = build_learner(config)
    run_dir = tmp_path / "api-run"
    meta_train(
        learner,
        build_tasks(config, "train"),
        config.train,
        run_dir=run_dir,
        extra_state={"config": to_dict(config)},
    )
    assert from_dict(json.loads((run_dir / "config.json").read_text())) == config

    code, out, err = run_cli("evaluate", str(run_dir), "--episodes", "4")
    assert code == 0, err
    assert "accuracy" in out
    code, out, err = run_cli("plot", str(run_dir))
    assert code == 0, err
    assert (run_dir / "curves.png").is_file()
    assert (run_dir / "episode.png").is_file()
