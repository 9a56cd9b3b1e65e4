"""Render one product photo from its attributes.

A product is drawn as a *part map*: every pixel gets the id of the part it belongs
to (background, body, sole, strap, logo, ...). Shapes are polygons in the product's
own coordinates (x right, y down, the product inside [-0.5, 0.5]^2), moved into the
frame by one similarity transform (scale = size, small rotation, small shift).
Colouring, the pattern, shading, an outline and a soft shadow are then applied with
a few NumPy operations, and the picture is box-downsampled from a supersampled
canvas, which anti-aliases every edge.

Used by lesson 01 (how a product shot is rendered), by every dataset and, through its part map, by the looks
of lesson 16 (``prodgen.catalog.looks``: sketch, poster, watercolour).
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from prodgen.catalog.attributes import BRAND_LOGOS, COLOR_RGB, validate_attributes
from prodgen.catalog.looks import LookCanvas, check_look, paint_look
from prodgen.catalog.parts import ACCENT, BG, BODY, DARK, FIXED_PART_RGB, LIGHT, LOGO_EDGE, LOGO_INK, METAL

__all__ = ["render_product", "render_array", "draw_parameters", "draw_part_map", "product_coordinates", "product_mask",
           "downsample", "SUPPORTED_SIZES", "SIZE_SCALE"]

SUPPORTED_SIZES = (32, 64, 128)
SUPERSAMPLE = {32: 3, 64: 2, 128: 2}  # canvas = size * factor

# Fraction of the frame that the product's unit box covers, per size.
SIZE_SCALE = {"small": 0.63, "medium": 0.765, "large": 0.9}
PATTERN_PERIOD = 1 / 6  # in frame units: fabric patterns have a physical scale
LOGO_SCALE = 0.94  # logo radius relative to SHAPES' value: big enough to read, small enough to show the pattern

# Part ids of the part map: prodgen.catalog.parts (shared with the looks and the scenes).


# --------------------------------------------------------------------------- shapes
class _Pen:
    """Draws parts in product coordinates onto the part map."""

    def __init__(self, draw: ImageDraw.ImageDraw, res: int, cx: float, cy: float, scale: float, angle: float):
        self.draw, self.res = draw, res
        self.cx, self.cy, self.scale = cx, cy, scale
        self.cos, self.sin = math.cos(angle), math.sin(angle)

    def _map(self, pts):
        out = []
        for x, y in pts:
            fx = self.cx + self.scale * (self.cos * x - self.sin * y)
            fy = self.cy + self.scale * (self.sin * x + self.cos * y)
            out.append((fx * self.res, fy * self.res))
        return out

    def poly(self, pts, part):
        self.draw.polygon(self._map(pts), fill=part)

    def ellipse(self, cx, cy, rx, ry, part, a0=0.0, a1=360.0, n=36):
        self.poly(_arc(cx, cy, rx, ry, a0, a1, n), part)

    def rect(self, x0, y0, x1, y1, part, r=0.0):
        self.poly(_rounded_rect(x0, y0, x1, y1, r), part)

    def line(self, pts, width, part):
        w = max(1, round(width * self.scale * self.res))
        self.draw.line(self._map(pts), fill=part, width=w, joint="curve")

    def arc(self, cx, cy, rx, ry, a0, a1, width, part):
        self.line(_arc(cx, cy, rx, ry, a0, a1, 24), width, part)


def _arc(cx, cy, rx, ry, a0, a1, n):
    angles = np.radians(np.linspace(a0, a1, n))
    return list(zip(cx + rx * np.cos(angles), cy + ry * np.sin(angles)))


def _rounded_rect(x0, y0, x1, y1, r):
    if r <= 0:
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    pts = []
    for cx, cy, a in ((x1 - r, y0 + r, 270), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        pts += _arc(cx, cy, r, r, a, a + 90, 6)
    return pts


# Each category: draw(pen) draws its parts; LOGO gives the logo centre and radius;
# BOTTOM is the lowest y of the product (where the shadow goes); ROUND marks
# cylinders, which get a vertical highlight.
def _tshirt(p):
    neck = _arc(0, -0.46, 0.16, 0.11, 0, 180, 10)  # from right to left, dipping down
    p.poly([(-0.16, -0.46), (-0.34, -0.41), (-0.5, -0.2), (-0.37, -0.07), (-0.29, -0.17), (-0.29, 0.47),
            (0.29, 0.47), (0.29, -0.17), (0.37, -0.07), (0.5, -0.2), (0.34, -0.41), (0.16, -0.46)] + neck, BODY)
    p.line(neck, 0.04, ACCENT)  # ribbed collar
    p.line([(-0.29, 0.44), (0.29, 0.44)], 0.025, ACCENT)  # hem
    p.line([(-0.46, -0.15), (-0.34, -0.05)], 0.025, ACCENT)  # sleeve cuffs
    p.line([(0.46, -0.15), (0.34, -0.05)], 0.025, ACCENT)


def _mug(p):
    p.arc(0.25, 0.02, 0.17, 0.19, -90, 90, 0.08, BODY)  # handle
    p.rect(-0.36, -0.36, 0.24, 0.44, BODY, r=0.05)
    p.ellipse(-0.06, -0.36, 0.3, 0.055, ACCENT)  # rim, seen from slightly above
    p.ellipse(-0.06, -0.355, 0.26, 0.035, DARK)  # coffee-dark inside


def _sneaker(p):
    p.poly([(-0.48, 0.16), (-0.47, -0.08), (-0.3, -0.15), (-0.14, -0.33), (0.14, -0.38), (0.25, -0.24),
            (0.32, -0.08), (0.47, 0.0), (0.5, 0.16)], BODY)
    p.poly([(-0.47, -0.06), (-0.3, -0.12), (-0.32, 0.1), (-0.48, 0.1)], ACCENT)  # toe cap
    p.rect(-0.5, 0.14, 0.5, 0.3, LIGHT, r=0.06)  # sole
    p.line([(-0.5, 0.22), (0.5, 0.22)], 0.02, METAL)  # sole stripe
    for x in (-0.1, -0.03, 0.04):  # laces
        p.line([(x - 0.04, -0.3 + x), (x + 0.05, -0.24 + x)], 0.03, LIGHT)


def _handbag(p):
    p.arc(0, -0.1, 0.22, 0.33, 180, 360, 0.05, DARK)  # handle
    p.poly([(-0.34, -0.1), (0.34, -0.1), (0.44, 0.44), (-0.44, 0.44)], BODY)
    p.poly([(-0.34, -0.1), (0.34, -0.1), (0.31, 0.06), (-0.31, 0.06)], ACCENT)  # flap
    p.rect(-0.05, 0.03, 0.05, 0.1, METAL)  # clasp


def _cap(p):
    p.poly([(0.1, 0.1), (0.5, 0.14), (0.48, 0.24), (0.05, 0.24)], ACCENT)  # brim
    p.ellipse(-0.06, 0.18, 0.38, 0.46, BODY, 180, 360)  # crown
    p.rect(-0.44, 0.12, 0.32, 0.24, BODY)  # band
    p.line([(-0.06, -0.28), (-0.06, 0.14)], 0.02, ACCENT)  # seam
    p.ellipse(-0.06, -0.29, 0.05, 0.03, ACCENT)  # button


def _bottle(p):
    p.rect(-0.2, -0.2, 0.2, 0.48, BODY, r=0.07)
    p.poly([(-0.2, -0.16), (-0.09, -0.32), (0.09, -0.32), (0.2, -0.16)], BODY)  # shoulder
    p.rect(-0.11, -0.48, 0.11, -0.31, DARK, r=0.02)  # cap
    p.line([(-0.2, 0.4), (0.2, 0.4)], 0.025, ACCENT)


def _backpack(p):
    p.arc(0, -0.36, 0.11, 0.1, 180, 360, 0.045, DARK)  # carry loop
    p.line([(-0.38, -0.2), (-0.38, 0.3)], 0.05, DARK)  # shoulder straps behind
    p.line([(0.38, -0.2), (0.38, 0.3)], 0.05, DARK)
    p.rect(-0.34, -0.37, 0.34, 0.47, BODY, r=0.16)
    p.rect(-0.25, 0.06, 0.25, 0.4, ACCENT, r=0.06)  # pocket seam
    p.rect(-0.225, 0.085, 0.225, 0.375, BODY, r=0.05)  # pocket


def _lamp(p):
    p.line([(0, -0.12), (0, 0.38)], 0.05, METAL)  # stem
    p.rect(-0.24, 0.36, 0.24, 0.46, DARK, r=0.04)  # base
    p.poly([(-0.2, -0.48), (0.2, -0.48), (0.38, -0.06), (-0.38, -0.06)], BODY)  # shade
    p.line([(-0.38, -0.07), (0.38, -0.07)], 0.03, ACCENT)


# category -> (draw, logo (x, y, r), bottom y, round)
SHAPES = {
    "t-shirt": (_tshirt, (0.0, -0.12, 0.16), 0.47, False),
    "mug": (_mug, (-0.06, 0.06, 0.16), 0.44, True),
    "sneaker": (_sneaker, (0.06, -0.07, 0.13), 0.3, False),
    "handbag": (_handbag, (0.0, 0.25, 0.15), 0.44, False),
    "cap": (_cap, (-0.1, -0.07, 0.15), 0.24, False),
    "bottle": (_bottle, (0.0, 0.12, 0.14), 0.48, True),
    "backpack": (_backpack, (0.0, 0.23, 0.13), 0.47, False),
    "lamp": (_lamp, (0.0, -0.26, 0.13), 0.46, False),
}


def _logo(p: _Pen, kind: str, x: float, y: float, r: float):
    """The brand's mark: ink on a contrasting edge so it shows on any pattern."""
    e = 0.25 * r  # width of the contrasting edge
    if kind == "triangle":
        tri = lambda s: [(x, y - s), (x + 0.95 * s, y + 0.7 * s), (x - 0.95 * s, y + 0.7 * s)]  # noqa: E731
        p.poly(tri(r + 1.8 * e), LOGO_EDGE)
        p.poly(tri(r), LOGO_INK)
    elif kind == "disc":
        p.ellipse(x, y, 0.85 * r + e, 0.85 * r + e, LOGO_EDGE)
        p.ellipse(x, y, 0.85 * r, 0.85 * r, LOGO_INK)
    elif kind == "ring":
        p.ellipse(x, y, r + e, r + e, LOGO_EDGE)
        p.ellipse(x, y, r, r, LOGO_INK)
        p.ellipse(x, y, 0.55 * r, 0.55 * r, LOGO_EDGE)
    elif kind == "bars":
        p.rect(x - r - e, y - 0.8 * r - e, x + r + e, y + 0.8 * r + e, LOGO_EDGE)
        p.rect(x - r, y - 0.8 * r, x + r, y - 0.2 * r, LOGO_INK)
        p.rect(x - r, y + 0.2 * r, x + r, y + 0.8 * r, LOGO_INK)
    else:  # pragma: no cover - BRAND_LOGOS is fixed
        raise ValueError(f"unknown logo kind {kind!r}")


