"""benchmarks/make_glyphs.py: real glyphs are kept, missing ones (tofu) and marks skipped."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

_PATH = Path(__file__).parents[1] / "benchmarks" / "make_glyphs.py"
_spec = importlib.util.spec_from_file_location("make_glyphs", _PATH)
assert _spec is not None
assert _spec.loader is not None
glyphs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(glyphs)

FONTS = glyphs.find_fonts(["NotoSansThai"])
# `.ci/run` installs the fonts, so under CI a missing font fails instead of skipping
pytestmark = pytest.mark.skipif(
    not FONTS and not os.environ.get("CI"), reason="fonts-noto-core is not installed"
)


def test_a_thai_letter_is_real_and_tofu_blanks_and_dots_are_not():
    font = ImageFont.truetype(str(FONTS[0]), 72)
    tofu = glyphs.render("\U0010fffd", font)
    assert glyphs.is_real("\u0e01", font, tofu)  # THAI CHARACTER KO KAI
    assert not glyphs.is_real("\u0e3b", font, tofu)  # unassigned in the Thai block
    assert not glyphs.is_real(" ", font, tofu)  # draws nothing
    assert not glyphs.is_real(".", font, tofu)  # a dot: too small to be a class


def test_classes_are_written_as_folders_of_jittered_images(tmp_path, monkeypatch):
    monkeypatch.setattr(glyphs, "SCRIPTS", {"thai": ([(0x0E01, 0x0E03)], ["NotoSansThai"])})
    assert glyphs.make_glyphs(tmp_path, per_class=3, subset="test", seed=0, max_per_script=9) == 3
    folder = tmp_path / "test" / "thai-U+0E01"
    images = [np.asarray(Image.open(p)) for p in sorted(folder.iterdir())]
    assert len(images) == 3
    assert images[0].shape == (105, 105)
    assert not np.array_equal(images[0], images[1])  # jittered
    assert (images[0] < 128).sum() > 200  # ink, not a blank page
