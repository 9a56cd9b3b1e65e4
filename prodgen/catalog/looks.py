"""Looks: the same product as a studio photo, a line sketch, a flat poster or a watercolour (lesson 16).

A look is a way of *rendering*, not a filter on top of the photo: every look colours the same part map
(``prodgen.catalog.render.draw_part_map``) drawn with the same pose parameters, which ``render`` hands to
:func:`paint_look` as a :class:`LookCanvas`, so one seed gives the same
product, in the same place and pose, in every look, and "this product in that look" has rendered truth
(restyling, sketch -> photo). What each look can still show is recorded in :data:`LOOK_SHOWN`, as
``prodgen.catalog.scenes`` records ``Slot.shown``:

- ``photo``: the catalog's studio photo (``render.render_array``; its bytes are unchanged by this module).
- ``sketch``: dark pen outlines of every part on white paper, pencil tone for dark parts and for the print,
  the logo inked. No colour: a sketch shows category, size, brand and pattern, not ``color``.
- ``poster``: flat body colours (no shading, no lighting jitter), hard edges, a bold outline, a flat cream
  backdrop with a hard-edged shadow. Shows every attribute.
- ``watercolour``: transparent washes of the body colour on textured paper, edges that bleed (the part map
  slightly warped and blurred), pigment pooling at the edges and granulation. The texture is random but
  fixed by the product's pose parameters, so the same seed gives the same bytes. Shows every attribute.

Used by lesson 16 (restyling, the look judge of ``benchmarks/looks_judge.py``) and by
``prodgen.catalog.dataset`` (``load_catalog(..., look=...)``, ``prodgen data build --look``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from prodgen.catalog.attributes import ATTRIBUTE_NAMES
from prodgen.catalog.parts import ACCENT, BG, BODY, DARK, LIGHT, LOGO_EDGE, LOGO_INK, METAL

__all__ = ["LOOKS", "LOOK_SHOWN", "LookCanvas", "check_look", "paint_look", "outlines"]

LOOKS: tuple[str, ...] = ("photo", "sketch", "poster", "watercolour")
LOOK_SHOWN: dict[str, tuple[str, ...]] = {
    "photo": ATTRIBUTE_NAMES,
    "sketch": tuple(a for a in ATTRIBUTE_NAMES if a != "color"),  # pen and pencil: no colour
    "poster": ATTRIBUTE_NAMES,
    "watercolour": ATTRIBUTE_NAMES,
}
"""Which attributes each look shows (a judge is asked only about these)."""

PAPER = np.array((250, 249, 245), np.float32)
INK = np.array((34, 34, 44), np.float32)
# Sketch: the pencil tone of each part (1 = white paper, 0 = ink).
SKETCH_TONE = {BG: 1.0, BODY: 1.0, ACCENT: 0.9, LIGHT: 1.0, DARK: 0.5, METAL: 0.82, LOGO_EDGE: 1.0, LOGO_INK: 0.12}
POSTER_BACKDROP, POSTER_SHADOW = (244, 234, 212), (222, 206, 178)
WATER_PAPER = np.array((247, 243, 232), np.float32)


def check_look(look) -> str:
    """``look`` if it is one of :data:`LOOKS`, else a ``ValueError`` that lists them."""
    if not isinstance(look, str) or look not in LOOKS:
        raise ValueError(f"unknown look {look!r}; valid looks: {', '.join(LOOKS)}")
    return look


class LookCanvas(NamedTuple):
    """What a look paints, prepared by ``prodgen.catalog.render`` from the product's one part map and pose:
    ``part`` the part ids on the supersampled canvas (``prodgen.catalog.parts``), ``k`` canvas pixels per output
    pixel, ``image_size``, ``amount`` the print per canvas pixel (None: plain), ``colour`` a map of part ids ->
    flat RGB (the body's colour and print, the fixed parts, the logo), ``shadow`` the contact shadow's ellipse box
    in canvas pixels, ``key`` the pose numbers that seed a look's texture."""

    part: np.ndarray
    k: int
    image_size: int
    amount: np.ndarray | None
    colour: Callable[[np.ndarray], np.ndarray]
    shadow: tuple[float, float, float, float]
    key: tuple[float, ...]


def paint_look(look: str, canvas: LookCanvas) -> np.ndarray:
    """The canvas (H x W x 3 floats, before the box filter) of a look other than the photo, which
    ``render.render_array`` paints itself."""
    painters = {"sketch": _sketch, "poster": _poster, "watercolour": _watercolour}
    if check_look(look) not in painters:
        raise ValueError(f"the {look} look is painted by prodgen.catalog.render.render_array, not here")
    return painters[look](canvas)


# ------------------------------------------------------------------ geometry shared by the looks
def _boundaries(part: np.ndarray) -> np.ndarray:
    """Canvas pixels that touch a pixel of another part (4-neighbours)."""
    edge = np.zeros(part.shape, bool)
    dv, dh = part[1:] != part[:-1], part[:, 1:] != part[:, :-1]
    edge[1:] |= dv
    edge[:-1] |= dv
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    return edge


def _thicken(mask: np.ndarray, width: int) -> np.ndarray:
    """``mask`` dilated by a ``width`` x ``width`` square (odd width)."""
    if width <= 1:
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(width))
    return np.asarray(img) > 0


