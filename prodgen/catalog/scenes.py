"""Scenes with ground truth: a mannequin wearing catalog products, and a tabletop.

A scene is a *kind* (``mannequin`` or ``tabletop``), its nuisance parameters (pose, body
shape, skin, background, light: :func:`scene_parameters`) and the products that fill its
*slots* (``top``, ``cap``, ``shoes``, ``bag``; ``table``). Products are drawn with the
catalog's own shapes, logos and patterns (``render.py``), placed in the scene by one
transform per slot, and composited in layers, back to front, on a 3x supersampled canvas.

Every slot has a mask: the 64 px pixels that can change when the slot's product changes
(the union of every product of the slot's categories and sizes at that place, minus what
the slots in front of it cover). So :func:`swap` re-renders "this scene, wearing that
product" and leaves every pixel outside the slot's mask byte-identical (tested).

``Slot.shown`` lists what a slot shows: a t-shirt's size is its fit on the body and a bag's or a
tabletop product's size is its scale, but a cap and sneakers are drawn at one size (one head, one
pair of feet), so their size is kept in the labels yet not drawn. Scenes never hold a held-out
(category, color) pair of the catalog (``HELD_OUT_PAIRS``). Scene ``i`` of a split depends only on
``(split, seed, i)`` (:func:`scene_at`), so a cached data set can always be re-rendered and swapped.

Used by lesson 15 (virtual try-on) and its scene judge.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from prodgen import paths
from prodgen.catalog.attributes import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    BRAND_LOGOS,
    COLOR_RGB,
    HELD_OUT_PAIRS,
    validate_attributes,
    values_of,
)
from prodgen.catalog.render import BG, SHAPES, _logo, _Pen, colour_parts

__all__ = [
    "IMAGE_SIZE", "SLOTS", "SLOT_NAMES", "KINDS", "Slot", "Scene",
    "scene_parameters", "random_product", "render_scene", "make_scene", "swap",
    "SCENE_SPLITS", "SCENE_DEFAULT_N", "Scenes", "load_scenes", "render_scenes", "scene_at", "slot_crops",
    "slot_anchors",
]

IMAGE_SIZE = 64
SUPERSAMPLE = 3
CANVAS = IMAGE_SIZE * SUPERSAMPLE
ACCENT, LIGHT, DARK, METAL = 2, 3, 4, 5  # render.py's part ids (BG=0, BODY=1, ..., LOGO_INK=7)
SIZE_FACTOR = {"small": 0.84, "medium": 1.0, "large": 1.17}  # a product's size, relative to the slot


@dataclass(frozen=True)
class Slot:
    """A place in a scene for one product: which categories fit, which attributes the scene shows.

    ``period`` is the fabric pattern's period in frame units (a physical scale shared by every
    product of the slot); ``logo`` enlarges the brand mark so that it reads at 64 px.
    """

    name: str
    categories: tuple[str, ...]
    shown: tuple[str, ...]
    period: float
    logo: float = 1.0


SLOTS: dict[str, Slot] = {
    "top": Slot("top", ("t-shirt",), ("color", "size", "brand", "pattern"), 1 / 13, 1.15),
    "cap": Slot("cap", ("cap",), ("color", "brand", "pattern"), 1 / 18, 1.15),
    "shoes": Slot("shoes", ("sneaker",), ("color", "brand", "pattern"), 1 / 18, 1.3),
    "bag": Slot("bag", ("handbag", "backpack"), ATTRIBUTE_NAMES, 1 / 15, 1.0),
    "table": Slot("table", ("mug", "bottle", "lamp"), ATTRIBUTE_NAMES, 1 / 13, 1.1),
}
SLOT_NAMES: tuple[str, ...] = tuple(SLOTS)
# Each kind's slots, back to front (a later slot covers an earlier one).
KINDS: dict[str, tuple[str, ...]] = {"mannequin": ("top", "shoes", "cap", "bag"), "tabletop": ("table",)}

SKIN = ((236, 214, 190), (214, 170, 130), (170, 120, 84), (112, 76, 52), (200, 200, 205))  # last: grey mannequin
WALL = ((232, 230, 224), (214, 222, 230), (230, 218, 206), (206, 214, 204), (186, 186, 192))
FLOOR = ((150, 140, 128), (120, 122, 130), (176, 164, 146))
PANTS = ((60, 64, 80), (96, 90, 84), (150, 150, 156), (40, 40, 44))
TABLE = ((168, 124, 84), (120, 84, 56), (200, 196, 190), (92, 96, 104))
BODY_WIDTH = {"slim": 0.9, "regular": 1.0, "broad": 1.12}
POSES = ("bag-left", "bag-right", "stride-left", "stride-right")


# ------------------------------------------------------------------ parameters
def scene_parameters(rng: np.random.Generator, kind: str) -> dict:
    """Draw a scene's nuisance: pose, body shape, tones, position and light (no products)."""
    _check_kind(kind)
    p = {
        "kind": kind,
        "wall": int(rng.integers(len(WALL))),
        "brightness": float(rng.uniform(0.94, 1.06)),
        "dx": float(rng.uniform(-0.03, 0.03)),
        "dy": float(rng.uniform(-0.015, 0.015)),
    }
    if kind == "mannequin":
        p.update(pose=POSES[int(rng.integers(len(POSES)))], body=list(BODY_WIDTH)[int(rng.integers(3))],
                 skin=int(rng.integers(len(SKIN))), pants=int(rng.integers(len(PANTS))),
                 floor=int(rng.integers(len(FLOOR))), scale=float(rng.uniform(0.97, 1.03)),
                 cap_tilt=float(rng.uniform(-5, 5)), bag_swing=float(rng.uniform(-6, 6)))
    else:
        p.update(table=int(rng.integers(len(TABLE))), x=float(rng.uniform(0.42, 0.58)),
                 decor=int(rng.integers(3)), tilt=float(rng.uniform(-3, 3)))
    return p


