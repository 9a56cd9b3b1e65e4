"""Remake ``docs/restyle.png``: Gatys-style restyling of test photos into each look (lesson 16, issue 27 §2).

The first ``--n`` products of the test split (32 px, shown 3x). Rows: the photo, then for each of sketch, poster
and watercolour the restyled photo at two strengths (``prodgen.apps.restyle.restyle``, matched exemplars, seed 0,
the default steps) and the product rendered in that look by the catalog (the ground truth). About 20 s on one
thread:

    OMP_NUM_THREADS=1 python docs/make_restyle_figure.py [--n 6] [--strengths 3,30] [--out docs/restyle.png]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodgen import paths  # noqa: E402
from prodgen.apps.restyle import restyle  # noqa: E402
from prodgen.catalog.dataset import load_catalog  # noqa: E402

ZOOM, GAP, LABEL_W = 3, 3, 150
TARGETS = ("sketch", "poster", "watercolour")


def rows(n: int, strengths: list[float]) -> list[tuple[str, torch.Tensor]]:
    """(label, uint8 n x 3 x 32 x 32) per row of the figure."""
    photos = load_catalog("test", n, 32, progress=False).images
    out = [("photo (source)", photos)]
    for look in TARGETS:
        out += [(f"{look}, strength {w:g}", restyle(photos, look, strength=w)) for w in strengths]
        out.append((f"{look}, rendered truth", load_catalog("test", n, 32, look=look, progress=False).images))
    return out


def figure(n: int, strengths: list[float]) -> Image.Image:
    """One row per entry of :func:`rows`, a label on the left."""
    table = rows(n, strengths)
    side = 32 * ZOOM
    canvas = Image.new("RGB", (LABEL_W + n * (side + GAP), len(table) * (side + GAP)), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(table):
        y = r * (side + GAP)
        d.text((4, y + side // 2 - 6), label, fill=(0, 0, 0))
        for i, image in enumerate(images):
            tile = image.permute(1, 2, 0).numpy().repeat(ZOOM, 0).repeat(ZOOM, 1)
            canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (LABEL_W + i * (side + GAP), y))
    return canvas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--strengths", default="3,30")
    parser.add_argument("--out", default=str(ROOT / "docs" / "restyle.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = figure(args.n, [float(s) for s in args.strengths.split(",")])
    with paths.atomic_file(args.out) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