# ------------------------------------------------------------------ the photograph
def draw_parameters(rng: np.random.Generator, size: str) -> dict:
    """The random, per-photo nuisance: pose, position, lighting, background."""
    return {
        "scale": SIZE_SCALE[size] + rng.uniform(-0.025, 0.025),
        "angle": math.radians(rng.uniform(-6, 6)),
        "cx": 0.5 + rng.uniform(-0.035, 0.035),
        "cy": 0.48 + rng.uniform(-0.03, 0.03),
        "brightness": rng.uniform(0.94, 1.06),
        "tint": rng.uniform(-6, 6, size=3).astype(np.float32),
    }


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(res: int):
    if res not in _GRIDS:
        c = (np.arange(res, dtype=np.float32) + 0.5) / res
        _GRIDS[res] = np.meshgrid(c, c)  # X (columns), Y (rows) in frame units
    return _GRIDS[res]


def draw_part_map(attrs: dict, image_size: int, params: dict) -> Image.Image:
    """The product's part map on the supersampled canvas (mode "L", one part id per pixel): the geometry that
    every look of lesson 16 (``prodgen.catalog.looks``) colours in its own way."""
    res = image_size * SUPERSAMPLE[image_size]
    draw_fn, (lx, ly, lr), _, _ = SHAPES[attrs["category"]]
    parts = Image.new("L", (res, res), BG)
    pen = _Pen(ImageDraw.Draw(parts), res, params["cx"], params["cy"], params["scale"], params["angle"])
    draw_fn(pen)
    _logo(pen, BRAND_LOGOS[attrs["brand"]], lx, ly, LOGO_SCALE * lr)
    return parts


