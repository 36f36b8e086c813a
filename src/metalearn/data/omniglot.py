"""Omniglot (Lake et al., 2015) from the official archives, with the three common splits.

The archives are read in place from ``<root>/omniglot/`` (see
:mod:`metalearn.data.omniglot_archive`). Splits:

- ``"vinyals"`` (Vinyals et al., 2016, as published with Prototypical Networks): the class
  lists in ``<root>/omniglot/splits/vinyals/{train,val,test,trainval}.txt``; each line
  ``Alphabet/characterNN/rotDDD`` is a class, so rotations are new classes: 4,112 / 688 /
  1,692 / 4,800 classes.
- ``"lake"`` (Lake et al.): the 964 background characters for ``train`` and the 659 evaluation
  characters for ``test``, without rotation. There is no validation set: ``"val"`` raises
  :class:`~metalearn.errors.ConfigError`, and ``"trainval"`` is the same as ``"train"``.
- ``"maml"`` (Finn et al., 2017, ``data_generator.py``): all 1,623 characters shuffled, then
  1,100 train / 100 val / 423 test characters (trainval = the first 1,200), each with its 4
  rotations as classes: 4,400 / 400 / 1,692 / 4,800 classes. MAML shuffled the
  ``os.listdir`` order with ``random.seed(1)``, which depends on the file system; we shuffle
  the sorted ``"Alphabet/characterNN"`` names with ``random.Random(1)``, which is the same on
  every machine (but not MAML's exact split).

Rotations cost no memory: a rotated class shares its images and is rotated when gathered.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import torch

from metalearn.data.base import TensorClassDataset
from metalearn.data.omniglot_archive import (
    ARCHIVES,
    DOWNLOAD_URL,
    default_cache_dir,
    read_characters,
)
from metalearn.errors import ConfigError, DataRootNotFoundError, DatasetError

__all__ = ["MAML_SPLIT_SEED", "SPLITS", "SUBSETS", "find_omniglot", "load_omniglot"]

logger = logging.getLogger(__name__)

SPLITS = ("vinyals", "lake", "maml")
SUBSETS = ("train", "val", "test", "trainval")
MAML_SPLIT_SEED = 1
"""Seed of ``random.Random`` that shuffles the sorted character names for the MAML split."""
_MAML_SIZES = {"train": (0, 1100), "val": (1100, 1200), "test": (1200, 1623), "trainval": (0, 1200)}
_SPLITS_URL = (
    "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/"
    "data/omniglot/splits/vinyals"
)


def _layout() -> str:
    urls = "\n".join(f"  {DOWNLOAD_URL}/{spec.filename}" for spec in ARCHIVES)
    return (
        "Expected layout:\n  <root>/omniglot/images_background.zip\n"
        "  <root>/omniglot/images_evaluation.zip\n"
        "  <root>/omniglot/splits/vinyals/{train,val,test,trainval}.txt (split 'vinyals')\n"
        f"Download the archives (or call metalearn.data.download_omniglot(root)) from\n{urls}\n"
        "and pass the root (e.g. --data.root) or set METALEARN_DATA."
    )


def find_omniglot(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder holding both Omniglot archives.

    Args:
        root: the data root (holding ``omniglot/``) or the ``omniglot`` folder itself;
            ``None`` reads ``$METALEARN_DATA``.

    Raises:
        DataRootNotFoundError: listing the paths tried, the expected layout and where to
            download the archives.
    """
    if root is None:
        env = os.environ.get("METALEARN_DATA")
        if not env:
            raise DataRootNotFoundError(
                "no Omniglot data root given and METALEARN_DATA is not set.\n" + _layout()
            )
        root = env
    base = Path(root).expanduser()
    tried: list[Path] = []
    for folder in (base / "omniglot", base):
        paths = [folder / spec.filename for spec in ARCHIVES]
        if all(p.is_file() for p in paths):
            return folder
        tried += paths
    listing = "\n".join(f"  {p} ({'found' if p.is_file() else 'missing'})" for p in tried)
    raise DataRootNotFoundError(
        f"Omniglot archives not found under {str(base)!r}. Tried:\n{listing}\n" + _layout()
    )