def random_product(slot: str, rng: np.random.Generator) -> dict:
    """A random catalog product for ``slot`` (never a held-out (category, color) pair)."""
    cats = _check_slot(slot).categories
    while True:
        attrs = {a: v[rng.integers(len(v))].key for a, v in ATTRIBUTES.items() if a != "category"}
        attrs = {"category": cats[rng.integers(len(cats))], **attrs}
        if (attrs["category"], attrs["color"]) not in set(HELD_OUT_PAIRS):
            return attrs


# ------------------------------------------------------------------ geometry
class _ScenePen(_Pen):
    """render.py's pen with separate x and y scales (body shape, fit)."""

    def __init__(self, draw, res, cx, cy, sx, sy, angle):
        super().__init__(draw, res, cx, cy, (sx + sy) / 2, angle)
        self.sx, self.sy = sx, sy

    def _map(self, pts):
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        x, y = p[:, 0] * self.sx, p[:, 1] * self.sy
        fx = (self.cx + self.cos * x - self.sin * y) * self.res
        fy = (self.cy + self.sin * x + self.cos * y) * self.res
        return list(zip(fx.tolist(), fy.tolist()))


def _figure(p: dict) -> dict:
    """Anchor points of the mannequin in frame units (x right, y down)."""
    k, w = p["scale"], BODY_WIDTH[p["body"]]
    x0, y0 = 0.5 + p["dx"], p["dy"]
    stride = 0.03 if p["pose"].startswith("stride") else 0.0
    side = 1 if p["pose"].endswith("right") else -1
    return {"x0": x0, "k": k, "w": w, "side": side, "head": (x0, y0 + 0.135 * k), "head_r": 0.078 * k,
            "collar": y0 + 0.235 * k, "hip": y0 + 0.56 * k, "ankle": y0 + 0.86 * k,
            "feet": (x0 - (0.1 + stride) * k, x0 + (0.1 + stride) * k),
            "hand": (x0 + side * (0.2 * w + 0.02) * k, y0 + 0.56 * k)}


