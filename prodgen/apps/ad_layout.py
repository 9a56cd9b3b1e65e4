"""Banner layout for ``prodgen ads``: the standard display sizes, text fitted in pixels, one banner drawn.

- **Sizes** (:data:`IAB_SIZES`, :func:`parse_sizes`): the IAB's standard display-ad sizes by name or any ``WxH``
  within :data:`MIN_SIDE`..:data:`MAX_SIDE` pixels and at most :data:`MAX_ASPECT`:1.
- **Fonts** (:func:`default_fonts`): a chain of font faces, each character drawn by the first face that has it:
  DejaVu Sans (Latin, digits, currency signs; it ships with matplotlib) and the course's CJK subset
  (``prodgen/fonts``). :func:`undrawable` names the characters no face has, so a headline is refused rather than
  drawn as empty boxes ("tofu").
- **Text fitted in pixels** (:func:`fit`): the largest font size at which the text, wrapped between words
  (English) or characters (Chinese; ``prodgen.viz.break_units``), fits its box in width and height, measured
  with the fonts' own advances and ink boxes; at the smallest size, text that still does not fit is shortened
  at a word or character boundary with "…". Text never leaves its box and no glyph is cut.
- **Layout** (:func:`layout`): boxes for the product, brand, headline, price and call to action, in three
  arrangements chosen by the aspect ratio: a row (wide formats such as 728x90), a column (tall ones such as
  160x600) and a brand band over the product beside the text (boxy ones such as 300x250).
- **Drawing** (:func:`draw_banner`): the banner as a PIL image, deterministic (same inputs, same pixels).

Used by ``prodgen.apps.ads`` (``prodgen ads``) and lesson 16.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

__all__ = ["IAB_SIZES", "MIN_SIDE", "MAX_SIDE", "MAX_ASPECT", "MAX_SIZES", "MIN_FONT", "Face", "Fitted", "AdContent",
           "parse_sizes", "default_fonts", "font_face", "undrawable", "fit", "draw_text", "layout", "unfit",
           "draw_banner", "NEUTRAL_RGB", "BACKGROUND", "INK"]

IAB_SIZES = {
    "medium-rectangle": (300, 250), "large-rectangle": (336, 280), "square": (250, 250),
    "small-square": (200, 200), "leaderboard": (728, 90), "large-leaderboard": (970, 90), "banner": (468, 60),
    "mobile-banner": (320, 50), "billboard": (970, 250), "skyscraper": (120, 600), "wide-skyscraper": (160, 600),
    "half-page": (300, 600), "portrait": (300, 1050),
}
"""The IAB's standard display-ad sizes (width, height) by name; ``--size`` takes a name or ``WxH``."""
MIN_SIDE, MAX_SIDE = 50, 2000
MAX_ASPECT = 12  # 970x90 (the large leaderboard) is 10.8:1
MAX_SIZES = 16
MIN_FONT = 8  # pixels: the smallest text drawn (a headline that does not fit at 8 px is shortened with "…")
MIN_LINE = 14  # pixels: the height of a line of MIN_FONT text in the default fonts (13), and one to spare
MIN_WIDE_WIDTH, MIN_WIDTH, MIN_HEIGHT = 234, 120, 90  # wide formats (the IAB half banner: 234x60); the others
NEUTRAL_RGB = (52, 58, 64)
"""The band and button colour of a product whose brand is not known (a request that left the brand open)."""
BACKGROUND, INK, BORDER, WHITE = (250, 250, 247), (28, 30, 34), (200, 200, 196), (255, 255, 255)
ELLIPSIS = "…"
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x×X]\s*(\d{1,5})\s*$")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"300x250,728x90,leaderboard"`` -> ``[(300, 250), (728, 90)]`` (repeats dropped, order kept); a size that
    is not ``WxH`` or a name of :data:`IAB_SIZES`, or outside the limits -> ``ValueError`` saying what is valid."""
    sizes = []
    for part in str(text).split(","):
        if not part.strip():
            continue
        name = part.strip().lower()
        match = _SIZE.match(part)
        if name in IAB_SIZES:
            size = IAB_SIZES[name]
        elif match:
            size = (int(match[1]), int(match[2]))
        else:
            raise ValueError(f"--size {part.strip()[:40]!r} is not WxH (e.g. 300x250) or a standard size name "
                             f"({', '.join(IAB_SIZES)})")
        w, h = size
        if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
            raise ValueError(f"--size {w}x{h}: each side must be {MIN_SIDE} to {MAX_SIDE} pixels")
        if max(w, h) > MAX_ASPECT * min(w, h):
            raise ValueError(f"--size {w}x{h} is too thin for a banner: at most {MAX_ASPECT}:1 (970x90 is 10.8:1)")
        if (w < MIN_WIDE_WIDTH) if _shape(w, h) == "wide" else (w < MIN_WIDTH or h < MIN_HEIGHT):
            raise ValueError(f"--size {w}x{h} is too small for a product, a headline, a price and a button: a wide "
                             f"banner needs at least {MIN_WIDE_WIDTH} pixels of width, others {MIN_WIDTH}x{MIN_HEIGHT}")
        if size not in sizes:
            sizes.append(size)
    if not sizes:
        raise ValueError("--size is empty; give sizes such as 300x250,728x90,160x600")
    if len(sizes) > MAX_SIZES:
        raise ValueError(f"--size gives {len(sizes)} sizes; at most {MAX_SIZES} per run")
    return sizes


# ----------------------------------------------------------------------------- fonts
@dataclass(frozen=True)
class Face:
    """One font file (``index``: the face of a collection) in a chain of fonts."""

    path: str
    index: int = 0

    @property
    def cmap(self) -> frozenset:
        return _cmap(self.path, self.index)

    def font(self, size: int):
        return _font(self.path, self.index, int(size))


@cache
def _cmap(path: str, index: int) -> frozenset:
    from fontTools.ttLib import TTFont

    with TTFont(path, fontNumber=index, lazy=True) as font:
        return frozenset(font.getBestCmap())


@lru_cache(maxsize=512)
def _font(path: str, index: int, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size, index=index, layout_engine=ImageFont.Layout.BASIC)


def default_fonts(bold: bool = True) -> tuple[Face, ...]:
    """DejaVu Sans (bold or regular; shipped with matplotlib, so present wherever the course runs) for Latin text,
    then the course's CJK subset (``prodgen.fonts.FONT_FILE``) for Chinese."""
    import matplotlib

    from prodgen.fonts import FONT_FILE

    latin = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return Face(str(latin)), Face(str(FONT_FILE))


