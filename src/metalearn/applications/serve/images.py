"""Images sent to ``metalearn serve``: checked, then preprocessed as ``metalearn adapt`` does.

An upload is refused before its pixels are decoded when its type is not an image format we
read, or when its header declares more pixels than the limit (a decompression bomb: a few
kilobytes of PNG can declare gigapixels). Accepted images go through
:func:`metalearn.data.transforms.decode_image`, the function the folder readers use, so that a
drawing in the browser and a file given to ``metalearn predict`` become the same tensor.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from metalearn.applications.serve.http import ApiError
from metalearn.data.transforms import Channels, decode_image, invert
from metalearn.errors import CorruptImageError

__all__ = ["FORMATS", "MEDIA_TYPES", "read_image", "to_png"]

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
"""Pillow formats accepted (an upload is never probed against Pillow's other decoders)."""
MEDIA_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/bmp",
        "image/webp",
        "image/tiff",
        "image/x-portable-pixmap",
        "image/x-portable-anymap",
        "image/x-portable-graymap",
        "image/x-portable-bitmap",
    }
)


def _check_header(body: bytes, max_pixels: int) -> None:
    """Open the image lazily (the header only) and check its format and pixel count."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about, then refuses, images past its own limit; both are bombs here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body), formats=FORMATS) as image:
                width, height = image.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ApiError(
            413, f"the image declares too many pixels; the limit is {max_pixels:,}"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ApiError(
            400, f"cannot decode the image ({exc}); send a PNG, JPEG, GIF, BMP, WebP or TIFF"
        ) from None
    if width * height > max_pixels:
        raise ApiError(
            413,
            f"the image has {width} x {height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,}: send a smaller image",
        )


def read_image(
    body: bytes,
    content_type: str | None,
    *,
    size: int,
    channels: Channels,
    invert_values: bool,
    max_pixels: int,
) -> NDArray[np.uint8]:
    """Return the ``(channels, size, size)`` uint8 array the learner sees for an upload.

    Raises:
        ApiError: 415 for a media type that is not an image format we read, 413 for too
            many pixels, 400 for bytes that do not decode.
    """
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise ApiError(
            415,
            f"Content-Type {media_type or 'missing'!r} is not an image type we read; send "
            "image/png, image/jpeg, image/gif, image/bmp, image/webp or image/tiff",
        )
    if not body:
        raise ApiError(400, "the request body is empty; send the image's bytes")
    _check_header(body, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return decode_image(
                body, (size, size), channels=channels, invert_values=invert_values, name="upload"
            )
    except (CorruptImageError, Image.DecompressionBombWarning) as exc:
        raise ApiError(400, str(exc).replace("; replace or delete the file", "")) from None


def to_png(image: NDArray[np.uint8], *, invert_values: bool) -> bytes:
    """Encode a preprocessed ``(channels, h, w)`` array as PNG, as drawn (undoing the invert)."""
    array = invert(image) if invert_values else image
    pixels = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()
