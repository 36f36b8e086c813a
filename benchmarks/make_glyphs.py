"""Printed glyphs of scripts that Omniglot lacks, as class folders: a cross-domain test set.

Each class is one character of a script absent from Omniglot's 50 alphabets (Thai, Lao,
Khmer, Cherokee, Tamil, ...), rendered from Debian's Noto fonts with several fonts and weights
per character and a random affine jitter (rotation, scale, shear, shift), black on white at
Omniglot's 105x105, written as ``OUT/<subset>/<script>-U+XXXX/NN.png``. Characters a font
lacks (the blank or "tofu" box it draws instead), marks too small to see and characters that
render like an earlier class are skipped. Nothing here is ever trained on; the images are
written, never committed.

Set-up (Debian/Ubuntu)::

    apt-get update && apt-get install -y fonts-noto-core fonts-noto-extra
    python benchmarks/make_glyphs.py glyphs/ --per-class 20
    metalearn evaluate runs/<run> --episode-folder ...   # or benchmarks/transfer.py

The same arguments give the same images (seeded), given the same font files.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/noto")
SIZE = 105

# script -> (code point ranges, font file prefixes); every script is absent from Omniglot.
SCRIPTS: dict[str, tuple[list[tuple[int, int]], list[str]]] = {
    "thai": ([(0x0E01, 0x0E2E)], ["NotoSansThai", "NotoSerifThai", "NotoLoopedThai"]),
    "lao": ([(0x0E81, 0x0EAE)], ["NotoSansLao", "NotoSerifLao", "NotoLoopedLao"]),
    "khmer": ([(0x1780, 0x17A2)], ["NotoSansKhmer", "NotoSerifKhmer"]),
    "cherokee": ([(0x13A0, 0x13F4)], ["NotoSansCherokee"]),
    "tamil": ([(0x0B85, 0x0BB9)], ["NotoSansTamil", "NotoSerifTamil"]),
    "telugu": ([(0x0C05, 0x0C39)], ["NotoSansTelugu", "NotoSerifTelugu"]),
    "sinhala": ([(0x0D85, 0x0DC6)], ["NotoSansSinhala", "NotoSerifSinhala"]),
    "thaana": ([(0x0780, 0x07A5)], ["NotoSansThaana"]),
    "ol-chiki": ([(0x1C5A, 0x1C77)], ["NotoSansOlChiki"]),
    "vai": ([(0xA500, 0xA560)], ["NotoSansVai"]),
    "adlam": ([(0x1E900, 0x1E943)], ["NotoSansAdlam"]),
    "coptic": ([(0x2C80, 0x2CB1)], ["NotoSansCoptic"]),
}
"""Not Canadian syllabics (Omniglot's Blackfoot, Inuktitut and Ojibwe), nor Ethiopic (Ge'ez),
Georgian, Armenian, Tibetan, Mongolian, N'Ko, Tifinagh, Bengali, Gujarati, Gurmukhi, Kannada,
Malayalam, Oriya or Myanmar, which are Omniglot alphabets."""


def find_fonts(prefixes: list[str]) -> list[Path]:
    """Return the installed font files of these families (every weight), sorted."""
    files: list[Path] = []
    for prefix in prefixes:
        files += sorted(FONT_DIR.rglob(f"{prefix}-*.[ot]tf"))
    # several weights, not all nine: thin strokes vanish at 28x28
    return [f for f in files if f.stem.rpartition("-")[2] in ("Regular", "Bold", "Medium", "Light")]


def render(char: str, font: ImageFont.FreeTypeFont) -> np.ndarray | None:
    """Return the glyph's ink (True) cropped to its box, or ``None`` if it draws nothing."""
    canvas = Image.new("L", (3 * SIZE, 3 * SIZE), 255)
    ImageDraw.Draw(canvas).text((SIZE, SIZE), char, font=font, fill=0)
    ink = np.asarray(canvas) < 128
    if not ink.any():
        return None
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def is_real(char: str, font: ImageFont.FreeTypeFont, tofu: np.ndarray | None) -> bool:
    """Whether ``font`` draws ``char`` as a visible glyph other than its missing-glyph box."""
    ink = render(char, font)
    if ink is None or min(ink.shape) < 8 or ink.sum() < 40:  # marks and dots: too small
        return False
    return tofu is None or ink.shape != tofu.shape or not np.array_equal(ink, tofu)


def jittered(char: str, font: ImageFont.FreeTypeFont, rng: random.Random) -> Image.Image:
    """The glyph centred on a 105x105 page, then randomly rotated, scaled, sheared, shifted."""
    ink = render(char, font)
    assert ink is not None  # checked by is_real
    glyph = Image.fromarray(np.where(ink, 0, 255).astype(np.uint8))
    scale = 60 / max(ink.shape) * rng.uniform(0.85, 1.15)
    glyph = glyph.resize(
        (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
        Image.Resampling.LANCZOS,
    )
    page = Image.new("L", (SIZE, SIZE), 255)
    page.paste(glyph, ((SIZE - glyph.width) // 2, (SIZE - glyph.height) // 2))
    shear, dx, dy = rng.uniform(-0.15, 0.15), rng.uniform(-6, 6), rng.uniform(-6, 6)
    page = page.transform(
        page.size,
        Image.Transform.AFFINE,
        (1, shear, -shear * SIZE / 2 + dx, 0, 1, dy),
        resample=Image.Resampling.BILINEAR,
        fillcolor=255,
    )
    return page.rotate(rng.uniform(-12, 12), Image.Resampling.BILINEAR, fillcolor=255)


def make_glyphs(out: Path, per_class: int, subset: str, seed: int, max_per_script: int) -> int:
    """Write every script's classes under ``out/subset``; return the number of classes."""
    rng = random.Random(seed)
    seen: list[np.ndarray] = []
    n_classes = 0
    for script, (ranges, prefixes) in SCRIPTS.items():
        fonts = [ImageFont.truetype(str(f), 72) for f in find_fonts(prefixes)]
        if not fonts:
            print(f"skipped {script}: no font {prefixes} under {FONT_DIR}", file=sys.stderr)
            continue
        tofus = [render("\U0010fffd", font) for font in fonts]
        written = 0
        for code in (c for lo, hi in ranges for c in range(lo, hi + 1)):
            char = chr(code)
            usable = [f for f, t in zip(fonts, tofus, strict=True) if is_real(char, f, t)]
            if not usable or written >= max_per_script:
                continue
            shape = np.asarray(jittered(char, usable[0], random.Random(0)).resize((28, 28))) < 128
            if any(np.array_equal(shape, other) for other in seen):
                continue  # renders like an earlier class
            seen.append(shape)
            folder = out / subset / f"{script}-U+{code:04X}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                jittered(char, usable[i % len(usable)], rng).save(folder / f"{i:02d}.png")
            written += 1
        print(f"{script}: {written} classes from {len(fonts)} font files")
        n_classes += written
    return n_classes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder (OUT/<subset>/<class>/NN.png)")
    parser.add_argument("--per-class", type=int, default=20, help="images per class (20)")
    parser.add_argument("--subset", default="test", help="sub-folder name (test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-per-script", type=int, default=40, help="classes per script")
    args = parser.parse_args(argv)
    if not FONT_DIR.is_dir():
        print(f"error: {FONT_DIR} not found: apt-get install fonts-noto-core", file=sys.stderr)
        return 1
    n = make_glyphs(args.out, args.per_class, args.subset, args.seed, args.max_per_script)
    print(f"wrote {n} classes of {args.per_class} images to {args.out / args.subset}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
