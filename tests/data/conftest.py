"""Fixtures of the data tests: Omniglot decoded once per session, tiny synthetic archives."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import metalearn.data.omniglot_archive as omniglot_archive
from metalearn.data import load_omniglot
from metalearn.data.omniglot_archive import ArchiveSpec


@pytest.fixture(scope="session")
def omniglot_first_load(data_root: Path, cache_dir: Path) -> float:
    """Decode the archives into the session cache once; return the seconds it took."""
    start = time.perf_counter()
    load_omniglot(data_root, "lake", "train", cache_dir=cache_dir)
    return time.perf_counter() - start


@pytest.fixture(scope="session")
def omniglot(data_root: Path, cache_dir: Path, omniglot_first_load: float):
    """``omniglot(split, subset)``: load from the session cache, once per split and subset."""
    loaded = {}

    def load(split: str, subset: str):
        if (split, subset) not in loaded:
            loaded[split, subset] = load_omniglot(data_root, split, subset, cache_dir=cache_dir)
        return loaded[split, subset]

    return load


def png_bytes(array: np.ndarray, mode: str = "L") -> bytes:
    """Encode a uint8 (h, w) or (h, w, c) array as PNG; mode "1" gives a 1-bit PNG."""
    image = Image.fromarray(array)
    if mode != image.mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def page(character: int) -> np.ndarray:
    """A 105x105 white page with a black band of rows ``10 * character .. + 30``."""
    array = np.full((105, 105), 255, dtype=np.uint8)
    array[10 * character : 10 * character + 30, :] = 0
    return array


@pytest.fixture
def tiny_omniglot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``tiny_omniglot(**kw) -> root``: small archives under ``root/omniglot``.

    The expected counts are patched to 2 + 1 alphabets of 2 characters of 3 images, so the
    public loader runs its real code on them in milliseconds. Keyword arguments: ``alphabets``
    (per archive), ``characters`` (per alphabet), ``images`` (per character) to write, and
    ``corrupt`` (a member whose bytes are replaced by garbage).
    """
    monkeypatch.setattr(
        omniglot_archive,
        "ARCHIVES",
        (
            ArchiveSpec("images_background.zip", 2, 4, 3),
            ArchiveSpec("images_evaluation.zip", 1, 2, 3),
        ),
    )

    def write(
        alphabets: tuple[int, int] = (2, 1),
        characters: int = 2,
        images: int = 3,
        corrupt: str | None = None,
    ) -> Path:
        root = tmp_path / "data"
        folder = root / "omniglot"
        folder.mkdir(parents=True, exist_ok=True)
        for archive, n_alphabets in zip(("background", "evaluation"), alphabets, strict=True):
            with zipfile.ZipFile(folder / f"images_{archive}.zip", "w") as z:
                for a in range(n_alphabets):
                    for c in range(1, characters + 1):
                        data = png_bytes(page(c), mode="1")
                        folder_name = f"images_{archive}/{archive}{a}/character{c:02d}"
                        for i in range(1, images + 1):
                            name = f"{folder_name}/{c:04d}_{i:02d}.png"
                            z.writestr(name, b"not a png" if name == corrupt else data)
        return root

    return write
