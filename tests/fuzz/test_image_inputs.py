"""Input fuzz over image files: every bad file ends in one ``error:`` line naming it, or a result.

A seeded generator makes the files: random bytes, empty files, valid images of odd modes
(16-bit, CMYK, LA, palette with transparency, 1-bit, float), the same truncated or with flipped
bytes, and headers claiming huge sizes (decompression bombs, past Pillow's pixel limit: its
warning must not escape as a warning or a traceback). Each file goes through the commands that
read user images: ``config`` (reads the class folders' headers for ``data.channels``),
``evaluate`` on a class-folder dataset, ``adapt`` (a support folder) and ``predict``. None may
raise, hang or change a file it reads or the run folder (issue 11, item 3).
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metalearn.cli.main import main

SEED = 11
OK, ERROR, EITHER = "ok", "error", "either"


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise(mode: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """An image of ``mode`` with random content (its colour modes made by conversion)."""
    pixels = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (size[1], size[0], 3))
    image = Image.fromarray(pixels.astype(np.uint8))
    if mode == "I;16":
        wide = np.random.default_rng(rng.randrange(2**32)).integers(0, 65536, (size[1], size[0]))
        return Image.fromarray(wide.astype(np.uint16))
    if mode == "F":
        return Image.fromarray(pixels[..., 0].astype(np.float32) / 7.0)
    if mode == "P":
        return image.quantize(8)
    return image.convert(mode)


def valid_images(rng: random.Random) -> Iterator[tuple[str, str, bytes]]:
    """``(name, suffix, bytes)`` of valid files in many formats and modes."""
    size = (rng.randint(3, 40), rng.randint(3, 40))
    for fmt, suffix, mode in [
        ("PNG", ".png", "L"),
        ("PNG", ".png", "RGB"),
        ("PNG", ".png", "RGBA"),
        ("PNG", ".png", "LA"),
        ("PNG", ".png", "1"),
        ("PNG", ".png", "I;16"),
        ("JPEG", ".jpg", "RGB"),
        ("JPEG", ".jpg", "CMYK"),
        ("GIF", ".gif", "P"),
        ("TIFF", ".tif", "CMYK"),
        ("TIFF", ".tif", "F"),
        ("BMP", ".bmp", "RGB"),
        ("WEBP", ".webp", "RGBA"),
    ]:
        yield f"{mode}-{fmt}", suffix, encode(noise(mode, size, rng), fmt)
    yield "P-transparency", ".png", encode(noise("P", size, rng), "PNG", transparency=0)
    alpha = bytes(rng.randrange(256) for _ in range(8))
    yield "P-alpha-bytes", ".png", encode(noise("P", size, rng), "PNG", transparency=alpha)


def png_header(width: int, height: int) -> bytes:
    """A PNG of only a valid IHDR (8-bit grey) of the given size, and IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def gif_header(width: int, height: int) -> bytes:
    """A GIF whose screen and only image claim the given size, with no pixel data."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    return screen + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x00\x3b"


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF0) claiming another size."""
    at = jpeg.index(b"\xff\xc0") + 5
    return jpeg[:at] + struct.pack(">HH", height, width) + jpeg[at + 4 :]


def cases(seed: int) -> Iterator[tuple[str, str, bytes, str]]:
    """``(name, suffix, bytes, expected)`` for every fuzz case; ``expected`` is OK/ERROR/EITHER."""
    rng = random.Random(seed)
    valid = list(valid_images(rng))
    for name, suffix, data in valid:
        yield name, suffix, data, OK
        cut = rng.randrange(1, len(data))
        yield f"{name}-truncated-{cut}", suffix, data[:cut], EITHER
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        yield f"{name}-flipped", suffix, bytes(flipped), EITHER
    for i, suffix in enumerate([".png", ".jpg", ".gif", ".bmp", ".tif"]):
        yield f"random-{i}", suffix, rng.randbytes(rng.randint(1, 3000)), ERROR
    yield "empty", ".png", b"", ERROR
    yield "png-bomb-error", ".png", png_header(100_000, 100_000), ERROR
    yield "png-bomb-warning", ".png", png_header(9_500, 9_500), ERROR  # 1-2x Pillow's limit
    yield "png-zero-width", ".png", png_header(0, 10), ERROR
    yield "gif-bomb", ".gif", gif_header(65_535, 65_535), ERROR
    jpeg = encode(noise("RGB", (16, 16), rng), "JPEG")
    yield "jpeg-bomb", ".jpg", jpeg_with_size(jpeg, 60_000, 60_000), ERROR
    yield "huge-but-allowed", ".png", encode(Image.new("L", (6_000, 6_000), 90), "PNG"), OK


