"""metalearn.personal_model: the personal model file round-trips, for every kind of learner."""

from __future__ import annotations

import pytest
import torch

from metalearn.applications import Rejection, personalize
from metalearn.build import build_learner
from metalearn.errors import CheckpointError, EpisodeSpecError
from metalearn.personal_model import load_personal, payload_of, read_query_images, support_n_way
from metalearn.presets import get_preset


def _support(n_classes: int, per_class: int = 2) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n_classes * per_class, 1, 28, 28, generator=g)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    return x, y, [f"class {i}" for i in range(n_classes)]


@pytest.mark.parametrize(
    ("preset", "n_way"), [("protonet-omniglot-5w1s", None), ("maml-omniglot-5w1s", 5)]
)
def test_support_n_way_is_the_head_of_gradient_learners_only(preset, n_way):
    assert support_n_way(get_preset(preset)) == n_way


@pytest.mark.parametrize("preset", ["protonet-omniglot-5w1s", "maml-omniglot-5w1s"])
def test_saved_and_loaded_model_predicts_the_same(tmp_path, preset):
    config = get_preset(preset)
    torch.manual_seed(0)
    learner = build_learner(config)
    x, y, names = _support(5)
    personal = personalize(learner, x, y, names, n_way=support_n_way(config))
    personal.rejection = Rejection(0.5, "max_prob", target_recall=0.9, recall=0.91, n_queries=10)
    torch.save(payload_of(config, personal, invert=True, channels=1), tmp_path / "me.pt")

    loaded, meta = load_personal(tmp_path / "me.pt")

    queries = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loaded.predict_proba(queries), personal.predict_proba(queries))
    assert loaded.class_names == names
    assert loaded.rejection == personal.rejection
    assert (meta["invert"], meta["channels"], meta["config"]) == (True, 1, config)


def test_a_gradient_learner_refuses_another_number_of_classes():
    config = get_preset("maml-omniglot-5w1s")
    x, y, names = _support(3)
    with pytest.raises(EpisodeSpecError, match="n_way=5"):
        personalize(build_learner(config), x, y, names, n_way=support_n_way(config))


def test_a_file_of_another_kind_is_refused_in_one_line(tmp_path):
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not a personal model") as error:
        load_personal(tmp_path / "other.pt")
    assert "\n" not in str(error.value)


def test_query_images_are_read_as_the_support_set_was(tmp_path):
    from PIL import Image

    config = get_preset("protonet-omniglot-5w1s")
    x, y, names = _support(5)
    personal = personalize(build_learner(config), x, y, names)
    torch.save(payload_of(config, personal, invert=True, channels=1), tmp_path / "me.pt")
    _, meta = load_personal(tmp_path / "me.pt")
    pixels = torch.randint(0, 256, (2, 28, 28), generator=torch.Generator().manual_seed(2))
    paths = []
    for i, image in enumerate(pixels):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image.to(torch.uint8).numpy(), mode="L").save(paths[-1])

    inverted = read_query_images(meta, [str(p) for p in paths])  # the support set's inversion
    plain = read_query_images(meta, paths, invert=False)

    assert inverted.shape == (2, 1, 28, 28)
    torch.testing.assert_close(plain[:, 0], pixels.float() / 255)
    torch.testing.assert_close(inverted, 1 - plain)
