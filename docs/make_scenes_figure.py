"""Remake ``docs/scenes.png``: lesson 15's scenes, their slot masks, and swaps (issue 26 §1).

Row 1: eight scenes (seeds 0-7 of the test split), shown 2x. Row 2: the same scenes with each slot's mask
outlined (top red, cap yellow, shoes cyan, bag magenta, table green). Row 3: swaps: before, the slot's mask,
after, and the pixels that changed (white), which all lie inside the mask. Pure Pillow, about 2 s:

    python docs/make_scenes_figure.py [--out docs/scenes.png]
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
from prodgen.catalog.scenes import scene_at, swap  # noqa: E402

ZOOM = 2
OUTLINE = {"top": (230, 30, 30), "cap": (250, 210, 0), "shoes": (0, 200, 230), "bag": (230, 0, 200),
           "table": (0, 200, 60)}
SWAPS = (  # (test scene, slot, the product put there)
    (0, "top", {"category": "t-shirt", "color": "blue", "size": "large", "brand": "zenith", "pattern": "checked"}),
    (3, "bag", {"category": "backpack", "color": "yellow", "size": "large", "brand": "nova", "pattern": "striped"}),
)


def _big(a: np.ndarray) -> np.ndarray:
    return a.repeat(ZOOM, 0).repeat(ZOOM, 1)


def _rgb(image: np.ndarray) -> np.ndarray:
    return _big(image.transpose(1, 2, 0))


def _outlined(scene) -> np.ndarray:
    out = _rgb(scene.image).copy()
    for slot, mask in scene.masks.items():
        m = _big(mask)
        inner = m.copy()
        inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
        out[m & ~inner] = OUTLINE[slot]
    return out


def figure() -> Image.Image:
    scenes = [scene_at("test", 0, i) for i in range(8)]
    rows = [np.concatenate([_rgb(s.image) for s in scenes], 1), np.concatenate([_outlined(s) for s in scenes], 1)]
    tiles = []
    for index, slot, product in SWAPS:
        before = scenes[index]
        after = swap(before, slot, product)
        changed = (after.image != before.image).any(0)
        assert not (changed & ~before.masks[slot]).any()
        mask = np.repeat(_big(before.masks[slot])[..., None] * 255, 3, 2).astype(np.uint8)
        tiles += [_rgb(before.image), mask, _rgb(after.image), np.repeat(_big(changed)[..., None] * 255, 3, 2)]
    rows.append(np.concatenate(tiles, 1).astype(np.uint8))
    grid = np.concatenate(rows, 0)
    band = 14
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + 3 * band), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    side = 64 * ZOOM
    labels = ["scenes (test split, seeds 0-7)", "slot masks: top red, cap yellow, shoes cyan, bag magenta, table green",
              "swap: before | mask | after | changed pixels  "
              "(top: blue checked Zenith tee; bag: yellow striped backpack)"]
    for r, (row, text) in enumerate(zip(rows, labels)):
        y = r * (side + band)
        d.text((4, y + 1), text, fill=(0, 0, 0))
        canvas.paste(Image.fromarray(row), (0, y + band))
    return canvas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "scenes.png"))
    args = parser.parse_args()
    with paths.atomic_file(args.out) as tmp:
        figure().save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