def _placements(p: dict, slot: str, category: str, size: str) -> list[tuple]:
    """Where a product goes: one ``(cx, cy, sx, sy, angle)`` per drawn copy (two shoes)."""
    f = SIZE_FACTOR[size]
    if p["kind"] == "tabletop":
        s = 0.36 * f * p.get("_k", 1.0)
        bottom = SHAPES[category][2]
        return [(p["x"], _table_y(p) - bottom * s, s, s, math.radians(p["tilt"]))]
    g = _figure(p)
    k = g["k"]
    if slot == "top":
        sx, sy = 0.34 * k * g["w"] * f, 0.34 * k * f
        return [(g["x0"], g["collar"] + 0.46 * sy, sx, sy, 0.0)]
    if slot == "cap":
        s = 0.28 * k
        hx, hy = g["head"]
        return [(hx + 0.06 * s, hy - 0.1 * g["head_r"] - 0.18 * s, s, s, math.radians(p["cap_tilt"]))]
    if slot == "shoes":
        s = 0.2 * k
        y = g["ankle"] + 0.08 * k - 0.3 * s
        return [(x, y, s, s, 0.0) for x in g["feet"]]
    if slot == "bag":
        s = 0.25 * k * f
        top = 0.43 if category == "handbag" else 0.46  # the handle's / the carry loop's top
        hx, hy = g["hand"]
        return [(hx + g["side"] * 0.02, hy - 0.01 + top * s, s, s, math.radians(p["bag_swing"]))]
    raise ValueError(f"slot {slot!r} does not belong to a {p['kind']} scene")


def slot_anchors(params: dict, slot: str, category: str | None = None, size: str = "medium") -> list[tuple]:
    """The slot's geometry, as a try-on reads it: one ``(cx, cy, sx, sy, angle)`` per drawn copy (two for the
    shoes) in frame units, where a product of ``category`` (default: the slot's first) and ``size`` goes: the
    place, the scale (body width and fit included) and the tilt, like the pose keypoints a try-on system is
    given (lesson 15)."""
    if not isinstance(params, dict) or params.get("kind") not in KINDS:
        raise ValueError("params must be a dict from scene_parameters(rng, kind)")
    cats = _check_slot(slot, params["kind"]).categories
    category = cats[0] if category is None else category
    if category not in cats or size not in SIZE_FACTOR:
        raise ValueError(f"slot {slot!r} holds {', '.join(cats)} of sizes {', '.join(SIZE_FACTOR)}; "
                         f"got a {size} {category}")
    return _placements(params, slot, category, size)


def _table_y(p: dict) -> float:
    return 0.8 + p["dy"]


def _draw_product(part_img: Image.Image, category: str, brands, slot: Slot, place: tuple) -> None:
    """Draw the product's parts and its brand mark(s) (enlarged by ``slot.logo``) into a part map."""
    cx, cy, sx, sy, angle = place
    pen = _ScenePen(ImageDraw.Draw(part_img), CANVAS, cx, cy, sx, sy, angle)
    draw_fn, (lx, ly, lr), _, _ = SHAPES[category]
    draw_fn(pen)
    for brand in brands:
        _logo(pen, BRAND_LOGOS[brand], lx, ly, 0.94 * lr * slot.logo)


def _region(p: dict, slot: str) -> np.ndarray:
    """Canvas pixels any product of the slot (every category and size) can cover."""
    img = Image.new("L", (CANVAS, CANVAS), 0)
    for cat in SLOTS[slot].categories:
        for size in SIZE_FACTOR:
            for place in _placements(p, slot, cat, size):
                _draw_product(img, cat, BRAND_LOGOS, SLOTS[slot], place)  # every brand's mark: their union
    return np.asarray(img) > 0


# ------------------------------------------------------------------ colour
_GRID = None


def _grid():
    global _GRID
    if _GRID is None:
        c = (np.arange(CANVAS, dtype=np.float32) + 0.5) / CANVAS
        _GRID = np.meshgrid(c, c)  # X (columns), Y (rows) in frame units
    return _GRID


