"""Read the two Omniglot archives in place, validate them, and cache the decoded images.

Each archive is read with :mod:`zipfile` without extracting anything, so the data root may be
read-only. All 1,623 characters (32,460 drawings) are decoded once into one ``uint8`` tensor
``(32460, 1, size, size)`` (strokes 255, background 0) and cached in a writable folder, keyed
by the archives' sizes and modification times and the image size.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from metalearn.data.transforms import decode_image
from metalearn.errors import DatasetError
from metalearn.utils.io import atomic_save

__all__ = ["ARCHIVES", "DOWNLOAD_URL", "ArchiveSpec", "DecodedCharacters", "read_characters"]

logger = logging.getLogger(__name__)

DOWNLOAD_URL = "https://github.com/brendenlake/omniglot/raw/master/python"
"""Where the official archives live: ``<DOWNLOAD_URL>/images_background.zip`` etc."""

_CACHE_FORMAT = 1  # bump when the cached content or its decoding changes


class ArchiveSpec(NamedTuple):
    """What one official archive holds."""

    filename: str
    """``images_background.zip`` or ``images_evaluation.zip``."""
    n_alphabets: int
    n_characters: int
    n_images: int
    """Drawings per character."""

    @property
    def folder(self) -> str:
        """The top folder inside the archive (the file name without ``.zip``)."""
        return self.filename.removesuffix(".zip")


ARCHIVES = (
    ArchiveSpec("images_background.zip", 30, 964, 20),
    ArchiveSpec("images_evaluation.zip", 20, 659, 20),
)
"""The official archives, in the order their characters are numbered."""


class DecodedCharacters(NamedTuple):
    """Every character of the archives, decoded.

    Attributes:
        images: ``(n_characters * n_images, 1, size, size)`` uint8, strokes 255; character
            ``c`` owns rows ``c * n_images .. (c + 1) * n_images - 1``.
        names: ``"Alphabet/characterNN"`` per character, sorted within each archive.
        counts: number of characters from each archive of :data:`ARCHIVES`.
    """

    images: Tensor
    names: list[str]
    counts: list[int]


def _zip_error(path: Path, exc: Exception) -> DatasetError:
    return DatasetError(
        f"archive {str(path)!r} is truncated or corrupt ({exc}); download it again from "
        f"{DOWNLOAD_URL}/{path.name}"
    )


def _list_characters(
    archive: zipfile.ZipFile, path: Path, spec: ArchiveSpec
) -> dict[str, list[str]]:
    """Map ``"Alphabet/characterNN"`` to its sorted PNG members, after checking the counts."""
    members: dict[str, list[str]] = defaultdict(list)
    for name in archive.namelist():
        parts = name.split("/")
        if len(parts) == 4 and parts[0] == spec.folder and parts[3].endswith(".png"):
            members[f"{parts[1]}/{parts[2]}"].append(name)
    alphabets = {name.split("/")[0] for name in members}
    if len(alphabets) != spec.n_alphabets or len(members) != spec.n_characters:
        raise DatasetError(
            f"archive {str(path)!r} holds {len(alphabets)} alphabets and {len(members)} "
            f"characters under {spec.folder}/; the official one holds {spec.n_alphabets} and "
            f"{spec.n_characters}. Download it again from {DOWNLOAD_URL}/{spec.filename}"
        )
    for character, names in members.items():
        if len(names) != spec.n_images:
            raise DatasetError(
                f"character {character!r} in {str(path)!r} has {len(names)} images; the "
                f"official archive has {spec.n_images}. Download it again from "
                f"{DOWNLOAD_URL}/{spec.filename}"
            )
    return {c: sorted(members[c]) for c in sorted(members)}


def _read_archive(path: Path, spec: ArchiveSpec, size: int) -> tuple[list[str], np.ndarray]:
    """Return the character names and ``(n_characters * n_images, 1, size, size)`` uint8."""
    try:
        with zipfile.ZipFile(path) as archive:
            characters = _list_characters(archive, path, spec)
            out = np.empty((spec.n_characters * spec.n_images, 1, size, size), dtype=np.uint8)
            members = [m for names in characters.values() for m in names]
            for i, member in enumerate(members):
                try:
                    data = archive.read(member)
                except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
                    raise _zip_error(path, exc) from exc
                out[i] = decode_image(
                    data, (size, size), invert_values=True, name=f"{path}:{member}"
                )
    except (zipfile.BadZipFile, EOFError) as exc:
        raise _zip_error(path, exc) from exc
    return list(characters), out


def cache_file(archives: list[Path], size: int, cache_dir: Path) -> Path:
    """The cache path for these archives (by size and mtime) at this image size."""
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in archives]
    key = hashlib.sha1(repr((_CACHE_FORMAT, size, stats)).encode()).hexdigest()[:16]
    return cache_dir / f"omniglot-{size}px-{key}.pt"


def read_characters(archives: list[Path], size: int, cache_dir: Path | None) -> DecodedCharacters:
    """Decode the archives (``ARCHIVES`` order), or load them from the cache.

    Args:
        archives: paths of the archives of :data:`ARCHIVES`, in that order.
        size: side of the square images.
        cache_dir: writable cache folder, or ``None`` to neither read nor write a cache.

    Raises:
        DatasetError: if an archive is truncated or its counts are wrong.
        CorruptImageError: if a PNG cannot be decoded (the message names the member).
    """
    path = cache_file(archives, size, cache_dir) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            cached = torch.load(path, weights_only=True)
            return DecodedCharacters(cached["images"], cached["names"], cached["counts"])
        except Exception as exc:  # a damaged cache is rebuilt, never fatal
            logger.warning("ignoring unreadable cache %s (%s)", path, exc)
    start = time.perf_counter()
    names: list[str] = []
    arrays, counts = [], []
    for archive, spec in zip(archives, ARCHIVES, strict=True):
        archive_names, array = _read_archive(archive, spec, size)
        names += archive_names
        arrays.append(array)
        counts.append(len(archive_names))
    images = torch.from_numpy(np.concatenate(arrays))
    logger.info("decoded %d Omniglot images in %.1f s", len(images), time.perf_counter() - start)
    if path is not None:
        _write_cache(path, {"images": images, "names": names, "counts": counts})
    return DecodedCharacters(images, names, counts)


def _write_cache(path: Path, content: dict[str, object]) -> None:
    try:
        atomic_save(content, path)
    except OSError as exc:  # a read-only cache only costs time
        logger.warning("cannot write the Omniglot cache %s (%s); set METALEARN_CACHE", path, exc)


def default_cache_dir() -> Path:
    """``$METALEARN_CACHE``, else ``~/.cache/metalearn``."""
    env = os.environ.get("METALEARN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "metalearn"