def snapshot(*roots: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``roots``: size, modification time and content digest."""
    return {
        str(path): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha1(path.read_bytes()).hexdigest(),
        )
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def write_image(path: Path, value: int) -> None:
    # Grey, so that choosing data.channels reads the header of every file, the fuzzed one too.
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (12, 12), value).save(path)


def dataset(root: Path) -> Path:
    for split, first in (("train", 0), ("val", 4), ("test", 8)):
        for label in range(first, first + 3):
            for i in range(3):
                write_image(root / split / f"c{label}" / f"{i}.png", 20 * label + i)
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A trained 2-way ProtoNet run on class folders and a personal model from it."""
    root = tmp_path_factory.mktemp("fuzz")
    data = dataset(root / "clean")
    args = ["train", "--preset=protonet-omniglot-5w1s", "--data.dataset=folder"]
    args += [f"--data.root={data}", "--data.image_size=16", "--data.n_way=2", "--data.n_query=2"]
    args += ["--eval.n_way=2", "--eval.n_query=2", "--train.steps=1", "--eval.val_episodes=0"]
    args += ["--model.hidden=8", "--train.progress=false", "--no-test", f"--run-dir={root / 'run'}"]
    assert main(args) == 0
    personal = ["adapt", str(root / "run"), str(data / "test"), "-o", str(root / "me.pt")]
    assert main(personal) == 0
    return root


def commands(root: Path, case_dir: Path, file: Path, out: Path) -> dict[str, list[str]]:
    """The command lines that read ``file`` (placed in ``case_dir``'s class folders)."""
    folder = ["--preset=protonet-omniglot-5w1s", "--data.dataset=folder", f"--data.root={case_dir}"]
    return {
        "config": ["config", *folder],
        "evaluate": [
            "evaluate",
            str(root / "run"),
            "--episodes=2",
            f"--data.root={case_dir}",
            f"--out={out / 'test.json'}",
        ],
        "adapt": ["adapt", str(root / "run"), str(case_dir / "test"), "-o", str(out / "p.pt")],
        "predict": ["predict", str(root / "me.pt"), str(file)],
    }


def run_case(run: Callable[[list[str]], tuple[int, str, str]], argv: list[str], file: Path) -> str:
    """Run one command; return OK or ERROR, failing on anything else."""
    start = time.perf_counter()
    code, out, err = run(argv)
    assert time.perf_counter() - start < 15, f"{argv[0]} took too long on {file.name}"
    assert "Traceback" not in out + err
    if code == 0:
        return OK
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1, (argv[0], file.name, err)
    assert len(errors) == 1, err
    assert errors[0].count("\n") == 0
    assert file.name in errors[0], (argv[0], errors[0])
    return ERROR


def test_bad_image_files_end_in_one_error_line_naming_them_or_a_result(workspace, capsys):
    def run(argv: list[str]) -> tuple[int, str, str]:
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    outcomes = {OK: 0, ERROR: 0}
    for n, (name, suffix, data, expected) in enumerate(cases(SEED)):
        case_dir = dataset(workspace / f"case{n}")
        file = case_dir / "test" / "c9" / f"fuzz-{name}{suffix}"
        file.write_bytes(data)
        out = workspace / f"out{n}"
        out.mkdir()
        before = snapshot(case_dir, workspace / "run", workspace / "me.pt")
        results = {}
        for command, argv in commands(workspace, case_dir, file, out).items():
            results[command] = run_case(run, argv, file)
            written = {p.name for p in out.iterdir()}
            assert results[command] == OK or not written, (command, name, written)
        assert snapshot(case_dir, workspace / "run", workspace / "me.pt") == before, name
        # Reading the file succeeds or fails alike everywhere (config reads only the header).
        decoded = {results[c] for c in ("evaluate", "adapt", "predict")}
        assert len(decoded) == 1, (name, results)
        if expected != EITHER:
            assert decoded == {expected}, (name, results)
            assert results["config"] == expected or expected == OK, (name, results)
        outcomes[decoded.pop()] += 1
    assert outcomes[OK] >= 15  # the valid files, and damaged ones Pillow still reads
    assert outcomes[ERROR] >= 15
