"""Checks for lesson 12 (capstone: bring your own catalog): a drawing function for one product type, the audit of a
catalog (counts per value, exact duplicates) and the per-attribute control table.

Each check runs the answer on small inputs it makes itself and, when the answer is wrong, names the usual mistake
(a drawing that ignores its position, size or colour, or looks like another product; unknown labels counted as a
value, a value with no photos left out, copies reported the wrong way round or by label instead of by pixels;
unrequested attributes counted as misses, a mean over cells instead of over attributes).
"""
from __future__ import annotations

import math

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_draw_product", "check_audit", "check_control_table"]


# ------------------------------------------------------------------ drawing one product type
CANVAS = 128  # the lesson draws at 4 x 32 px and reduces
_BACKGROUND = (12, 12, 12)


def _silhouette(draw_fn, cx: float, cy: float, r: float, fill=(200, 40, 40)):
    """``(mask, pixels)``: what ``draw_fn(draw, cx, cy, r, fill)`` painted on an empty RGB canvas."""
    import numpy as np
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (CANVAS, CANVAS), _BACKGROUND)
    draw_fn(ImageDraw.Draw(im), cx, cy, r, fill)
    pixels = np.asarray(im)
    return (pixels != np.array(_BACKGROUND, np.uint8)).any(axis=2), pixels