def product_coordinates(res: int, params: dict):
    """Frame grid ``X, Y`` and, per canvas pixel, frame units rotated with the product ``fu, fv`` and product
    coordinates ``u, v`` (right and down, the product in [-0.5, 0.5])."""
    X, Y = _grid(res)
    s, angle, cx, cy = params["scale"], params["angle"], params["cx"], params["cy"]
    dx, dy = X - cx, Y - cy
    cos, sin = math.cos(angle), math.sin(angle)
    fu, fv = cos * dx + sin * dy, -sin * dx + cos * dy  # frame units, rotated with the product
    return X, Y, fu, fv, fu / s, fv / s


def render_array(attrs: dict, image_size: int, params: dict, look: str = "photo") -> np.ndarray:
    """Render to an ``image_size x image_size x 3`` uint8 array (no validation). ``look``: the studio photo
    (default) or another look of ``prodgen.catalog.looks`` (lesson 16), the same product in the same pose."""
    if look != "photo":
        return _render_look(look, attrs, image_size, params)
    res = image_size * SUPERSAMPLE[image_size]
    _, _, bottom, is_round = SHAPES[attrs["category"]]
    s, cx, cy = params["scale"], params["cx"], params["cy"]

    # 1. The part map, and 2. product coordinates of every pixel.
    parts = draw_part_map(attrs, image_size, params)
    part = np.asarray(parts)
    X, Y, fu, fv, u, v = product_coordinates(res, params)

    # 3. Colours: body with its pattern, then fixed parts and the logo.
    base = np.array(COLOR_RGB[attrs["color"]], np.float32) * params["brightness"]
    img = colour_parts(part, base, _pattern_amount(attrs["pattern"], fu, fv))

    # 4. Light from the upper left, a highlight on cylinders, a darker outline.
    product = part != BG
    shade = 0.96 - 0.128 * u - 0.192 * v  # = 1.12 - 0.32 * (0.4 (u + 0.5) + 0.6 (v + 0.5))
    if is_round:
        shade = shade + 0.22 * np.exp(-(((u + 0.16) / 0.06) ** 2)) - 0.12 * (2 * u) ** 2
    inner = np.asarray(parts.point(lambda k: 255 * (k != BG)).filter(ImageFilter.MinFilter(3))) > 0
    shade = np.where(product & ~inner, shade * 0.72, shade)
    img *= np.where(product, shade, 1.0)[..., None]

    # 5. Studio background: a light sweep with a soft contact shadow.
    sweep = (248 - 22 * Y)[..., None] + params["tint"]
    shadow = Image.new("L", (res, res), 0)
    ImageDraw.Draw(shadow).ellipse(
        [(cx - 0.36 * s) * res, (cy + (bottom - 0.02) * s) * res,
         (cx + 0.36 * s) * res, (cy + (bottom + 0.07) * s) * res],
        fill=255,
    )
    shadow = np.asarray(shadow.filter(ImageFilter.GaussianBlur(0.025 * res)), np.float32)[..., None] / 255
    background = sweep * (1 - 0.45 * shadow)
    img = np.where(product[..., None], img, background).astype(np.float32, copy=False)
    return downsample(img, image_size)