def _pen_widths(image_size: int) -> tuple[int, int]:
    """Dilation widths (odd, canvas pixels) of the outer outline and of the lines between parts. A boundary is
    already two canvas pixels wide, so at 32 px the outline is about 1.3 output pixels and the inner lines 0.7."""
    return (3, 1) if image_size <= 64 else (5, 3)


def outlines(part: np.ndarray, image_size: int) -> np.ndarray:
    """Where the sketch draws its ink lines on the canvas of a ``part`` map: the silhouette and the lines between
    parts; the logo is inked, not outlined (its ring would hide it)."""
    outer_w, inner_w = _pen_widths(image_size)
    product = part != BG
    silhouette = _thicken(_boundaries(product.astype(np.uint8)), outer_w)
    logo = _thicken((part == LOGO_EDGE) | (part == LOGO_INK), 3)
    return silhouette | (_thicken(_boundaries(part) & ~logo, inner_w) & product)


# ------------------------------------------------------------------ the looks
def _sketch(c: LookCanvas) -> np.ndarray:
    """Pen outlines, pencil tone for dark parts and the print (a diagonal hatch), the logo inked; no colour."""
    part = c.part
    lut = np.ones(8, np.float32)
    for k, t in SKETCH_TONE.items():
        lut[k] = t
    tone = lut[part]
    if c.amount is not None:
        body = part == BODY
        tone[body] -= 0.42 * c.amount[body]
    ii, jj = np.indices(part.shape)
    hatch = ((ii + jj) % 4 < 2).astype(np.float32)  # pencil strokes at 45 degrees, two canvas pixels wide
    shaded = tone < 0.999
    tone = np.where(shaded & (part != LOGO_INK), tone - (1 - tone) * 0.35 * (2 * hatch - 1), tone)
    tone = np.where(outlines(part, c.image_size), 0.0, np.clip(tone, 0, 1))
    return INK + tone[..., None] * (PAPER - INK)


def _poster(c: LookCanvas) -> np.ndarray:
    """Flat colours (the colour's exact value, no light), a bold outline, a flat backdrop and shadow."""
    res = c.part.shape[0]
    backdrop = Image.new("RGB", (res, res), POSTER_BACKDROP)
    ImageDraw.Draw(backdrop).ellipse(list(c.shadow), fill=POSTER_SHADOW)
    product = c.part != BG
    img = np.where(product[..., None], c.colour(c.part), np.asarray(backdrop, np.float32))
    outer_w, _ = _pen_widths(c.image_size)
    line = _thicken(_boundaries(product.astype(np.uint8)), outer_w)
    return np.where(line[..., None], INK, img)


def _texture_rng(key: tuple[float, ...]) -> np.random.Generator:
    """Random numbers fixed by the pose (same seed, same texture) without touching the catalog's own stream."""
    return np.random.default_rng(np.frombuffer(np.array(key, np.float64).tobytes(), np.uint32))


def _noise(rng: np.random.Generator, res: int, cells: int) -> np.ndarray:
    """Smooth noise (about unit spread) on a ``res`` canvas: random values on a ``cells`` grid, interpolated."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((res, res), Image.BICUBIC))


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float array over its first two axes (separable, edges repeated)."""
    r = max(1, int(np.ceil(3 * sigma)))
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    w /= w.sum()
    for axis in (0, 1):
        pad = [(r, r) if i == axis else (0, 0) for i in range(a.ndim)]
        p = np.pad(a, pad, mode="edge")
        n = a.shape[axis]
        a = sum(wk * np.take(p, range(k, k + n), axis=axis) for k, wk in enumerate(w))
    return a.astype(np.float32, copy=False)


def _watercolour(c: LookCanvas) -> np.ndarray:
    """Washes of transparent colour on textured paper, edges that bleed and pool, granulation."""
    part, k = c.part, c.k
    res = part.shape[0]
    rng = _texture_rng(c.key)
    # Bleeding edges: the part map sampled through a small smooth warp (under half an output pixel).
    amp = 0.4 * k
    ii, jj = np.indices(part.shape)
    wi = np.clip(np.rint(ii + amp * _noise(rng, res, 9)), 0, res - 1).astype(np.intp)
    wj = np.clip(np.rint(jj + amp * _noise(rng, res, 9)), 0, res - 1).astype(np.intp)
    warped = part[wi, wj]
    pigment = c.colour(warped) / 255.0  # the print stays where the unwarped fabric has it
    # Transparent washes: paper * colour ** density, thinner where the granulation noise is low.
    density = 0.72 * (1 + 0.12 * _noise(rng, res, max(4, res // 6)))
    cover = (warped != BG).astype(np.float32)
    alpha = np.clip(_blur(cover, 0.35 * k), 0, 1)
    pooled = 1 - 0.35 * np.clip(alpha * (1 - alpha) * 4, 0, 1) * (alpha > 0.05)  # darker rims where washes end
    wash = np.clip(pigment, 1e-3, 1) ** density[..., None] * pooled[..., None]
    wash = _blur(wash * cover[..., None], 0.25 * k) / np.maximum(_blur(cover, 0.25 * k), 1e-3)[..., None]
    # Paper: warm white with a fine grain and a faint cloudy unevenness.
    grain = _blur(rng.standard_normal(part.shape).astype(np.float32), 0.6)
    paper = WATER_PAPER * (1 + 0.05 * grain + 0.015 * _noise(rng, res, 5))[..., None]
    return paper * (1 - alpha[..., None] + alpha[..., None] * np.clip(wash, 0, 1))