def _pattern(pattern: str, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Print amount 0..1 at pattern coordinates ``a, b`` (in periods), as in the catalog; None = plain."""
    if pattern == "plain":
        return None
    fa, fb = a - np.floor(a), b - np.floor(b)
    if pattern == "striped":
        return (fb < 0.5).astype(np.float32)
    if pattern == "dotted":
        return ((fa - 0.5) ** 2 + (fb - 0.5) ** 2 < 0.27**2).astype(np.float32)
    return 0.55 * (fa < 0.5) + 0.45 * (fb < 0.5)  # checked (gingham)


def _product_layer(attrs: dict, slot: Slot, place: tuple) -> tuple[np.ndarray, tuple, np.ndarray]:
    """One drawn product: its canvas coverage, the bounding box and the RGB of its covered pixels."""
    parts = Image.new("L", (CANVAS, CANVAS), BG)
    _draw_product(parts, attrs["category"], (attrs["brand"],), slot, place)
    full = np.asarray(parts)
    cover = full != BG
    rows, cols = np.flatnonzero(cover.any(1)), np.flatnonzero(cover.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    part, inside = full[box], cover[box]
    cx, cy, sx, sy, angle = place
    X, Y = _grid()
    dx, dy = X[box] - cx, Y[box] - cy
    cos, sin = math.cos(angle), math.sin(angle)
    fu, fv = cos * dx + sin * dy, -sin * dx + cos * dy
    u, v = fu / sx, fv / sy

    base = np.array(COLOR_RGB[attrs["color"]], np.float32)
    img = colour_parts(part, base, _pattern(attrs["pattern"], fu / slot.period, fv / slot.period))
    shade = 0.96 - 0.128 * u - 0.192 * v
    if SHAPES[attrs["category"]][3]:  # cylinders: a vertical highlight
        shade = shade + 0.22 * np.exp(-(((u + 0.16) / 0.06) ** 2)) - 0.12 * (2 * u) ** 2
    core = np.asarray(Image.fromarray(inside.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3))) > 0
    shade = np.where(inside & ~core, shade * 0.72, shade)
    img *= shade[..., None]
    return cover, box, img[inside]


def _base(p: dict) -> np.ndarray:
    """The scene without its products: background, mannequin or table, fixed shadows (canvas RGB)."""
    X, Y = _grid()
    wall = np.array(WALL[p["wall"]], np.float32)
    img = wall * (1.03 - 0.08 * Y)[..., None]
    layer = Image.new("L", (CANVAS, CANVAS), 0)  # 1 skin, 2 pants/legs, 3 floor, 4 table, 5 table edge, 6 decor
    d = ImageDraw.Draw(layer)
    shadow = Image.new("L", (CANVAS, CANVAS), 0)
    z = CANVAS
    if p["kind"] == "mannequin":
        g = _figure(p)
        _draw_mannequin(d, g)
        k, fl = g["k"], g["ankle"] + 0.08 * g["k"]
        d.rectangle([0, (fl - 0.02) * z, z, z], fill=3)
        ImageDraw.Draw(shadow).ellipse([(g["x0"] - 0.26 * k) * z, (fl - 0.025) * z,
                                        (g["x0"] + 0.26 * k) * z, (fl + 0.025) * z], fill=255)
        colors = {1: SKIN[p["skin"]], 2: PANTS[p["pants"]], 3: FLOOR[p["floor"]]}
    else:
        ty = _table_y(p)
        d.rectangle([0, ty * z, z, z], fill=4)
        d.rectangle([0, (ty + 0.07) * z, z, (ty + 0.09) * z], fill=5)
        _draw_decor(d, p["decor"], ty)
        ImageDraw.Draw(shadow).ellipse([(p["x"] - 0.17) * z, (ty - 0.02) * z, (p["x"] + 0.17) * z,
                                        (ty + 0.03) * z], fill=255)
        tc = np.array(TABLE[p["table"]], np.float32)
        colors = {4: tc, 5: tc * 0.7, 6: (96, 140, 96)}
    lab = np.asarray(layer)
    for k, rgb in colors.items():
        img[lab == k] = rgb
    body = (lab == 1) | (lab == 2) | (lab == 6)
    core = np.asarray(Image.fromarray(body.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3))) > 0
    shade = np.where(body, 1.06 - 0.12 * X, 1.0) * np.where(body & ~core, 0.75, 1.0)
    img *= shade[..., None]
    soft = np.asarray(shadow.filter(ImageFilter.GaussianBlur(0.02 * z)), np.float32) / 255
    img *= np.where(body, 1.0, 1 - 0.4 * soft)[..., None]
    return img


def _draw_mannequin(d: ImageDraw.ImageDraw, g: dict) -> None:
    z, k, w, x0 = CANVAS, g["k"], g["w"], g["x0"]
    (hx, hy), r, c = g["head"], g["head_r"], g["collar"]
    P = lambda x, y: (x * z, y * z)  # noqa: E731
    for sx in (-1, 1):  # legs, then arms
        foot = g["feet"][(sx + 1) // 2] + 0.02 * sx * k
        d.line([P(x0 + sx * 0.055 * w * k, g["hip"] - 0.02), P(foot, g["ankle"])], fill=2,
               width=round(0.085 * w * k * z))
    d.polygon([P(x0 - 0.1 * w * k, g["hip"] - 0.04), P(x0 + 0.1 * w * k, g["hip"] - 0.04),
               P(x0 + 0.11 * w * k, g["hip"] + 0.03), P(x0 - 0.11 * w * k, g["hip"] + 0.03)], fill=2)
    d.polygon([P(x0 - 0.14 * w * k, c + 0.04 * k), P(x0 + 0.14 * w * k, c + 0.04 * k),
               P(x0 + 0.09 * w * k, g["hip"] - 0.03), P(x0 - 0.09 * w * k, g["hip"] - 0.03)], fill=1)
    for sx in (-1, 1):
        hand = g["hand"] if sx == g["side"] else (x0 + sx * (0.2 * w + 0.01) * k, g["hand"][1] - 0.03 * k)
        d.line([P(x0 + sx * 0.13 * w * k, c + 0.06 * k), P(*hand)], fill=1, width=round(0.045 * k * z))
        d.ellipse([P(hand[0] - 0.025 * k, hand[1] - 0.02 * k), P(hand[0] + 0.025 * k, hand[1] + 0.03 * k)], fill=1)
    d.rectangle([P(hx - 0.03 * k, hy), P(hx + 0.03 * k, c + 0.03 * k)], fill=1)  # neck
    d.ellipse([P(hx - r, hy - 1.1 * r), P(hx + r, hy + 1.1 * r)], fill=1)


def _draw_decor(d: ImageDraw.ImageDraw, kind: int, ty: float) -> None:
    z = CANVAS
    if kind == 1:  # a potted plant, left
        pot = [(0.1, ty - 0.1), (0.2, ty - 0.1), (0.18, ty), (0.12, ty)]
        d.polygon([(x * z, y * z) for x, y in pot], fill=5)
        d.ellipse([0.07 * z, (ty - 0.26) * z, 0.23 * z, (ty - 0.08) * z], fill=6)
    elif kind == 2:  # a stack of books, right
        for i, (x0, x1) in enumerate(((0.8, 0.96), (0.82, 0.95), (0.79, 0.94))):
            d.rectangle([x0 * z, (ty - 0.04 * (i + 1)) * z, x1 * z, (ty - 0.04 * i - 0.005) * z],
                        fill=5 if i % 2 else 4)


# ------------------------------------------------------------------ scenes
@dataclass
class Scene:
    """A rendered scene: its parameters, the products in its slots, the image and the slot masks."""

    params: dict
    slots: dict
    image: np.ndarray  # 3 x 64 x 64 uint8
    masks: dict = field(default_factory=dict)  # slot -> 64 x 64 bool

    def labels(self, slot: str) -> dict:
        """The attributes of the product in ``slot`` that the scene shows (what a judge can read)."""
        if slot not in self.slots:
            raise ValueError(f"slot {slot!r} is empty in this scene; filled slots: {', '.join(self.slots) or 'none'}")
        return {a: self.slots[slot][a] for a in SLOTS[slot].shown}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def _check_slot(slot: str, kind: str | None = None) -> Slot:
    valid = KINDS[kind] if kind else SLOT_NAMES
    if slot not in valid:
        where = f" of a {kind} scene" if kind else ""
        raise ValueError(f"unknown slot {slot!r}{where}; valid slots: {', '.join(valid)}")
    return SLOTS[slot]


def _check_product(slot: str, product: dict) -> dict:
    if not isinstance(product, dict):
        raise ValueError(f"a product must be a dict of attributes, got {type(product).__name__}")
    missing = [a for a in ATTRIBUTE_NAMES if a not in product]
    if missing:
        raise ValueError(f"product for slot {slot!r} lacks {', '.join(missing)}; "
                         f"give all of {', '.join(ATTRIBUTE_NAMES)}")
    attrs = validate_attributes({a: product[a] for a in ATTRIBUTE_NAMES})
    cats = SLOTS[slot].categories
    if attrs["category"] not in cats:
        raise ValueError(f"a {attrs['category']} does not fit slot {slot!r}; valid categories: {', '.join(cats)}")
    return attrs


def render_scene(params: dict, slots: dict) -> tuple[np.ndarray, dict]:
    """Render a scene with ``slots = {slot: product attributes}`` (a slot left out stays empty).

    Returns the image (3 x 64 x 64 uint8) and a mask (64 x 64 bool) for every slot of the
    scene's kind: the pixels that can change when that slot's product changes.
    """
    if not isinstance(params, dict) or "kind" not in params:
        raise ValueError("params must be a dict from scene_parameters(rng, kind)")
    kind = params["kind"]
    _check_kind(kind)
    if not isinstance(slots, dict):
        raise ValueError(f"slots must be a dict {{slot: product}}, got {type(slots).__name__}")
    products = {s: _check_product(_check_slot(s, kind).name, a) for s, a in slots.items()}
    canvas = _base(params)
    covers = {}
    for s in KINDS[kind]:
        covers[s] = np.zeros((CANVAS, CANVAS), bool)
        if s not in products:
            continue
        attrs = products[s]
        for place in _placements(params, s, attrs["category"], attrs["size"]):
            cover, box, rgb = _product_layer(attrs, SLOTS[s], place)
            canvas[box][cover[box]] = rgb
            covers[s] |= cover
    masks, front = {}, np.zeros((CANVAS, CANVAS), bool)
    for s in reversed(KINDS[kind]):
        free = _region(params, s) & ~front
        masks[s] = free.reshape(IMAGE_SIZE, SUPERSAMPLE, IMAGE_SIZE, SUPERSAMPLE).any(axis=(1, 3))
        front |= covers[s]
    canvas *= params["brightness"]
    img = canvas.reshape(IMAGE_SIZE, SUPERSAMPLE, IMAGE_SIZE, SUPERSAMPLE, 3).mean(axis=(1, 3)) + 0.5
    np.clip(img, 0, 255, out=img)
    return np.ascontiguousarray(img.astype(np.uint8).transpose(2, 0, 1)), {s: masks[s] for s in KINDS[kind]}


def make_scene(seed, kind: str | None = None, slots: dict | None = None) -> Scene:
    """A scene from a seed (an int or a sequence of ints): random products in every slot not given in ``slots``."""
    rng = np.random.default_rng(seed)
    kind = kind or ("tabletop" if rng.random() < 0.25 else "mannequin")
    params = scene_parameters(rng, kind)
    chosen = {s: random_product(s, rng) for s in KINDS[kind]}
    chosen.update(slots or {})
    image, masks = render_scene(params, chosen)
    return Scene(params, {s: dict(a) for s, a in chosen.items()}, image, masks)


def swap(scene: Scene, slot: str, product: dict) -> Scene:
    """The same scene with ``product`` in ``slot``: pixels outside ``scene.masks[slot]`` are unchanged.

    The slot's own mask stays the same; the mask of a slot *behind* it (the top behind the bag) changes where
    the new product covers more or less of it (measured: 36 of 975 random swaps on test scenes).
    """
    _check_slot(slot, scene.params["kind"])
    slots = {**scene.slots, slot: _check_product(slot, product)}
    image, masks = render_scene(scene.params, slots)
    return Scene(scene.params, slots, image, masks)


# ------------------------------------------------------------------ the data set
SCENE_SPLITS = ("train", "val", "test")
SCENE_DEFAULT_N = {"train": 8_000, "val": 1_000, "test": 1_000}
SCENE_CACHE_VERSION = 2  # bump when scene rendering changes
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
KIND_NAMES: tuple[str, ...] = tuple(KINDS)


def scene_at(split: str, seed: int, index: int) -> Scene:
    """Scene ``index`` of a split: it depends only on ``(split, seed, index)``."""
    _check_request(split, 1, seed)
    return make_scene([seed, 1000 + _SPLIT_ID[split], index])


def _check_request(split, n, seed) -> int:
    if split not in SCENE_SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SCENE_SPLITS)}")
    n = SCENE_DEFAULT_N[split] if n is None else n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive whole number of scenes, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    return int(n)


def _render_range(split: str, seed: int, start: int, stop: int) -> dict:
    n, ns = stop - start, len(SLOT_NAMES)
    out = {"images": np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8), "kinds": np.empty(n, np.int64),
           "masks": np.zeros((n, ns, IMAGE_SIZE, IMAGE_SIZE), bool),
           "labels": np.full((n, ns, len(ATTRIBUTE_NAMES)), -1, np.int64)}
    keys = [values_of(a) for a in ATTRIBUTE_NAMES]
    for j in range(n):
        sc = scene_at(split, seed, start + j)
        out["images"][j], out["kinds"][j] = sc.image, KIND_NAMES.index(sc.params["kind"])
        for slot, mask in sc.masks.items():
            out["masks"][j, SLOT_NAMES.index(slot)] = mask
        for slot, attrs in sc.slots.items():
            out["labels"][j, SLOT_NAMES.index(slot)] = [k.index(attrs[a]) for k, a in zip(keys, ATTRIBUTE_NAMES)]
    return out


def render_scenes(split: str = "train", n: int | None = None, seed: int = 0, workers: int = 1) -> dict:
    """Render ``n`` scenes of ``split`` into NumPy arrays (``workers`` processes; 1 = this one)."""
    n = _check_request(split, n, seed)
    ranges = [(split, seed, a, min(a + 250, n)) for a in range(0, n, 250)]
    if workers > 1 and len(ranges) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_render_range, *zip(*ranges)))
    else:
        parts = [_render_range(*r) for r in ranges]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@dataclass
class Scenes:
    """Rendered scenes in memory (lesson 15).

    ``images`` uint8 N x 3 x 64 x 64; ``kinds`` int64 N (index into ``KIND_NAMES``); ``masks`` bool
    N x 5 x 64 x 64 and ``labels`` int64 N x 5 x 5, one row per slot of ``SLOT_NAMES`` and one column
    per attribute of ``ATTRIBUTE_NAMES`` (-1 where the scene has no such slot).
    """

    images: torch.Tensor
    kinds: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    split: str
    seed: int

    def __len__(self) -> int:
        return len(self.images)

    def crops(self, slot: str, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """Every scene's ``slot`` crop (:func:`slot_crops`) and its labels, for the scenes that have the slot;
        attributes the slot does not show are -1."""
        j = SLOT_NAMES.index(_check_slot(slot).name)
        have = self.labels[:, j, 0] >= 0
        labels = self.labels[have, j].clone()
        for a, name in enumerate(ATTRIBUTE_NAMES):
            if name not in SLOTS[slot].shown:
                labels[:, a] = -1
        return slot_crops(self.images[have], self.masks[have, j], size), labels

    def scene(self, i: int) -> Scene:
        """Scene ``i`` with its parameters and products, ready for :func:`swap`."""
        return scene_at(self.split, self.seed, i)


def _scene_cache(split: str, n: int, seed: int):
    return paths.cache_dir() / f"scenes-v{SCENE_CACHE_VERSION}-{split}-{IMAGE_SIZE}px-seed{seed}-n{n}.npz"


def load_scenes(split: str = "train", n: int | None = None, seed: int = 0, cache: bool = True,
                workers: int = 1) -> Scenes:
    """The scenes of a split as tensors, rendered on first use and cached in ``$PRODGEN_CACHE``.

    A smaller ``n`` reuses a larger cached file (scene ``i`` is the same in both).
    """
    n = _check_request(split, n, seed)
    arrays = _load_cached(split, n, seed) if cache else None
    if arrays is None:
        arrays = render_scenes(split, n, seed, workers)
        if cache:
            _save(_scene_cache(split, n, seed), arrays)
    return Scenes(*(torch.from_numpy(arrays[k]) for k in ("images", "kinds", "masks", "labels")), split, seed)


def _load_cached(split: str, n: int, seed: int) -> dict | None:
    pattern = re.compile(rf"scenes-v{SCENE_CACHE_VERSION}-{split}-{IMAGE_SIZE}px-seed{seed}-n(\d+)\.npz$")
    folder = paths.cache_dir()
    found = sorted((int(m.group(1)), f) for f in (folder.iterdir() if folder.is_dir() else [])
                   if (m := pattern.match(f.name)) and int(m.group(1)) >= n)
    if not found:
        return None
    try:
        with np.load(found[0][1], allow_pickle=False) as z:
            masks = np.unpackbits(z["masks"][:n], axis=-1).astype(bool)
            return {"images": z["images"][:n], "kinds": z["kinds"][:n], "masks": masks, "labels": z["labels"][:n]}
    except Exception:  # a damaged cache file is rendered again, never trusted
        return None


def _save(path, arrays: dict) -> None:
    """Write atomically (temp file, then rename); masks packed to bits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **{**arrays, "masks": np.packbits(arrays["masks"], axis=-1)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def slot_crops(images: torch.Tensor, masks: torch.Tensor, size: int = 32, fill: int | None = 128) -> torch.Tensor:
    """``size x size`` windows of ``images`` (N x 3 x 64 x 64) centred on each mask's bounding box
    (N x 64 x 64), moved inside the image: a slot at the scene's own resolution, for the scene judge.
    Pixels outside the mask become grey ``fill`` (None keeps them), so the other slots' products do not show."""
    if images.shape[0] != masks.shape[0] or not masks.flatten(1).any(1).all():
        raise ValueError("slot_crops needs one non-empty mask per image")
    rows, cols = masks.any(2).float(), masks.any(1).float()
    idx = torch.arange(IMAGE_SIZE, dtype=torch.float32)
    first = lambda m: (m * (IMAGE_SIZE - idx) ).argmax(1)  # noqa: E731
    last = lambda m: (m * (idx + 1)).argmax(1)  # noqa: E731
    cy = (first(rows) + last(rows) + 1) // 2
    cx = (first(cols) + last(cols) + 1) // 2
    y0 = (cy - size // 2).clamp(0, IMAGE_SIZE - size)
    x0 = (cx - size // 2).clamp(0, IMAGE_SIZE - size)
    if fill is not None:
        images = torch.where(masks[:, None], images, torch.tensor(fill, dtype=images.dtype))
    return torch.stack([im[:, y:y + size, x:x + size] for im, y, x in zip(images, y0.tolist(), x0.tolist())])
