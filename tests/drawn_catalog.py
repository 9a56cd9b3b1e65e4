"""A catalog folder drawn with plain Pillow, outside prodgen's renderer: the "your own catalog" of the tests.

Two attributes with five values each: ``shape`` (circle, square, triangle, star, cross) and ``colour`` (red,
yellow, green, blue, purple). Every (shape, colour) pair occurs equally often (to within one), in a seeded
random order, and each image is jittered so that reading it is a real learning task: position, size and
rotation of the shape, the shade of its colour, a tinted light background and a little pixel noise. Written as
``00000.png ...`` plus ``metadata.csv`` (``file, shape, colour, description_en``). The same seed gives the same
bytes. Nothing here imports ``prodgen``.

Used by tests/test_own_folder.py and the issue-13 benchmark: ``python tests/drawn_catalog.py OUT --n 6000``.
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = {
    "red": (215, 40, 40),
    "yellow": (235, 190, 20),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "purple": (145, 55, 185),
}
SUPERSAMPLE = 4  # shapes are drawn at 4x and reduced: smooth edges at any size


def _outline(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """The polygon of ``shape`` (not a circle) with circumradius ``r``, rotated by ``angle`` radians."""
    if shape == "square":
        pts = [(math.cos(t), math.sin(t)) for t in np.arange(4) * math.pi / 2 + math.pi / 4]
    elif shape == "triangle":
        pts = [(math.cos(t), math.sin(t)) for t in np.arange(3) * 2 * math.pi / 3 - math.pi / 2]
    elif shape == "star":
        pts = [((1.0 if k % 2 == 0 else 0.42) * math.cos(t), (1.0 if k % 2 == 0 else 0.42) * math.sin(t))
               for k, t in enumerate(np.arange(10) * math.pi / 5 - math.pi / 2)]
    elif shape == "cross":
        a, b = 0.32, 1.0  # arm half-width, arm length (both relative to r)
        pts = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
               (-a, -a)]
    else:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def draw_product(shape: str, colour: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One jittered ``size x size x 3`` uint8 image of ``shape`` in ``colour``."""
    big = size * SUPERSAMPLE
    background = np.clip(np.array([242, 240, 236]) + rng.integers(-14, 10, 3), 0, 255)
    im = Image.new("RGB", (big, big), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(im)
    r = big * rng.uniform(0.24, 0.36)  # circumradius: the shape spans about half to three quarters
    cx, cy = big / 2 + rng.uniform(-0.12, 0.12) * big, big / 2 + rng.uniform(-0.12, 0.12) * big
    fill = tuple(int(v) for v in np.clip(np.array(COLOURS[colour]) + rng.integers(-18, 19, 3), 0, 255))
    angle = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        rc = r * 0.85  # same area impression as the polygons
        draw.ellipse((cx - rc, cy - rc, cx + rc, cy + rc), fill=fill)
    else:
        draw.polygon(_outline(shape, cx, cy, r, angle), fill=fill)
    pixels = np.asarray(im.reduce(SUPERSAMPLE), dtype=np.int16)
    noise = rng.integers(-6, 7, pixels.shape, dtype=np.int16)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def draw_catalog(folder, n: int = 6000, seed: int = 0, size: int = 32, shapes=SHAPES, colours=tuple(COLOURS)) -> Path:
    """Write ``n`` drawn products (PNGs plus ``metadata.csv``) into ``folder`` (created; must be new or empty).

    Pair ``i % P`` of the P (shape, colour) pairs (25 by default; ``shapes`` and ``colours`` pick fewer), in an
    order shuffled by ``seed``: balanced to within one.
    """
    folder = Path(folder)
    if n < 1 or size < 8:
        raise ValueError(f"need n >= 1 and size >= 8, got n={n}, size={size}")
    unknown = [v for v in shapes if v not in SHAPES] + [v for v in colours if v not in COLOURS]
    if unknown or len(shapes) < 2 or len(colours) < 2:
        raise ValueError(f"pick 2+ shapes of {SHAPES} and 2+ colours of {tuple(COLOURS)}; got {shapes}, {colours}")
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty")
    rng = np.random.default_rng(seed)
    pairs = [(s, c) for s in shapes for c in colours]
    order = rng.permutation(np.arange(n) % len(pairs))
    rows = [("file", "shape", "colour", "description_en")]
    for i, k in enumerate(order):
        shape, colour = pairs[k]
        name = f"{i:05d}.png"
        Image.fromarray(draw_product(shape, colour, rng, size)).save(folder / name, compress_level=1)
        rows.append((name, shape, colour, f"a {colour} {shape}"))
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return folder


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="draw a 2-attribute catalog folder with plain Pillow")
    parser.add_argument("out", help="new or empty folder")
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    start = time.perf_counter()
    draw_catalog(args.out, args.n, args.seed, args.size)
    print(f"drew {args.n} products ({args.size} px) into {args.out} in {time.perf_counter() - start:.1f} s")
