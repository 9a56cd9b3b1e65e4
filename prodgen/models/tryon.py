"""Virtual try-on models: a scene wearing a catalog product (lesson 15).

Every try-on model is an ``ImageModel`` (``prodgen.models.protocol``) with ``can_try_on``: ``try_on(scenes, slots,
photos, seed=0, **knobs)`` takes scenes (``prodgen.catalog.scenes.Scene``: the 64 px image, the slot masks and the
slot geometry), a slot per scene and a 64 px catalog photo per scene, and gives uint8 images. The learned model
(``tryon-64``, ``prodgen.models.tryon_latent``) implements the same ``_try_on``; ``prodgen.evaluation.tryon`` measures
either.

:class:`CutPaste` is the baseline the field starts from (issue 26 §2): the product is cut out of its photo
(:func:`segment`: the light studio background and its grey contact shadow are flood-filled from the border, so
what the fill cannot reach is the product), read off its silhouette (:func:`read_photos`: which of the slot's
categories by the box's aspect, which size by its scale, where its centre is), mapped into the slot by one affine
map per drawn copy (:func:`photo_to_slot`: the photo's product onto the slot's anchor for that category and size,
``prodgen.catalog.scenes.slot_anchors``, so a large shirt hangs from the same collar and a lamp stands on the
table), and composited inside the slot's mask only: every pixel outside the mask keeps its byte. Knob ``clear``:
``fill`` (default) first paints the mask from its surroundings (onion-peel fill), so no old product shows where
the new one is smaller; ``keep`` leaves the old product there.

What it gets wrong, by construction (``docs/tryon-baseline.md``, ``docs/tryon-baseline.png``): the pose (the
photo's flat, front-on product is pasted, not fitted to the body: its own small tilt kept), occlusion and what
lies under or behind the product (where the new product is smaller the fill smears instead of drawing the body,
the wall or the shirt behind a smaller bag), the scene's own drawing of details (the scene enlarges brand
marks and prints patterns at a physical scale; the photo's are pasted at the photo's scale: brands on shoes are
misread), and the segmentation (light soles and thin grey metal look like the studio background and are lost).
The photo's lighting, tint and outline come with it. Numbers: ``data/results/tryon.json``
(``benchmarks/tryon.py``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from prodgen.models.protocol import ImageModel, Knob, TryOnInputs
from prodgen.models.registry import ModelSpec

__all__ = ["SPECS", "CutPaste", "segment", "read_photos", "photo_to_slot", "PHOTO_CENTRE", "PHOTO_SCALE"]

PHOTO_CENTRE = (0.5, 0.48)  # where the catalog draws a product's centre, in frame units (render.draw_parameters)
PHOTO_SCALE = 0.765  # the frame fraction a medium product's unit box covers (render.SIZE_SCALE["medium"])
BORDER = 2  # the frame's outer rows and columns, mostly studio sweep
SWEEP_SLOPE = 22.0  # the catalog's sweep darkens by this much from the frame's top to its bottom (render.py, step 5)


def _background(photos: torch.Tensor) -> torch.Tensor:
    """The studio sweep behind each photo, N x 3 x H x 1: ``level - SWEEP_SLOPE * y`` (y in frame units), the level
    per channel (the photo's tint) the median over the border pixels, most of which show the sweep."""
    h, w = photos.shape[-2:]
    y = ((torch.arange(h, dtype=torch.float32) + 0.5) / h)[:, None]
    border = torch.zeros(h, w, dtype=torch.bool)
    border[:BORDER] = border[-BORDER:] = True
    border[:, :BORDER] = border[:, -BORDER:] = True
    level = (photos + SWEEP_SLOPE * y)[..., border].median(-1).values  # N x 3
    return (level[..., None, None] - SWEEP_SLOPE * y).clamp(min=1.0)


def segment(photos: torch.Tensor, spread: float = 0.08, darkest: float = 0.45) -> torch.Tensor:
    """The product in each catalog photo, N x H x W bool (photos uint8 N x 3 x H x W).

    A pixel looks like background when it is the sweep darkened alike in every channel (the grey shadow):
    its ratios to the sweep lie in ``[darkest, 1.08]`` and differ by less than ``spread``. Background is what
    those pixels reach from the border (4-connected); everything else is product."""
    x = photos.float()
    ratio = x / _background(x)
    hi, lo = ratio.max(1).values, ratio.min(1).values
    bg_like = (hi - lo < spread) & (lo > darkest) & (hi < 1.08)
    reached = torch.zeros_like(bg_like)
    reached[:, 0, :] = reached[:, -1, :] = True
    reached[:, :, 0] = reached[:, :, -1] = True
    reached &= bg_like
    cross = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.float32)[None, None]
    for _ in range(photos.shape[-1] * photos.shape[-2]):
        grown = (F.conv2d(reached[:, None].float(), cross, padding=1)[:, 0] > 0) & bg_like
        if torch.equal(grown, reached):
            break
        reached = grown
    return ~reached


