"""Drawn symbols for the `metalearn serve` tests."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def draw_symbol(shape: str, shift: int = 0, size: int = 105) -> bytes:
    """Return a PNG of a black symbol on white (as Omniglot draws), ``shift`` pixels off centre."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    a, b = 25 + shift, 80 + shift
    if shape == "circle":
        draw.ellipse((a, a, b, b), outline=0, width=5)
    elif shape == "bar":
        draw.line((52 + shift, 15, 52 + shift, 90), fill=0, width=5)
    else:
        draw.line((a, a, b, b), fill=0, width=5)
        draw.line((a, b, b, a), fill=0, width=5)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
