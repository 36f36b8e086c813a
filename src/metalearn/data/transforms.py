"""Image helpers with Pillow and NumPy (no torchvision): decode, resize, invert, rotate.

Images are stored as ``uint8`` arrays ``(channels, height, width)`` and turned into float32 in
``[0, 1]`` only when a task is gathered, so a dataset costs one byte per pixel.
"""

from __future__ import annotations

import io
import os
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
    "invert",
    "normalize_size",
    "resize",
    "rot90",
    "rot90_index",
    "to_float",
]

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
"""File suffixes (lower case) read as images by the folder datasets; other files are ignored."""

Channels = Literal[1, 3]


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
    if name is None:
        name = str(source) if isinstance(source, str | os.PathLike) else "<bytes>"
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream) as image:
            image.load()
            converted = _to_mode(image, channels)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(
            f"cannot decode image {name!r} ({exc}); replace or delete the file"
        ) from exc
    array = np.asarray(resize(converted, size), dtype=np.uint8)
    if invert_values:
        array = invert(array)
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


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
