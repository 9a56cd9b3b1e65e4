"""Remake ``docs/looks.png``: the same products in every look of lesson 16 (issue 27 §2).

The first product of each category in the test split (64 px, seed 0), shown 2x, in two blocks of four rows;
columns: photo, sketch, poster, watercolour (``prodgen.catalog.looks``), each rendered from the product's one
part map and pose, so a row is one product. Pure Pillow, about 1 s:

    python docs/make_looks_figure.py [--out docs/looks.png]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodgen import paths  # noqa: E402
from prodgen.catalog.attributes import values_of  # noqa: E402
from prodgen.catalog.dataset import render_catalog  # noqa: E402
from prodgen.catalog.looks import LOOKS  # noqa: E402

ZOOM, SIZE, ROWS, GAP, BLOCK_GAP, BAND, FIRST = 2, 64, 4, 4, 16, 14, 60


def figure() -> Image.Image:
    """Two blocks side by side, each one row per product and one column per look, a header naming the looks."""
    labels = render_catalog("test", FIRST, SIZE, 0, workers=1)["labels"][:, 0]
    rows = [int(np.flatnonzero(labels == k)[0]) for k in range(len(values_of("category")))]
    looks = {look: render_catalog("test", FIRST, SIZE, 0, workers=1, look=look)["images"][rows] for look in LOOKS}
    side, blocks = SIZE * ZOOM, -(-len(rows) // ROWS)
    block_w = len(LOOKS) * (side + GAP) - GAP
    canvas = Image.new("RGB", (blocks * (block_w + BLOCK_GAP) - BLOCK_GAP, BAND + ROWS * (side + GAP) - GAP),
                       (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for i in range(len(rows)):
        b, r = divmod(i, ROWS)
        for c, look in enumerate(LOOKS):
            x = b * (block_w + BLOCK_GAP) + c * (side + GAP)
            if r == 0:
                d.text((x + 4, 1), look, fill=(0, 0, 0))
            tile = looks[look][i].transpose(1, 2, 0).repeat(ZOOM, 0).repeat(ZOOM, 1)
            canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (x, BAND + r * (side + GAP)))
    return canvas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "looks.png"))
    args = parser.parse_args()
    with paths.atomic_file(args.out) as tmp:
        figure().save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