def _boxes(masks: torch.Tensor) -> torch.Tensor:
    """Each mask's bounding box ``(x0, y0, x1, y1)`` in frame units (pixel edges), N x 4; an empty mask: the frame."""
    n, h, w = masks.shape
    rows, cols = masks.any(2), masks.any(1)
    first = lambda m, k: torch.where(m.any(1), m.float().argmax(1), 0).float() / k  # noqa: E731
    last = lambda m, k: torch.where(m.any(1), k - m.flip(1).float().argmax(1), k).float() / k  # noqa: E731
    return torch.stack([first(cols, w), first(rows, h), last(cols, w), last(rows, h)], 1)


_REFERENCE: dict[str, tuple] = {}


def _reference(category: str) -> tuple:
    """A medium ``category`` photographed without jitter, as :func:`segment` sees it: its box's width and height
    and the box centre's offset from :data:`PHOTO_CENTRE` (frame units). Rendered once per category."""
    if category not in _REFERENCE:
        from prodgen.catalog.render import render_array

        attrs = {"category": category, "color": "blue", "size": "medium", "brand": "acme", "pattern": "plain"}
        params = {"scale": PHOTO_SCALE, "angle": 0.0, "cx": PHOTO_CENTRE[0], "cy": PHOTO_CENTRE[1],
                  "brightness": 1.0, "tint": np.zeros(3, np.float32)}
        image = torch.from_numpy(render_array(attrs, 64, params)).permute(2, 0, 1)[None]
        x0, y0, x1, y1 = _boxes(segment(image))[0].tolist()
        _REFERENCE[category] = (x1 - x0, y1 - y0, (x0 + x1) / 2 - PHOTO_CENTRE[0], (y0 + y1) / 2 - PHOTO_CENTRE[1])
    return _REFERENCE[category]


def read_photos(products: torch.Tensor, slots: list) -> list[dict]:
    """What the baseline reads off each photo's silhouette (``products``: :func:`segment`'s masks): the slot's
    category whose medium box has the closest aspect, the scale against that box (``factor``; the nearest
    catalog size), and the product's centre in the photo. ``{"category", "size", "factor", "centre"}`` per photo."""
    from prodgen.catalog.render import SIZE_SCALE
    from prodgen.catalog.scenes import SLOTS

    out = []
    for (x0, y0, x1, y1), slot in zip(_boxes(products).tolist(), slots):
        w, h = max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)
        cats = SLOTS[slot].categories
        cat = min(cats, key=lambda c: abs(math.log(w / _reference(c)[0]) - math.log(h / _reference(c)[1])))
        rw, rh, ox, oy = _reference(cat)
        factor = math.sqrt(w / rw * h / rh)
        size = min(SIZE_SCALE, key=lambda k: abs(math.log(factor * SIZE_SCALE["medium"] / SIZE_SCALE[k])))
        out.append({"category": cat, "size": size, "factor": factor,
                    "centre": ((x0 + x1) / 2 - factor * ox, (y0 + y1) / 2 - factor * oy)})
    return out