def font_face(path, index: int = 0) -> Face:
    """A font file (TrueType, OpenType or a collection: face ``index``) to add to the chain, checked: a missing
    file or one that is not a font -> ``FileNotFoundError`` / ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--font {path}: no such file; give a TrueType or OpenType font (.ttf, .otf, .ttc)")
    face = Face(str(path.resolve()), int(index))
    try:
        face.cmap, face.font(12)
    except Exception as e:  # fontTools and FreeType raise many kinds of errors on a file that is not a font
        raise ValueError(f"--font {path} is not a font file FreeType can read ({type(e).__name__}); give a .ttf, "
                         ".otf or .ttc file") from None
    return face


def undrawable(text: str, faces) -> str:
    """The characters of ``text`` (spaces aside) that no face of ``faces`` can draw, each once, in order."""
    missing = [c for c in dict.fromkeys(text) if not c.isspace() and not any(ord(c) in f.cmap for f in faces)]
    return "".join(missing)


def _runs(text: str, faces) -> list[tuple[Face, str]]:
    """``text`` cut into runs each drawn by one face: the first that has the character (a space stays with the run
    before it when that face has a space)."""
    runs: list[list] = []
    for c in text:
        face = next((f for f in faces if ord(c) in f.cmap), faces[0])
        if c.isspace() and runs and ord(c) in runs[-1][0].cmap:
            face = runs[-1][0]
        if runs and runs[-1][0] == face:
            runs[-1][1] += c
        else:
            runs.append([face, c])
    return [(f, t) for f, t in runs]


@lru_cache(maxsize=8192)
def _extent(text: str, faces: tuple, size: int) -> tuple[int, int]:
    """``(left, right)`` of a line in pixels from its pen origin: the ink's left edge (<= 0) and the larger of
    the advance and the ink's right edge."""
    x, left, right = 0.0, 0.0, 0.0
    for face, run in _runs(text, faces):
        font = face.font(size)
        box = font.getbbox(run, anchor="ls")
        left, right = min(left, x + box[0]), max(right, x + box[2])
        x += font.getlength(run)
    return math.floor(left), math.ceil(max(right, x))