def load_omniglot(
    root: str | os.PathLike[str] | None = None,
    split: str = "vinyals",
    subset: str = "train",
    *,
    image_size: int = 28,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> TensorClassDataset:
    """Load one subset of an Omniglot split as a class-indexed dataset.

    Images are ``(1, image_size, image_size)``, strokes 1 and background 0 once gathered
    (Lanczos-resized from the 105 x 105 drawings, so edges take values in between).

    Args:
        root: the data root holding ``omniglot/`` (or that folder); ``None`` reads
            ``$METALEARN_DATA``. Only read, never written.
        split: ``"vinyals"``, ``"lake"`` or ``"maml"`` (see the module docstring).
        subset: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        image_size: side of the square images.
        cache_dir: where the decoded images are cached (default ``$METALEARN_CACHE``, else
            ``~/.cache/metalearn``).
        cache: read and write that cache; ``False`` always decodes the archives.

    Returns:
        A dataset whose classes are named ``"Alphabet/characterNN"``, with a ``/rotDDD``
        suffix for rotated classes.

    Raises:
        ConfigError: for an unknown split or subset, or ``split="lake", subset="val"``.
        DataRootNotFoundError: if the archives or split files are missing (the message lists
            the paths tried, the expected layout and the download URLs).
        DatasetError: if an archive is truncated or holds the wrong number of alphabets,
            characters or images, or a split file names an unknown character.
        CorruptImageError: if a PNG cannot be decoded (the message names the member).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown Omniglot split {split!r}; choose one of {list(SPLITS)}")
    if subset not in SUBSETS:
        raise ConfigError(f"unknown Omniglot subset {subset!r}; choose one of {list(SUBSETS)}")
    if split == "lake" and subset == "val":
        raise ConfigError(
            "the 'lake' split has no validation set; use subset='train' or 'test', "
            "or split='vinyals' or 'maml' for a val subset"
        )
    if not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive int, got {image_size!r}")
    folder = find_omniglot(root)
    archives = [folder / spec.filename for spec in ARCHIVES]
    directory = (
        (Path(cache_dir) if cache_dir is not None else default_cache_dir()) if cache else None
    )
    decoded = read_characters(archives, image_size, directory)
    y = torch.arange(len(decoded.names)).repeat_interleave(
        len(decoded.images) // len(decoded.names)
    )
    characters = TensorClassDataset(decoded.images, y, decoded.names)
    if split == "vinyals":
        return _vinyals(characters, folder / "splits" / "vinyals" / f"{subset}.txt")
    if split == "lake":
        n_background = decoded.counts[0]
        ids = range(n_background) if subset != "test" else range(n_background, len(decoded.names))
        return characters.select(list(ids))
    return _maml(characters, subset)


def _maml(characters: TensorClassDataset, subset: str) -> TensorClassDataset:
    names = sorted(characters.class_names)
    random.Random(MAML_SPLIT_SEED).shuffle(names)
    start, stop = _MAML_SIZES[subset]
    index = {name: i for i, name in enumerate(characters.class_names)}
    ids = sorted(index[name] for name in names[start:stop])
    return characters.select(ids).with_rotations()


def _vinyals(characters: TensorClassDataset, path: Path) -> TensorClassDataset:
    if not path.is_file():
        raise DataRootNotFoundError(
            f"Vinyals split file {str(path)!r} not found; download the split files from "
            f"{_SPLITS_URL}/{{train,val,test,trainval}}.txt into {path.parent}\n" + _layout()
        )
    index = {name: i for i, name in enumerate(characters.class_names)}
    ids, turns = [], []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        character, _, rotation = line.strip().rpartition("/")
        degrees = rotation.removeprefix("rot")
        if character not in index or degrees not in ("000", "090", "180", "270"):
            raise DatasetError(
                f"{path}:{number}: {line!r} is not 'Alphabet/characterNN/rotDDD' with a known "
                f"character and DDD in 000, 090, 180, 270; restore the file from {_SPLITS_URL}"
            )
        ids.append(index[character])
        turns.append(int(degrees) // 90)
    return characters.select(ids, turns)
