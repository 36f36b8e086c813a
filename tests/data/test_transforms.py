import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from metalearn.data.transforms import (
    decode_image,
    image_channels_of,
    invert,
    normalize_size,
    resize,
    rot90,
    rot90_index,
    to_float,
)
from metalearn.errors import CorruptImageError


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_normalize_size_accepts_an_int_or_a_pair():
    assert normalize_size(28) == (28, 28)
    assert normalize_size((14, 21)) == (14, 21)
    with pytest.raises(ValueError, match="positive int"):
        normalize_size((0, 3))


def test_invert_maps_0_to_255_and_back():
    np.testing.assert_array_equal(invert(np.array([0, 55, 255], dtype=np.uint8)), [255, 200, 0])


def test_resize_averages_when_shrinking_and_keeps_the_size_order_height_width():
    checker = np.indices((8, 8)).sum(0) % 2 * 255
    out = np.asarray(resize(Image.fromarray(checker.astype(np.uint8)), (2, 4)))
    assert out.shape == (2, 4)
    # An antialiased shrink of a fine checkerboard is mid-grey, not a sample of it.
    assert np.all(np.abs(out.astype(int) - 128) <= 20)


def test_decode_image_converts_colour_modes_to_channels_first_uint8():
    rgb = Image.new("RGB", (5, 3), (255, 0, 0))
    grey = decode_image(encode(rgb), (3, 5), channels=1)
    colour = decode_image(encode(rgb), (3, 5), channels=3)
    assert grey.shape == (1, 3, 5)
    assert colour.shape == (3, 3, 5)
    assert grey.dtype == np.uint8
    np.testing.assert_array_equal(colour[:, 0, 0], [255, 0, 0])
    assert grey[0, 0, 0] == 76  # ITU-R 601-2 luma of pure red: 0.299 * 255


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert decode_image(encode(rgba), (2, 2))[0, 0, 0] == 255


def test_one_bit_strokes_are_inverted_to_255():
    page = Image.new("1", (4, 4), 1)
    page.putpixel((1, 2), 0)
    out = decode_image(encode(page), (4, 4), invert_values=True)
    assert out[0, 2, 1] == 255
    assert out.sum() == 255


def test_a_corrupt_image_is_named():
    with pytest.raises(CorruptImageError, match=r"'cat/001\.png'"):
        decode_image(b"\x89PNG garbage", (4, 4), name="cat/001.png")
    truncated = encode(Image.new("L", (64, 64), 3), "PNG")[:60]
    with pytest.raises(CorruptImageError, match="replace or delete"):
        decode_image(truncated, (4, 4), name="x")


def png_of_size(width: int, height: int) -> bytes:
    """A PNG holding only an IHDR of the given size (no pixels)."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"


@pytest.mark.parametrize("side", [9_500, 100_000])  # Pillow warns up to twice its limit
def test_a_decompression_bomb_is_a_corrupt_image_named_in_one_line(tmp_path, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_of_size(side, side))
    for read in (lambda: decode_image(path, (4, 4)), lambda: image_channels_of(path)):
        with pytest.raises(CorruptImageError, match=r"bomb\.png.*exceeds limit") as info:
            read()
        assert "\n" not in str(info.value)


def test_16_bit_grey_keeps_its_high_byte():
    # Pillow's own conversion clips at 255: the image would be nearly white.
    wide = np.array([[0, 40_000], [65_535, 255]], dtype=np.uint16)
    assert decode_image(encode(Image.fromarray(wide)), (2, 2))[0].tolist() == [[0, 156], [255, 0]]


@pytest.mark.parametrize(
    ("image", "channels"),
    [
        (Image.new("L", (3, 3)), 1),
        (Image.new("1", (3, 3)), 1),
        (Image.fromarray(np.zeros((3, 3), dtype=np.uint16)), 1),
        (Image.new("RGB", (3, 3), (9, 9, 9)), 3),  # RGB files are colour files, even grey ones
        (Image.new("RGBA", (3, 3)), 3),
        (Image.new("RGB", (3, 3), (200, 0, 0)).quantize(4), 3),
        (Image.new("L", (3, 3), 80).convert("P"), 1),  # a palette of greys
    ],
)
def test_image_channels_of_reads_the_mode_from_the_header(tmp_path, image, channels):
    path = tmp_path / "x.png"
    image.save(path)
    assert image_channels_of(path) == channels


def test_to_float_scales_uint8_and_casts_floats():
    torch.testing.assert_close(
        to_float(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([0.0, 1.0])
    )
    assert to_float(torch.tensor([2.5], dtype=torch.float64)).dtype == torch.float32


def test_rot90_index_permutes_pixels_like_rot90():
    image = torch.arange(9).view(3, 3)
    table = rot90_index(3)
    for k in range(4):
        torch.testing.assert_close(image.flatten()[table[k]], rot90(image, k).flatten())
    # A quarter turn counter-clockwise moves the top-right corner to the top-left.
    assert rot90(image, 1)[0, 0] == image[0, 2]