def _render_look(look: str, attrs: dict, image_size: int, params: dict) -> np.ndarray:
    """A look other than the photo: its painter (``prodgen.catalog.looks``) gets this product's part map, print,
    flat colours and shadow place, the same ones the photo uses."""
    check_look(look)
    res = image_size * SUPERSAMPLE[image_size]
    part = np.asarray(draw_part_map(attrs, image_size, params))
    _, _, fu, fv, _, _ = product_coordinates(res, params)
    amount = _pattern_amount(attrs["pattern"], fu, fv)
    base = np.array(COLOR_RGB[attrs["color"]], np.float32)  # the colour itself: no lighting jitter
    s, cx, cy, bottom = params["scale"], params["cx"], params["cy"], SHAPES[attrs["category"]][2]
    shadow = ((cx - 0.4 * s) * res, (cy + (bottom - 0.03) * s) * res, (cx + 0.4 * s) * res,
              (cy + (bottom + 0.06) * s) * res)
    key = (params["scale"], params["angle"], params["cx"], params["cy"])
    canvas = LookCanvas(part, SUPERSAMPLE[image_size], image_size, amount,
                        lambda labels: colour_parts(labels, base, amount), shadow, key)
    return downsample(paint_look(look, canvas), image_size)


def product_mask(attrs: dict, image_size: int, params: dict) -> np.ndarray:
    """Which output pixels the product covers (more than half of their canvas block): one mask for every look
    (lesson 16's ground truth)."""
    part = np.asarray(draw_part_map(attrs, image_size, params))
    k = SUPERSAMPLE[image_size]
    return (part != BG).reshape(image_size, k, image_size, k).mean((1, 3)) > 0.5