def _width(text: str, faces: tuple, size: int) -> int:
    left, right = _extent(text, faces, size)
    return right - left


def _metrics(faces: tuple, size: int) -> tuple[int, int]:
    """``(ascent, line height)`` at ``size`` for the chain (the largest of its faces')."""
    ascent = max(f.font(size).getmetrics()[0] for f in faces)
    descent = max(f.font(size).getmetrics()[1] for f in faces)
    return ascent, ascent + descent


@dataclass(frozen=True)
class Fitted:
    """Text fitted into a box: its font size, its lines, and the pixel metrics :func:`draw_text` uses."""

    size: int
    lines: tuple[str, ...]
    ascent: int
    line_height: int
    shortened: bool = False

    @property
    def height(self) -> int:
        return self.line_height * len(self.lines)


def _join(units) -> str:
    return "".join((" " if space and i else "") + piece for i, (space, piece) in enumerate(units))


def _wrap(units, faces: tuple, size: int, width: int) -> list[list] | None:
    """Units greedily wrapped into lines no wider than ``width``; ``None`` if one unit alone is wider."""
    lines: list[list] = [[]]
    for unit in units:
        if lines[-1] and _width(_join(lines[-1] + [unit]), faces, size) > width:
            lines.append([])
        lines[-1].append(unit)
        if len(lines[-1]) == 1 and _width(unit[1], faces, size) > width:
            return None
    return [line for line in lines if line]


def _shorten(units, faces: tuple, size: int, width: int) -> str:
    """The longest run of whole units from the start that fits in ``width`` with "…" after it; a first unit
    wider than the line is cut between characters (never inside one, nor before a combining mark)."""
    units = list(units)
    while len(units) > 1 and _width(_join(units) + ELLIPSIS, faces, size) > width:
        units.pop()
    text = _join(units).rstrip(",;:，、：；-— ")
    while text and (_width(text + ELLIPSIS, faces, size) > width or unicodedata.combining(text[-1])):
        text = text[:-1]
    return text + ELLIPSIS if _width(text + ELLIPSIS, faces, size) <= width else ""