def _iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _shift(mask, dx: int, dy: int):
    import numpy as np

    out = np.zeros_like(mask)
    h, w = mask.shape
    into = (slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0)))
    out[into] = mask[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


@_check("draw a product", "draw with `draw.polygon(...)` / `draw.ellipse(...)` "
        "using points like (cx + r * x, cy + r * y) "
        "for a shape of your own with x, y in [-1, 1], and fill=fill everywhere")
def check_draw_product(draw_fn, others: dict | None = None, name: str = "jug") -> None:
    """Lesson 12: ``draw_fn(draw, cx, cy, r, fill)`` paints one product (``name``) centred near ``(cx, cy)``, inside the
    square of half-side ``r``, in the colour ``fill`` only; it must follow ``cx``, ``cy`` and ``r`` (the jitter) and
    look unlike each of ``others`` (``{product: drawing function}``, the catalog's other product types)."""
    import numpy as np

    _expect(callable(draw_fn), f"draw_{name} should be a function, got {type(draw_fn).__name__}")
    cx, cy, r = 64.0, 66.0, 40.0
    fill = (200, 40, 40)
    mask, pixels = _silhouette(draw_fn, cx, cy, r, fill)
    area = mask.mean() * CANVAS * CANVAS / (2 * r) ** 2  # share of the 2r x 2r box
    _expect(mask.any(), "nothing was drawn: draw the shape on `draw` (e.g. draw.polygon(points, fill=fill))")
    painted = pixels[mask]
    _expect(bool((painted == np.array(fill, np.uint8)).all()),
            f"some pixels are not the colour `fill` {fill}: paint everything with fill=fill (the glaze is another "
            f"attribute, chosen by the caller; outline= with another colour or a hard-coded colour breaks that)")
    ys, xs = np.nonzero(mask)
    box = 1.05 * r + 1
    _expect(xs.min() >= cx - box and xs.max() <= cx + box and ys.min() >= cy - box and ys.max() <= cy + box,
            f"the drawing reaches outside the square of half-side r around (cx, cy) (drawn from x {xs.min()} to "
            f"{xs.max()}, y {ys.min()} to {ys.max()}; allowed {cx - r:.0f} to {cx + r:.0f}, {cy - r:.0f} to "
            f"{cy + r:.0f}): keep every point at (cx + r * x, cy + r * y) with x, y in [-1, 1]")
    _expect(area >= 0.08, f"the product covers only {area:.0%} of its 2r x 2r square: at 32 x 32 pixels it would be a "
            f"few dots; make it larger (at least about a tenth of the square)")
    _expect(area <= 0.9, f"the product fills {area:.0%} of its square: it is a block, not a shape; leave some "
            f"background around it")
    moved, _ = _silhouette(draw_fn, cx - 14, cy + 6, r, fill)
    _expect(_iou(moved, _shift(mask, -14, 6)) >= 0.85,
            "drawn at (cx - 14, cy + 6) the shape should move by (-14, +6) and stay the same: use cx and cy in every "
            "point (the catalog jitters the position; without it every photo of the product sits in one place)")
    small, _ = _silhouette(draw_fn, cx, cy, r / 2, fill)
    ratio = small.sum() / mask.sum()
    _expect(0.15 <= ratio <= 0.4, f"with half the r the drawing should cover about a quarter of the pixels, but it "
            f"covers {ratio:.2f} of them: multiply every offset from the centre by r (the catalog jitters the size)")
    for other, fn in (others or {}).items():
        if other == name or fn is draw_fn:
            continue
        theirs, _ = _silhouette(fn, cx, cy, r, fill)
        overlap = _iou(mask, theirs)
        _expect(overlap < 0.8, f"your {name} covers the same pixels as the {other} ({overlap:.0%} overlap): "
                f"a judge could not tell them apart, so nobody could ask for one and get it; give it its own outline")


# ------------------------------------------------------------------ the audit
def _audit_inputs():
    """A small catalog with unknown labels, an empty value, exact copies (one relabelled) and a near-copy."""
    torch = _torch()
    from prodgen.catalog.schema import Schema

    schema = Schema({"product": ["bowl", "cup", "vase"], "glaze": ["blue", "green"]})
    gen = torch.Generator().manual_seed(120)
    images = torch.randint(0, 256, (12, 3, 4, 4), generator=gen, dtype=torch.uint8)
    labels = torch.tensor([[0, 0], [1, 1], [0, 1], [1, 0], [0, 0], [1, -1], [0, 1], [1, 1], [-1, 0], [0, 1], [1, 0],
                           [0, 0]])
    images[4] = images[0]  # an exact copy, same labels
    images[7] = images[1]  # an exact copy ...
    images[10] = images[1]  # ... and a second copy of the same photo, relabelled
    labels[10] = torch.tensor([1, 0])
    images[9] = images[2]
    images[9, 0, 0, 0] ^= 1  # differs in one pixel value: not an exact copy
    labels[9] = labels[2]  # ... and has the same labels as its look-alike
    duplicates = [(0, 4), (1, 7), (1, 10)]
    counts = {"product": {"bowl": 6, "cup": 5, "vase": 0}, "glaze": {"blue": 6, "green": 5}}
    return images, labels, schema, counts, duplicates


def _pairs(found, what: str):
    _expect(isinstance(found, (list, tuple)), f"'duplicates' should be a list of (first, copy) pairs, got "
            f"{type(found).__name__}")
    pairs = []
    for p in found:
        _expect(isinstance(p, (list, tuple)) and len(p) == 2, f"each entry of {what} should be a pair (first, copy), "
                f"got {p!r}")
        pairs.append((int(p[0]), int(p[1])))
    return pairs


@_check("audit", "counts: for each attribute j, {value: int((labels[:, j] == k).sum()) for k, value in "
        "enumerate(values)}; duplicates: remember the first index of each image's bytes (images[i].numpy().tobytes()) "
        "in a dict and report (first, i) for every later image with the same bytes")
def check_audit(audit) -> None:
    """Lesson 12: ``audit(images, labels, schema) -> {"counts": {attribute: {value: n}}, "duplicates": [(first, copy),
    ...]}``: images per value (unknown labels, -1, not counted; every value listed, also with 0) and exact copies
    (same pixels), each later copy paired with the first image it copies, in order."""
    images, labels, schema, counts, duplicates = _audit_inputs()
    copies = (images.clone(), labels.clone())
    out = audit(images, labels, schema)
    _expect(_torch().equal(images, copies[0]) and _torch().equal(labels, copies[1]),
            "your function changed the images or labels in place; only read them")
    _expect(isinstance(out, dict) and {"counts", "duplicates"} <= set(out),
            f"return a dict with the keys 'counts' and 'duplicates', got {type(out).__name__}"
            + (f" with keys {sorted(out)}" if isinstance(out, dict) else ""))
    got = out["counts"]
    _expect(isinstance(got, dict) and set(got) == set(schema.names),
            f"'counts' should have one entry per attribute ({', '.join(schema.names)}), got "
            f"{sorted(got) if isinstance(got, dict) else type(got).__name__}")
    for a in schema.names:
        per = got[a]
        _expect(isinstance(per, dict), f"counts[{a!r}] should be a dict value -> number of images")
        per = {str(k): int(v) for k, v in per.items()}
        _expect("-1" not in per and "unknown" not in per and "" not in per,
                f"counts[{a!r}] has an entry for the unknown label -1: an empty cell is not a value; skip it")
        missing = [v for v in schema.values[a] if v not in per]
        _expect(not missing, f"counts[{a!r}] leaves out {', '.join(missing)}: list every value of the schema, also "
                f"one with 0 images (the value nobody photographed is the one to see)")
        extra = [v for v in per if v not in schema.values[a]]
        _expect(not extra, f"counts[{a!r}] has values the schema lacks: {', '.join(extra)}; use the value names of "
                f"schema.values[{a!r}] as keys")
        if per != counts[a]:
            known = sum(counts[a].values())
            _expect(sum(per.values()) != len(labels) or known == len(labels),
                    f"counts[{a!r}] adds up to all {len(labels)} images, but some have no {a} (label -1): count only "
                    f"labels >= 0")
            _expect(False, f"counts[{a!r}] is {per}, expected {counts[a]}: count the images whose label in column "
                    f"{schema.names.index(a)} equals each value's index")
    pairs = _pairs(out["duplicates"], "'duplicates'")
    if sorted(pairs) != duplicates:
        valid = [p for p in pairs if 0 <= min(p) and max(p) < len(images)]
        _expect(len(valid) == len(pairs),
                f"got {pairs}: the indices must be those of the images (0 to {len(images) - 1})")
        by_label = [p for p in pairs if p != (2, 9) and not _torch().equal(images[p[0]], images[p[1]])
                    and _torch().equal(labels[p[0]], labels[p[1]])]
        _expect(not by_label, "you paired images with the same labels; a duplicate is the same PIXELS "
                "(many different photos share labels): compare images[i] with the earlier images")
        _expect(not any(p[0] > p[1] for p in pairs), f"got {pairs}: put the first image first, (first, copy), "
                f"where first < copy")
        _expect((2, 9) not in pairs, "images 2 and 9 differ in one pixel value, so they are not exact copies: compare "
                "all the pixels themselves, not the labels or a summary such as the mean")
        _expect(not ((7, 10) in pairs and (1, 10) not in pairs),
                "image 10 is a copy of image 1 (and of its copy 7): pair every copy with the FIRST image it copies, "
                "(1, 10), not with the copy before it")
        _expect(len(pairs) == len(set(pairs)), f"got {pairs}: report each copy once")
        _expect((1, 10) in pairs, "image 10 copies image 1 but has other labels: a duplicate is the same pixels, "
                "whatever its labels say (a copy with other labels is the worse problem: the same photo teaches two "
                "answers)")
        _expect(False, f"duplicates {sorted(pairs)}, expected {duplicates}: report each later image whose pixels equal "
                f"an earlier one's, once, as (first, copy)")
    _expect(list(pairs) == sorted(pairs), f"list the pairs in order of the copy ({sorted(pairs)}), not {pairs}")


# ------------------------------------------------------------------ the control table
def _control_inputs():
    """Judge predictions and requests with unspecified attributes (-1), for three attributes."""
    torch = _torch()
    names = ("product", "glaze", "pattern")
    requested = torch.tensor([[0, 1, 2], [1, -1, 0], [2, 2, -1], [3, 0, 1], [4, -1, -1], [0, 3, 2], [1, 4, -1],
                              [-1, 1, 0], [2, 2, 1], [3, -1, 2]])
    predicted = torch.tensor([[0, 1, 2], [1, 3, 1], [2, 2, 0], [0, 0, 1], [4, 2, 2], [0, 3, 0], [1, 1, 1], [2, 1, 0],
                              [2, 2, 1], [1, 0, 2]])
    return predicted, requested, names


def _reference_table(predicted, requested, names) -> dict:
    table = {}
    for j, a in enumerate(names):
        asked = requested[:, j] >= 0
        if asked.any():
            table[a] = float((predicted[asked, j] == requested[asked, j]).double().mean())
    table["mean"] = sum(table.values()) / len(table)
    return table


@_check("control table", "for each attribute j: asked = requested[:, j] >= 0; share = (predicted[asked, j] == "
        "requested[asked, j]).float().mean(); 'mean' is the average of the attributes' shares")
def check_control_table(control_table) -> None:
    """Lesson 12: ``control_table(predicted, requested, names) -> {attribute: share, ..., "mean": m}``: per attribute,
    the share of the requests that asked for it (``requested >= 0``) where the judge saw the requested value; attributes
    never asked for are left out; ``mean`` averages the attributes."""
    torch = _torch()
    predicted, requested, names = _control_inputs()
    copies = (predicted.clone(), requested.clone())
    out = control_table(predicted, requested, names)
    _expect(torch.equal(predicted, copies[0]) and torch.equal(requested, copies[1]),
            "your function changed its inputs in place; only read them")
    want = _reference_table(predicted, requested, names)
    _expect(isinstance(out, dict), f"return a dict attribute -> share, got {type(out).__name__}")
    _expect(set(out) == set(want), f"the table should have the keys {', '.join(want)}, got {', '.join(map(str, out))}")
    got = {k: float(v) for k, v in out.items()}
    _expect(all(math.isfinite(v) for v in got.values()), f"the table has NaN or infinite entries: {got}")
    wrong = [a for a in names if abs(got[a] - want[a]) > 1e-6]
    if wrong:
        a = wrong[0]
        j = names.index(a)
        all_rows = float((predicted[:, j] == requested[:, j]).double().mean())
        _expect(abs(got[a] - all_rows) > 1e-6,
                f"{a}: {got[a]:.3f} counts the requests that left {a} open (-1) as misses; divide by the requests "
                f"that asked for it (requested[:, j] >= 0): {want[a]:.3f}")
        _expect(abs(got[a] - (1 - want[a])) > 1e-6, f"{a}: {got[a]:.3f} is the share of misses; give the share of hits")
        _expect(False, f"{a}: got {got[a]:.3f}, expected {want[a]:.3f} (share of the requests for {a} that the judge "
                f"read as asked)")
    asked = requested >= 0
    pooled = float((predicted[asked] == requested[asked]).double().mean())
    if abs(got["mean"] - want["mean"]) > 1e-6:
        _expect(abs(got["mean"] - pooled) > 1e-6,
                f"'mean' {got['mean']:.3f} pools all requested cells, so attributes asked for more often weigh more; "
                f"average the attributes' shares: {want['mean']:.3f}")
        _expect(False, f"'mean' should be the average of the attributes' shares, {want['mean']:.3f}, "
                f"got {got['mean']:.3f}")
    # an attribute nobody asked for has no share: it is left out, not 0 or NaN
    only = requested.clone()
    only[:, 2] = -1
    partial = control_table(predicted, only, names)
    _expect(isinstance(partial, dict) and "pattern" not in partial,
            "when no request asks for an attribute (its column all -1) leave it out of the table: there is nothing "
            "to measure (a 0 would say it was never obeyed, NaN breaks the mean)")
    _expect(abs(float(partial.get("mean", float("nan"))) - _reference_table(predicted, only, names)["mean"]) < 1e-6,
            "with an attribute left out, 'mean' averages the attributes that were asked for")