def photo_to_slot(anchor: tuple, photo_centre: tuple = PHOTO_CENTRE, photo_scale: float = PHOTO_SCALE) -> torch.Tensor:
    """The 2 x 3 ``affine_grid`` matrix that samples a photo for one slot anchor ``(cx, cy, sx, sy, angle)``.

    A scene point P (frame units) lies at product coordinates ``D^-1 R(-angle) (P - c)`` (the scene's pen,
    ``D = diag(sx, sy)``), which the photo draws at ``photo_centre + photo_scale * (u, v)``; in
    ``align_corners=False`` units (``2 P - 1``) that is ``Q_n = A P_n + 2 c0 - 1 + A (1 - 2 c)``."""
    cx, cy, sx, sy, angle = (float(a) for a in anchor)
    cos, sin = math.cos(angle), math.sin(angle)
    a = photo_scale * torch.tensor([[cos / sx, sin / sx], [-sin / sy, cos / sy]], dtype=torch.float64)
    c0 = torch.tensor(photo_centre, dtype=torch.float64)
    shift = 2 * c0 - 1 + a @ (1 - 2 * torch.tensor([cx, cy], dtype=torch.float64))
    return torch.cat([a, shift[:, None]], 1).float()


def _fill(scenes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Paint each mask from its surroundings, ring by ring (onion peel): the mean of the known 3 x 3 neighbours."""
    img, known = scenes.clone(), ~masks[:, None]
    box = torch.ones(1, 1, 3, 3)
    for _ in range(scenes.shape[-1]):
        if known.all():
            break
        count = F.conv2d(known.float(), box, padding=1)
        total = F.conv2d((img * known).reshape(-1, 1, *img.shape[-2:]), box, padding=1).reshape(img.shape)
        new = (count > 0) & ~known
        img = torch.where(new, total / count.clamp(min=1), img)
        known = known | new
    return img


class CutPaste(ImageModel):
    """The cut-and-paste try-on baseline (no weights): segment, warp to the slot's anchor, paste inside the mask.

    Registered as ``cut-paste`` (:data:`SPECS`), a weightless spec: the registry builds it, it loads nothing."""

    accepts = "nothing"
    can_try_on = True
    generates = False
    image_size = 64

    def __init__(self, network: nn.Module | None = None, name: str = "cut-paste", info: dict | None = None):
        super().__init__(nn.Identity() if network is None else network, name, info)

    @property
    def knobs(self) -> dict[str, Knob]:
        return {"clear": Knob("clear", "fill", choices=("fill", "keep"),
                              doc="fill: the mask is first painted from its surroundings; keep: the old product "
                                  "shows where the new one does not cover the slot's mask")}

    def _try_on(self, inputs: TryOnInputs, seed: int, clear: str = "fill") -> torch.Tensor:
        from prodgen.catalog.scenes import slot_anchors

        scenes = inputs.scenes.float()
        masks = inputs.masks[:, None]
        base = _fill(scenes, inputs.masks) if clear == "fill" else scenes
        products = segment(inputs.photos)
        alpha = products.float()[:, None]
        photo = torch.cat([inputs.photos.float() * alpha, alpha], 1)  # premultiplied RGB + alpha
        read = read_photos(products, inputs.slots)
        anchors = [slot_anchors(p, s, r["category"], r["size"]) for p, s, r in zip(inputs.params, inputs.slots, read)]
        out = base
        for k in range(max(len(a) for a in anchors)):  # the shoes: one copy per foot
            rows = [i for i, a in enumerate(anchors) if len(a) > k]
            theta = torch.stack([photo_to_slot(anchors[i][k], read[i]["centre"], PHOTO_SCALE * read[i]["factor"])
                                 for i in rows])
            grid = F.affine_grid(theta, [len(rows), 4, *scenes.shape[-2:]], align_corners=False)
            warped = F.grid_sample(photo[rows], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            a = warped[:, 3:]
            out = out.clone()
            out[rows] = out[rows] * (1 - a) + warped[:, :3]
        out = torch.where(masks, out, scenes)
        return out.round().clamp(0, 255).to(torch.uint8)


SPECS = (ModelSpec("cut-paste", "tryon", build=None, model=CutPaste, lesson=15, resolution=64,
                   summary="the cut-and-paste try-on baseline: the photo's product segmented, warped to the slot's "
                           "anchor and pasted inside its mask (no weights)"),)
