"""Class folders ``root/<class>/<image files>`` as a class-indexed dataset.

The same reader serves user data (personalization) and datasets we do not ship, laid out one
folder per class (mini-ImageNet, CIFAR-FS, ...). Images of any size and colour mode are
resized to one shape and kept as ``uint8``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from metalearn.data.base import TensorClassDataset
from metalearn.data.transforms import (
    IMAGE_EXTENSIONS,
    Channels,
    decode_image,
    image_channels_of,
    normalize_size,
)
from metalearn.errors import DataRootNotFoundError, DatasetError

__all__ = [
    "ImageFolderDataset",
    "check_disjoint_classes",
    "folder_channels",
    "list_class_folders",
    "list_images",
    "read_images",
    "read_labelled_images",
]

logger = logging.getLogger(__name__)


def list_class_folders(root: Path, *, what: str = "class") -> list[Path]:
    """Return the sub-folders of ``root`` (sorted by name, hidden ones skipped).

    Raises:
        DataRootNotFoundError: if ``root`` is not a folder.
        DatasetError: if ``root`` has no sub-folder or cannot be listed.
    """
    if not root.is_dir():
        raise DataRootNotFoundError(
            f"folder {str(root)!r} not found; expected {what} folders {root}/<{what}>/..."
        )
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DatasetError(f"cannot list {str(root)!r} ({exc}); check its permissions") from exc
    if not folders:
        raise DatasetError(
            f"{str(root)!r} holds no {what} folder; expected {root}/<{what}>/<files>"
        )
    return folders


def list_images(folder: str | Path) -> list[Path]:
    """Return the image files of ``folder`` (sorted; other and hidden files are skipped).

    Raises:
        DatasetError: if the folder cannot be listed or holds no image file.
    """
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise DatasetError(
            f"cannot read folder {str(folder)!r} ({exc}); check its permissions"
        ) from exc
    images = [
        p
        for p in entries
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    if len(images) < len(entries):
        logger.debug("skipped %d non-image entries in %s", len(entries) - len(images), folder)
    if not images:
        suffixes = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DatasetError(
            f"folder {str(folder)!r} holds no image file ({suffixes}); add images or remove it"
        )
    return images


def read_images(
    paths: list[Path], size: tuple[int, int], channels: Channels, invert: bool
) -> np.ndarray:
    """Decode, resize and stack images into ``(len(paths), channels, *size)`` uint8.

    Raises:
        CorruptImageError: naming the first file that cannot be decoded.
    """
    out = np.empty((len(paths), channels, *size), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = decode_image(path, size, channels=channels, invert_values=invert)
    return out


def read_labelled_images(
    files_by_class: list[list[Path]], size: tuple[int, int], channels: Channels, invert: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the images of each class; class ``c`` gets label ``c``.

    Returns:
        ``x`` ``(n, channels, *size)`` uint8 and ``y`` ``(n,)`` int64, grouped by label.

    Raises:
        CorruptImageError: naming the first file that cannot be decoded.
    """
    paths = [p for files in files_by_class for p in files]
    x = torch.from_numpy(read_images(paths, size, channels, invert))
    counts = torch.tensor([len(files) for files in files_by_class])
    return x, torch.arange(len(files_by_class)).repeat_interleave(counts)


def folder_channels(roots: list[Path]) -> Channels:
    """Return 1 if every image under ``roots`` (``root/<class>/<files>``) has no colour, else 3.

    Grey, 1-bit, 16-bit and grey-palette images have no colour; the first colour image ends
    the scan. Only headers are read.

    Raises:
        DataRootNotFoundError: if no root is a folder.
        DatasetError: if a root holds no class folder or a class folder no image.
        CorruptImageError: naming the first file whose header Pillow cannot read.
    """
    existing = [root for root in roots if root.is_dir()]
    if not existing:
        listed = ", ".join(repr(str(r)) for r in roots)
        raise DataRootNotFoundError(
            f"none of {listed} is a folder; expected <split>/<class>/<image files> folders"
        )
    for root in existing:
        for folder in list_class_folders(root):
            if any(image_channels_of(path) == 3 for path in list_images(folder)):
                return 3
    return 1


def check_disjoint_classes(first: Path, second: Path) -> None:
    """Refuse two class-folder sets (e.g. ``val/`` and ``test/``) that share a class name.

    A class in both would let validation episodes (which choose the best checkpoint) hold
    test classes. A missing folder shares nothing.

    Raises:
        DatasetError: naming the shared classes and both folders.
    """
    if not (first.is_dir() and second.is_dir()):
        return
    names = [{f.name for f in list_class_folders(root)} for root in (first, second)]
    shared = sorted(names[0] & names[1])
    if shared:
        listed = ", ".join(repr(n) for n in shared[:5]) + (" ..." if len(shared) > 5 else "")
        raise DatasetError(
            f"{str(first)!r} and {str(second)!r} share {len(shared)} class folder(s) "
            f"({listed}); each class must be in one split only: move or rename them"
        )


class ImageFolderDataset(TensorClassDataset):
    """Images laid out as ``root/<class>/<image files>``, one class per folder.

    Classes are the sub-folders in sorted order, named by folder; files are read in sorted
    order. Every image is converted to ``channels``, resized with Lanczos filtering to
    ``image_size`` and stored as ``uint8``; :meth:`gather` returns float32 in ``[0, 1]``.

    Args:
        root: the folder holding one sub-folder per class.
        image_size: ``(height, width)``, or one int for square images.
        channels: 1 (grayscale) or 3 (RGB); transparent pixels are painted white first.
        invert: store ``1 - value``, so dark strokes on a light page become 1 on 0 (as
            Omniglot).

    Raises:
        DataRootNotFoundError: if ``root`` is not a folder.
        DatasetError: if ``root`` holds no class folder, or a class folder is empty or cannot
            be read (the message names it).
        CorruptImageError: if an image cannot be decoded (the message names the file).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int | tuple[int, int] = (28, 28),
        *,
        channels: Channels = 1,
        invert: bool = False,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.root = Path(root)
        size = normalize_size(image_size)
        folders = list_class_folders(self.root)
        x, y = read_labelled_images([list_images(f) for f in folders], size, channels, invert)
        super().__init__(x, y, [folder.name for folder in folders])
        logger.info("read %d images of %d classes from %s", len(y), len(folders), root)