def fit(text: str, faces, width: int, height: int, max_size: int, max_lines: int = 3,
        min_size: int = MIN_FONT) -> Fitted | None:
    """``text`` (one paragraph: whitespace runs become one space) at the largest size in ``min_size..max_size``
    at which it wraps into at most ``max_lines`` lines inside ``width`` x ``height`` pixels; if none, at
    ``min_size`` with as many lines as fit, the last one shortened with "…". ``None`` when not even one line
    of ``min_size`` fits the box (or the text is empty)."""
    from prodgen.viz import break_units

    faces = tuple(faces)
    units = break_units(" ".join(str(text).split()))
    if not units or width < 1 or height < 1:
        return None
    for size in range(max(min_size, int(max_size)), min_size - 1, -1):
        ascent, line_height = _metrics(faces, size)
        lines = _wrap(units, faces, size, width)
        if lines is not None and len(lines) <= max_lines and len(lines) * line_height <= height:
            return Fitted(size, tuple(_join(line) for line in lines), ascent, line_height)
    ascent, line_height = _metrics(faces, min_size)
    room = min(max_lines, height // line_height)
    if room < 1:
        return None
    lines = _wrap(units, faces, min_size, width) or []
    kept = [_join(line) for line in lines[:room - 1]] if lines else []
    rest = [u for line in lines[len(kept):] for u in line] if lines else units
    last = _shorten(rest, faces, min_size, width)
    lines_out = tuple(kept + ([last] if last else []))
    return Fitted(min_size, lines_out, ascent, line_height, shortened=True) if lines_out else None


def draw_text(draw, fitted: Fitted, box, faces, fill, align: str = "left", valign: str = "center",
              stroke: int = 0) -> list[tuple[int, int, int, int]]:
    """Draw ``fitted`` text inside ``box`` (x0, y0, x1, y1); returns each line's pixel box (inside ``box``)."""
    faces = tuple(faces)
    x0, y0, x1, y1 = box
    top = y0 + {"top": 0, "center": (y1 - y0 - fitted.height) // 2, "bottom": y1 - y0 - fitted.height}[valign]
    drawn = []
    for i, line in enumerate(fitted.lines):
        left, right = _extent(line, faces, fitted.size)
        free = (x1 - x0) - (right - left)
        x = x0 + {"left": 0, "center": free // 2, "right": free}[align] - left
        baseline = top + fitted.ascent + i * fitted.line_height
        pen = float(x)
        for face, run in _runs(line, faces):
            font = face.font(fitted.size)
            draw.text((pen, baseline), run, font=font, fill=fill, anchor="ls")
            pen += font.getlength(run)
        drawn.append((x + left, baseline - fitted.ascent, x + right, baseline - fitted.ascent + fitted.line_height))
    return drawn


# ----------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class AdContent:
    """What one banner says: the headline, the price (already formatted, "" = none), the call to action, the
    brand's display name ("" = unknown), its colour (RGB) and its logo kind (``BRAND_LOGOS``; ``None``: none)."""

    headline: str
    price: str
    cta: str
    brand: str = ""
    colour: tuple = NEUTRAL_RGB
    logo: str | None = None


def _shape(w: int, h: int) -> str:
    return "wide" if w >= 2.5 * h else "tall" if h >= 1.4 * w else "box"


def layout(w: int, h: int) -> dict[str, tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) of a ``w`` x ``h`` banner: ``band`` (the brand's colour), ``brand`` (mark and name),
    ``product`` (a square), ``headline``, ``price`` and ``cta`` (the button). Wide formats put them in a row,
    tall ones in a column, boxy ones put the band on top, the headline beside the product and the price and the
    button side by side under them. The price and the button are at least :data:`MIN_LINE` pixels high (a line
    of :data:`MIN_FONT` text), the headline at least two such lines in tall formats."""
    m = max(4, round(min(w, h) * 0.06))
    shape = _shape(w, h)
    if shape == "wide":
        side = inner = h - 2 * m
        panel = min(round(0.34 * w), round(2.4 * h))
        text_x0, text_x1 = 2 * m + side, w - panel - m
        brand_h, price_h = round(0.28 * inner), max(MIN_LINE, round(0.40 * inner))
        return {"band": (w - panel, 0, w, h), "product": (m, m, m + side, m + side),
                "brand": (text_x0, m, text_x1, m + brand_h), "headline": (text_x0, m + brand_h, text_x1, h - m),
                "price": (w - panel + m, m, w - m, m + price_h),
                "cta": (w - panel + m, m + price_h + max(2, m // 2), w - m, h - m)}
    cta_h = max(MIN_LINE + 8, round(min(0.09 * h, 0.3 * w) if shape == "tall" else 0.16 * h))
    price_h = max(MIN_LINE + 2, round(0.8 * cta_h if shape == "tall" else 0.14 * h))
    cta = (m, h - m - cta_h, w - m, h - m)
    price = (m, cta[1] - m // 2 - price_h, w - m, cta[1] - m // 2)
    if shape == "tall":
        band = max(round(0.07 * h), round(0.2 * w))
        side = min(w - 2 * m, price[1] - band - 3 * m - 2 * MIN_LINE)
        top = band + m
        return {"band": (0, 0, w, band), "brand": (m, m // 2, w - m, band - m // 2),
                "product": ((w - side) // 2, top, (w - side) // 2 + side, top + side),
                "headline": (m, top + side + m, w - m, price[1] - m // 2), "price": price, "cta": cta}
    band, row = round(0.14 * h), max(MIN_LINE + 8, round(0.17 * h))
    mid_top, mid_bottom = band + m, h - 2 * m - row
    side = min(mid_bottom - mid_top, round(0.48 * w))
    top = mid_top + (mid_bottom - mid_top - side) // 2
    half = (w - 3 * m) // 2
    return {"band": (0, 0, w, band), "brand": (m, round(0.15 * band), w - m, band - round(0.15 * band)),
            "product": (m, top, m + side, top + side), "headline": (2 * m + side, mid_top, w - m, mid_bottom),
            "price": (m, h - m - row, m + half, h - m), "cta": (2 * m + half, h - m - row, w - m, h - m)}


def _mark(draw, kind: str | None, box, fill, background) -> None:
    """The brand's logo mark (``BRAND_LOGOS``: triangle, disc, ring or bars) in the square ``box``."""
    x0, y0, x1, y1 = box
    s = x1 - x0
    if kind == "triangle":
        draw.polygon([(x0 + s / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    elif kind == "disc":
        draw.ellipse(box, fill=fill)
    elif kind == "ring":
        draw.ellipse(box, fill=fill)
        inset = round(s * 0.28)
        draw.ellipse((x0 + inset, y0 + inset, x1 - inset, y1 - inset), fill=background)
    elif kind == "bars":
        draw.rectangle((x0, y0 + round(0.1 * s), x1, y0 + round(0.4 * s)), fill=fill)
        draw.rectangle((x0, y0 + round(0.6 * s), x1, y0 + round(0.9 * s)), fill=fill)


def _draw_brand(draw, content: AdContent, box, on_band: bool, faces) -> None:
    """The brand's mark and name in ``box`` (white on the band, or the brand's colour on the background)."""
    if not content.brand:
        return
    x0, y0, x1, y1 = box
    colour, ground = (WHITE, content.colour) if on_band else (content.colour, BACKGROUND)
    side = max(4, round(0.7 * (y1 - y0)))
    mark_y = y0 + (y1 - y0 - side) // 2
    _mark(draw, content.logo, (x0, mark_y, x0 + side, mark_y + side), colour, ground)
    gap = max(3, side // 3) if content.logo else 0
    name_box = (x0 + (side + gap if content.logo else 0), y0, x1, y1)
    fitted = fit(content.brand.upper(), faces, name_box[2] - name_box[0], y1 - y0, round(0.8 * (y1 - y0)), 1)
    if fitted:
        draw_text(draw, fitted, name_box, faces, colour, "left", "center")


def _inside_button(box) -> tuple[int, int, int, int]:
    """Where a button's text goes: ``box`` less its padding."""
    x0, y0, x1, y1 = box
    pad_x, pad_y = max(3, (y1 - y0) // 4), max(2, (y1 - y0) // 6)
    return x0 + pad_x, y0 + pad_y, x1 - pad_x, y1 - pad_y


def unfit(w: int, h: int, texts: dict[str, str], faces=None) -> list[str]:
    """Which of ``texts`` (``{"price": ..., "cta": ...}``) would not fit whole, even at :data:`MIN_FONT`, in a ``w``
    x ``h`` banner's price box and button: ``prodgen ads`` refuses such a size rather than cut a price or a call
    to action."""
    faces = tuple(faces or default_fonts())
    boxes = layout(w, h)
    where = {"price": boxes["price"], "cta": _inside_button(boxes["cta"])}
    bad = []
    for name, text in texts.items():
        x0, y0, x1, y1 = where[name]
        fitted = fit(text, faces, x1 - x0, y1 - y0, MIN_FONT, 1)
        if fitted is None or fitted.shortened:
            bad.append(name)
    return bad


def _button(draw, content: AdContent, box, inverted: bool, faces) -> Fitted | None:
    """The call to action: a rounded button in the brand's colour with white text (``inverted``: white button,
    text in the brand's colour, for a button on the band)."""
    x0, y0, x1, y1 = box
    fill, ink = (WHITE, content.colour) if inverted else (content.colour, WHITE)
    draw.rounded_rectangle(box, radius=max(2, (y1 - y0) // 4), fill=fill)
    inner = _inside_button(box)
    fitted = fit(content.cta, faces, inner[2] - inner[0], inner[3] - inner[1], inner[3] - inner[1], 1)
    if fitted:
        draw_text(draw, fitted, inner, faces, ink, "center", "center")
    return fitted


def draw_banner(w: int, h: int, product, content: AdContent, faces=None, regular=None):
    """A ``w`` x ``h`` RGB banner (PIL image): ``product`` is a PIL image the side of :func:`layout`'s
    ``product`` box (``prodgen.apps.ads`` upscales the generated photo to it); ``faces``: the font chain for the
    headline, price and button (default :func:`default_fonts`), ``regular``: for the brand name.
    Returns ``(image, {element: Fitted})``: what the headline, price and button text became (size, lines, whether
    shortened with "…"). A box too small for one line of :data:`MIN_FONT` text -> ``ValueError`` (sizes that
    :func:`parse_sizes` accepts always have room)."""
    from PIL import Image, ImageDraw

    faces = tuple(faces or default_fonts())
    regular = tuple(regular or faces)
    boxes = layout(w, h)
    shape = _shape(w, h)
    image = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle(boxes["band"], fill=content.colour)
    x0, y0, x1, y1 = boxes["product"]
    if product.size != (x1 - x0, y1 - y0):
        raise ValueError(f"the product image is {product.size[0]}x{product.size[1]}; the {w}x{h} layout needs "
                         f"{x1 - x0}x{y1 - y0}")
    image.paste(product.convert("RGB"), (x0, y0))
    _draw_brand(draw, content, boxes["brand"], on_band=shape != "wide", faces=regular)
    fitted = {}
    hx0, hy0, hx1, hy1 = boxes["headline"]
    max_size = min(64, round(0.3 * min(w, h)), hy1 - hy0)
    lines = {"wide": 2, "tall": 5, "box": 4}[shape]
    fitted["headline"] = fit(content.headline, faces, hx1 - hx0, hy1 - hy0, max_size, lines)
    if fitted["headline"]:
        draw_text(draw, fitted["headline"], boxes["headline"], faces, INK, "center" if shape == "tall" else "left",
                  "center" if shape != "box" else "top")
    if content.price:
        px0, py0, px1, py1 = boxes["price"]
        fitted["price"] = fit(content.price, faces, px1 - px0, py1 - py0, py1 - py0, 1)
        if fitted["price"]:
            draw_text(draw, fitted["price"], boxes["price"], faces, WHITE if shape == "wide" else content.colour,
                      "center", "center")
        cta_box = boxes["cta"]
    else:  # no price: the button takes the price's place too in a row, stays put otherwise
        cta_box = (boxes["price"][0], boxes["price"][1], *boxes["cta"][2:]) if shape == "wide" else boxes["cta"]
        if shape == "wide":
            cx0, cy0, cx1, cy1 = cta_box
            quarter = (cy1 - cy0) // 4
            cta_box = (cx0, cy0 + quarter, cx1, cy1 - quarter)
    fitted["cta"] = _button(draw, content, cta_box, inverted=shape == "wide", faces=faces)
    if None in fitted.values():  # the size limits (parse_sizes) leave room for a line of MIN_FONT text in each box
        raise ValueError(f"a {w}x{h} banner has no room for its {', '.join(k for k, v in fitted.items() if not v)}")
    draw.rectangle((0, 0, w - 1, h - 1), outline=BORDER)  # ads on a white page need a visible edge
    return image, fitted
