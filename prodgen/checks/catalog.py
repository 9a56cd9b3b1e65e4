"""Checks for lessons 00 (welcome) and 01 (the product catalog)."""
from __future__ import annotations

import re

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_channels_first", "check_template", "check_normalization", "check_balanced_weights"]


# ------------------------------------------------------------------ lesson 00
@_check("channels first", "PyTorch wants channels first: use `image.permute(2, 0, 1)`")
def check_channels_first(to_channels_first) -> None:
    """Lesson 00: ``to_channels_first(H x W x C tensor) -> C x H x W tensor``."""
    torch = _torch()
    image = torch.arange(4 * 5 * 3).reshape(4, 5, 3)
    out = to_channels_first(image)
    _expect(isinstance(out, torch.Tensor), f"expected a tensor, got {type(out).__name__}")
    _expect(tuple(out.shape) == (3, 4, 5), f"a 4 x 5 x 3 image should become 3 x 4 x 5, got {tuple(out.shape)}")
    _expect(torch.equal(out[1], image[:, :, 1]),
            "the shape is right but pixels moved: out[c] must equal image[:, :, c] "
            "(reshape/view mixes pixels up, permute does not)")


# ------------------------------------------------------------------ lesson 01
@_check("description template", "write e.g. \"a [{size} ][{color} ]{category}[ by {brand}]\" and add the pattern")
def check_template(template: str) -> None:
    """Lesson 01: a template naming all five attributes, each optional but the category."""
    from prodgen.catalog.describe import fill_template

    _expect(isinstance(template, str), f"a template is a string, got {type(template).__name__}")
    _expect("{category}" in re.sub(r"\[[^\]]*\]", "", template),
            "{category} must be outside brackets: every description names the product")
    segments = re.findall(r"\[([^\[\]]*)\]", template)
    for name in ("color", "size", "brand", "pattern"):
        _expect(any(re.search(rf"\{{{name}(_phrase)?\}}", s) for s in segments),
                f"{{{name}}} (or {{{name}_phrase}}) should appear inside a [...] segment, so it can be left out")
    for s in segments:
        _expect(len(re.findall(r"\{\w+\}", s)) == 1, f"the segment [{s}] should hold exactly one placeholder")
    words = {"category": "mug", "color": "teal", "size": "small", "brand": "Acme", "pattern": "striped",
             "size_phrase": "in size S", "pattern_phrase": "with stripes", "color_phrase": "teal",
             "brand_phrase": "Acme", "category_phrase": "mug"}
    full = fill_template(template, words)
    for name in ("category", "color", "size", "brand", "pattern"):
        _expect(words[name] in full or words[name + "_phrase"] in full,
                f"filled with all attributes it reads {full!r}, which does not mention the {name}")
    only = fill_template(template, {"category": "mug"})
    _expect("mug" in only and not re.search(r"[{}\[\]]", only), f"with only the category it reads {only!r}")


@_check("normalise / denormalise", "normalize: x.float() / 127.5 - 1; denormalize: clamp to [-1, 1], "
        "then (x + 1) * 127.5, round, .to(torch.uint8)")
def check_normalization(normalize, denormalize) -> None:
    """Lesson 01: uint8 [0, 255] <-> float [-1, 1], exact round trip, clipping."""
    torch = _torch()
    pixels = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    x = normalize(pixels)
    _expect(isinstance(x, torch.Tensor) and x.is_floating_point(), "normalize must return a float tensor")
    _expect(x.shape == pixels.shape, f"normalize changed the shape {tuple(pixels.shape)} to {tuple(x.shape)}")
    _expect(abs(float(x.min()) + 1) < 1e-6 and abs(float(x.max()) - 1) < 1e-6,
            f"0 should map to -1 and 255 to 1; got min {float(x.min()):.3f}, max {float(x.max()):.3f}")
    _expect(abs(float(x[0, 0, 0, 1]) - (1 / 127.5 - 1)) < 1e-5, "the mapping should be linear: x / 127.5 - 1")
    back = denormalize(x)
    _expect(isinstance(back, torch.Tensor) and back.dtype == torch.uint8,
            f"denormalize must return uint8 pixels, got {getattr(back, 'dtype', type(back).__name__)}")
    _expect(torch.equal(back, pixels), "denormalize(normalize(p)) should give back p exactly (round before casting)")
    out_of_range = denormalize(torch.tensor([-1.7, 1.4, 0.0]))
    _expect(out_of_range.tolist() == [0, 255, 128],
            f"values outside [-1, 1] must be clipped: [-1.7, 1.4, 0.0] should give [0, 255, 128], "
            f"got {out_of_range.tolist()}")


@_check("balanced sampler weights", "count each class with torch.bincount(labels), then weight each sample "
        "by 1 / count[its label]")
def check_balanced_weights(balanced_weights) -> None:
    """Lesson 01: per-sample weights that make every class equally likely."""
    torch = _torch()
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 9 + [3] * 1)
    w = balanced_weights(labels)
    _expect(isinstance(w, torch.Tensor), f"expected a tensor, got {type(w).__name__}")
    _expect(tuple(w.shape) == (100,), f"one weight per sample: expected shape (100,), got {tuple(w.shape)}")
    w = w.double()
    _expect(bool((w > 0).all()), "every weight must be positive")
    per_class = torch.stack([w[labels == k].sum() for k in range(4)])
    _expect(bool(torch.allclose(per_class / per_class.sum(), torch.full((4,), 0.25, dtype=torch.double), atol=1e-6)),
            "each class should carry the same total weight; "
            f"shares are {[round(float(s), 3) for s in per_class / per_class.sum()]}")