def downsample(img: np.ndarray, image_size: int) -> np.ndarray:
    """Canvas RGB floats -> ``image_size`` uint8 pixels: the box filter averages each supersampled block."""
    img = img + 0.5
    np.clip(img, 0, 255, out=img)
    out = Image.fromarray(img.astype(np.uint8)).resize((image_size, image_size), Image.BOX)
    return np.array(out)  # a writable copy (asarray of a PIL image is read-only: torch.from_numpy warns)


def colour_parts(part: np.ndarray, base: np.ndarray, pattern_amount: np.ndarray | None) -> np.ndarray:
    """RGB (H x W x 3 float) of a map of part labels: the body in ``base`` with its print (``pattern_amount``: how
    much print per pixel, or None for plain), the accent a darker body, the fixed parts, and a logo whose ink and edge
    contrast with the body. Used by the catalog's products and by the scenes' (prodgen/catalog/scenes.py)."""
    light_body = base @ np.array([0.299, 0.587, 0.114], np.float32) > 0.5 * 255
    print_rgb = base * 0.55 if light_body else base * 0.35 + 0.65 * 255
    ink, edge = ((35, 35, 38), (250, 250, 246)) if light_body else ((250, 250, 246), (35, 35, 38))
    lut = np.zeros((8, 3), np.float32)
    lut[BODY], lut[ACCENT] = base, base * 0.72
    for k, rgb in FIXED_PART_RGB.items():
        lut[k] = rgb
    lut[LOGO_EDGE], lut[LOGO_INK] = edge, ink
    img = lut[part]
    if pattern_amount is not None:
        body = part == BODY
        img[body] += pattern_amount[body][:, None] * (print_rgb - base)
    return img


def _pattern_amount(pattern: str, fu: np.ndarray, fv: np.ndarray) -> np.ndarray | None:
    """How much print colour each pixel gets (0..1), or None for plain.

    Pattern coordinates are frame units, so every product size shares one fabric scale.
    "checked" is a gingham: bands in both directions, darkest where they cross.
    """
    if pattern == "plain":
        return None
    a, b = fu / PATTERN_PERIOD, fv / PATTERN_PERIOD
    fa, fb = a - np.floor(a), b - np.floor(b)
    if pattern == "striped":
        return (fb < 0.5).astype(np.float32)
    if pattern == "dotted":
        return ((fa - 0.5) ** 2 + (fb - 0.5) ** 2 < 0.25**2).astype(np.float32)
    if pattern == "checked":
        return 0.55 * (fa < 0.5) + 0.45 * (fb < 0.5)
    raise ValueError(f"unknown pattern {pattern!r}")


def render_product(
    category: str = "t-shirt",
    color: str = "red",
    size: str = "medium",
    brand: str = "acme",
    pattern: str = "plain",
    image_size: int = 32,
    seed: int = 0,
    look: str = "photo",
) -> np.ndarray:
    """Render one product photo as an ``H x W x 3`` uint8 array.

    ``seed`` picks the pose, position and lighting jitter. Any of 32, 64 or 128 pixels. ``look``: ``"photo"``
    (the studio photo), ``"sketch"``, ``"poster"`` or ``"watercolour"`` (``prodgen.catalog.looks``, lesson 16):
    one seed gives the same product in the same pose in every look.
    """
    check_look(look)
    attrs = validate_attributes(dict(category=category, color=color, size=size, brand=brand, pattern=pattern))
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(f"unsupported image size {image_size!r}; valid sizes: {', '.join(map(str, SUPPORTED_SIZES))}")
    params = draw_parameters(np.random.default_rng(seed), size)
    return render_array(attrs, image_size, params, look)
