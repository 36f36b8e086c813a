"""Image helpers with Pillow and NumPy (no torchvision): decode, resize, invert, rotate.

Images are stored as ``uint8`` arrays ``(channels, height, width)`` and turned into float32 in
``[0, 1]`` only when a task is gathered, so a dataset costs one byte per pixel.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from torch import Tensor

from metalearn.errors import CorruptImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Channels",
    "decode_image",
    "image_channels_of",
    "invert",
    "normalize_size",
    "resize",
    "rot90",
    "open_image",
    "rot90_index",
    "to_float",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
"""File suffixes (lower case) read as images by the folder datasets; other files are ignored."""

Channels = Literal[1, 3]

_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
"""Pillow modes without colour: images of these modes are one channel."""
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)
"""What Pillow raises for bad files: truncated or unknown data, bad headers, unsupported modes
and sizes beyond ``Image.MAX_IMAGE_PIXELS`` (a warning up to twice the limit, made an error)."""
_WARNINGS_LOCK = threading.RLock()
"""``warnings.catch_warnings`` swaps process-wide state: one image at a time in it."""


def normalize_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``(height, width)`` from an int (square) or a pair, checking both are positive.

    Raises:
        ValueError: if a side is not a positive int.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
        raise ValueError(
            f"image_size must be a positive int or (height, width), got {image_size!r}"
        )
    return size[0], size[1]


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to ``(height, width)`` with Lanczos filtering (antialiased when shrinking)."""
    height, width = size
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)


def invert(array: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Return ``255 - array``: dark strokes on a light page become strokes of 255 on 0."""
    return np.subtract(255, array, dtype=np.uint8)


def _to_mode(image: Image.Image, channels: Channels) -> Image.Image:
    if image.mode.startswith("I;16"):
        # Pillow would clip 16-bit values at 255 (a white image): keep their high byte instead.
        high = np.asarray(image).astype(np.uint16) >> 8
        image = Image.fromarray(high.astype(np.uint8))
    # Transparent pixels would otherwise keep arbitrary (often black) colours: paint them white,
    # as on a page.
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(page, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def decode_image(
    source: str | os.PathLike[str] | bytes | IO[bytes],
    size: tuple[int, int],
    *,
    channels: Channels = 1,
    invert_values: bool = False,
    name: str | None = None,
) -> NDArray[np.uint8]:
    """Decode an image of any size and colour mode into a resized ``uint8`` array.

    Args:
        source: a path, the encoded bytes, or a binary file object.
        size: ``(height, width)`` of the result.
        channels: 1 (grayscale) or 3 (RGB).
        invert_values: return ``255 - value`` (for dark strokes on a light background).
        name: how the error message names the image (defaults to the path).

    Returns:
        ``(channels, height, width)`` uint8 array.

    Raises:
        CorruptImageError: if Pillow cannot decode the image; the message names it.
    """
    with open_image(source, name) as image:
        image.load()
        converted = resize(_to_mode(image, channels), size)
    array = np.asarray(converted, dtype=np.uint8)
    if invert_values:
        array = invert(array)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


@contextmanager
def open_image(
    source: str | os.PathLike[str] | bytes | IO[bytes], name: str | None = None
) -> Iterator[Image.Image]:
    """Open an image with Pillow; any failure inside the block names the image.

    Pillow's warnings are logged, except the decompression-bomb warning (an image of more than
    ``Image.MAX_IMAGE_PIXELS`` pixels), which is an error: decoding it could exhaust memory.

    Args:
        source: a path, the encoded bytes, or a binary file object.
        name: how the error message names the image (defaults to the path).

    Raises:
        CorruptImageError: one line naming the image, for a file Pillow cannot open or decode
            (unknown format, truncated data, too many pixels, unsupported mode).
    """
    if name is None:
        name = str(source) if isinstance(source, str | os.PathLike) else "<bytes>"
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(stream) as image:
                yield image
        except _DECODE_ERRORS as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CorruptImageError(
                f"cannot decode image {name!r} ({reason}); replace or delete the file"
            ) from None
    for warning in caught:
        logger.warning("%s: %s", name, warning.message)


def image_channels_of(path: str | os.PathLike[str]) -> Channels:
    """Return 1 for an image without colour (grey, 1-bit, 16-bit, grey palette), else 3.

    Only the header is read (and a palette), not the pixels.

    Raises:
        CorruptImageError: if Pillow cannot open the file.
    """
    with open_image(path) as image:
        if image.mode in _GREY_MODES:
            return 1
        if image.mode in ("P", "PA"):
            palette = np.asarray(image.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
            return 1 if bool((palette == palette[:, :1]).all()) else 3
        return 3


def to_float(x: Tensor) -> Tensor:
    """Return float32 images: ``uint8`` is scaled to ``[0, 1]``; floating input is cast as is."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).mul_(1.0 / 255.0)
    return x.to(torch.float32)


def rot90(x: Tensor, k: int) -> Tensor:
    """Rotate images ``(..., H, W)`` by ``k * 90`` degrees counter-clockwise (as PIL's rotate)."""
    return torch.rot90(x, k, dims=(-2, -1))


def rot90_index(side: int) -> Tensor:
    """Return the pixel permutations of the four quarter-turns of a ``side x side`` image.

    ``flat[..., table[k]]`` is ``rot90(image, k)`` flattened, for a flattened image ``flat`` of
    shape ``(..., side * side)``, so one gather rotates a batch whose images each have their own
    ``k``.

    Returns:
        ``(4, side * side)`` int64 table.
    """
    grid = torch.arange(side * side).view(side, side)
    return torch.stack([rot90(grid, k).flatten() for k in range(4)])
