"""Remake ``docs/tryon-baseline.png``: the cut-and-paste try-on baseline against the rendered truth (issue 26 §2).

Two cases per slot (top, cap, shoes, bag, table), the first of each slot among the benchmark's held-back pairs
(``prodgen.evaluation.tryon.tryon_pairs``: test scenes, test-split 64 px catalog photos). Each case is four
tiles, shown 2x: the scene | the product photo | the baseline (``CutPaste``, default ``clear=fill``) | the truth
(the scene rendered wearing that product). About 5 s:

    PYTHONPATH=$PWD python docs/make_tryon_figure.py [--out docs/tryon-baseline.png]
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

ZOOM, BAND, GAP = 2, 14, 8
SLOT_ORDER = ("top", "cap", "shoes", "bag", "table")


def _tile(image) -> np.ndarray:
    return np.asarray(image).transpose(1, 2, 0).repeat(ZOOM, 0).repeat(ZOOM, 1)


def figure(per_slot: int = 2, pairs_n: int = 60) -> Image.Image:
    """The figure: one row per slot, ``per_slot`` cases side by side, each scene | product | baseline | truth."""
    from prodgen.evaluation.tryon import tryon_pairs
    from prodgen.models.tryon import CutPaste

    pairs = tryon_pairs(pairs_n)
    picked = [[i for i, s in enumerate(pairs.slots) if s == slot][:per_slot] for slot in SLOT_ORDER]
    flat = [i for row in picked for i in row]
    outputs = CutPaste().try_on([pairs.scenes[i] for i in flat], [pairs.slots[i] for i in flat], pairs.photos[flat])
    made = dict(zip(flat, outputs))
    side = 64 * ZOOM
    case_w = 4 * side + GAP
    canvas = Image.new("RGB", (per_slot * case_w, BAND + len(SLOT_ORDER) * (side + BAND)), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for c in range(per_slot):
        for k, name in enumerate(("scene", "product", "cut-and-paste", "truth")):
            d.text((c * case_w + k * side + 4, 1), name, fill=(0, 0, 0))
    for r, (slot, row) in enumerate(zip(SLOT_ORDER, picked)):
        y = BAND + r * (side + BAND)
        for c, i in enumerate(row):
            p = pairs.products[i]
            d.text((c * case_w + 4, y + 1), f"{slot}: {p['size']} {p['color']} {p['pattern']} {p['category']} "
                                            f"by {p['brand']}", fill=(0, 0, 0))
            tiles = [_tile(pairs.scenes[i].image), _tile(pairs.photos[i]), _tile(made[i]), _tile(pairs.truths[i])]
            canvas.paste(Image.fromarray(np.concatenate(tiles, 1).astype(np.uint8)), (c * case_w, y + BAND - 1))
    return canvas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "tryon-baseline.png"))
    args = parser.parse_args()
    with paths.atomic_file(args.out) as tmp:
        figure().save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
