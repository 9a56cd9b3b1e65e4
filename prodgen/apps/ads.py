"""Ad images from a spreadsheet: one generated product per row, laid out as banners in the standard display sizes.

``prodgen ads --batch products.csv --size 300x250,728x90,160x600 --lang en|zh --out DIR [--model NAME] [--seed S]``

- **The sheet** (:func:`read_ads`): a UTF-8 CSV read by ``prodgen generate``'s reader (``read_sheet``,
  ``sheet_request``) with the columns ``description`` and/or the attribute columns (``category, color, size,
  brand, pattern``; blank = unspecified), and the optional ``headline`` (default: the product described in the
  banner's language) and ``price`` (an amount such as ``19.99``, a currency sign ``$ € £ ¥`` may lead; default
  sign: ``$`` in English, ``¥`` in Chinese; blank: no price). Any other column is refused. Row numbers are a
  spreadsheet's (the header is row 1); blank rows are skipped. A bad row is reported (``row 3: unknown color
  'purpel'; valid values: ...``) and skipped; the good rows are still made. At most :data:`MAX_ROWS` rows.
- **The model** (:func:`choose_model`): a row with a description goes to a text-reading model (which reads the
  description, not the row's attribute cells), a row of attributes to an attribute model; by default the shipped
  one that follows requests best by the figures recorded with the checkpoints (``prodgen models``): the highest
  control (text models: the mean of English and Chinese), ties within :data:`CONTROL_TIE` going to the lower FID.
  ``--model`` sends every row to one model (a shipped name or a checkpoint file); rows it cannot read are reported
  like any bad row. Row ``r`` draws its noise from seed ``S + r - 2`` (its place in the sheet): a row's product
  does not depend on the other rows.
- **Upscaling**: the generator's photo (32 px today) is enlarged to the banner's product square by ``upscale``,
  an interchangeable step (``upscale(image, side) -> image``); the default is :func:`lanczos` resampling, which
  invents no detail. Lesson 16's restoration is to provide the generative super-resolution that plugs in here
  (``prodgen.apps.restore`` restores a photo up to the generator's own 32 px today, e.g. 16 -> 32; a step beyond
  it, 32 -> 128 px as issue 27 asks, does not exist yet).
- **The banners** (``prodgen.apps.ad_layout``): the product, the headline fitted in the shipped fonts (DejaVu
  Sans and the course's CJK subset; a character neither can draw makes the row bad instead of an empty box), the
  brand's colour and mark (``BRAND_RGB``, ``BRAND_LOGOS``; a brand left open: a neutral grey), the price and a
  call to action in the chosen language.
- **Output** (:func:`make_ads`): ``rowNNNN_WxH.png`` per good row and size, ``contact-sheet.png`` (every banner, for
  review) and ``manifest.csv`` (one line per banner, and one per skipped row with its error; cells that a
  spreadsheet would run as a formula are quoted with a leading ``'``). Everything is written in a temporary folder
  renamed at the end: an interrupted run leaves nothing. Same sheet, sizes, language, model and seed: the same
  bytes.

Used by ``prodgen ads`` and lesson 16.
"""
from __future__ import annotations

import csv
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LANGS", "CTA", "CURRENCY", "MAX_ROWS", "MAX_SHEET_BYTES", "MAX_HEADLINE", "MAX_DESCRIPTION", "CONTROL_TIE",
           "AdRow", "AdReport", "ContactSheet", "read_ads", "choose_model", "lanczos", "make_ads", "contact_sheet",
           "MANIFEST_COLUMNS", "MAX_BANNER_PIXELS", "CONTACT_MAX_PIXELS"]

LANGS = ("en", "zh")
CTA = {"en": "Shop now", "zh": "立即购买"}
"""The call to action on every banner, by language."""
DEFAULT_HEADLINE = {"en": "New in", "zh": "新品上市"}
"""The headline of a row with neither a headline nor a category to describe."""
CURRENCY = {"en": "$", "zh": "¥"}
MAX_ROWS = 500
MAX_SHEET_BYTES = 5_000_000
MAX_HEADLINE = 120  # characters
MAX_DESCRIPTION = 300
CONTROL_TIE = 0.005
"""Models whose control is within this of the best are equals; the lower FID then decides."""
CONTACT_MAX_PIXELS = 16_000_000
MAX_BANNER_PIXELS = 300_000_000  # per run: 500 rows of the three standard sizes are 105 million
_PRICE = re.compile(r"^([$€£¥￥])?\s*(\d{1,7}(?:[.,]\d{1,2})?)$")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AdRow:
    """One good row of an ad sheet: its spreadsheet row number, the product's request, the headline ("" = describe
    the product) and the price (``(sign or "", amount)``; ``None``: no price)."""

    row: int
    request: object
    headline: str = ""
    price: tuple | None = None


@dataclass
class AdReport:
    """What :func:`make_ads` did: the output folder, the banner files (relative names), the rows skipped as
    ``(row, message)`` and the model that made each row."""

    out: Path
    files: list[str] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    models: dict[int, str] = field(default_factory=dict)


def _headline(text) -> str:
    """A headline cell as one line of plain text; too long, or holding a control or invisible character (a
    bidirectional override, a zero-width space, ...) -> ``ValueError``."""
    text = " ".join(str(text or "").split())
    if len(text) > MAX_HEADLINE:
        raise ValueError(f"the headline has {len(text)} characters; at most {MAX_HEADLINE} fit a banner")
    for c in text:
        if unicodedata.category(c).startswith("C"):
            raise ValueError(f"the headline holds a control or invisible character (U+{ord(c):04X}); write plain text")
    return text


def _price(text) -> tuple | None:
    text = str(text or "").strip()
    if not text:
        return None
    match = _PRICE.match(text)
    if not match:
        raise ValueError(f"price {text[:30]!r} is not an amount such as 19.99 or $19.99 (a sign $ € £ ¥ may lead)")
    return match[1] or "", match[2]


def _check_columns(path, columns: list[str], schema) -> None:
    known = ("description", *schema.names, "headline", "price")
    unknown = [c for c in columns if c not in known]
    if unknown or len(set(columns)) != len(columns):
        what = (f"unknown column(s) {', '.join(repr(c[:40]) if c else '(unnamed)' for c in unknown)}" if unknown
                else "a column named twice")
        raise ValueError(f"{path}: {what}; an ad sheet has the columns description and/or {', '.join(schema.names)}, "
                         "and optionally headline and price")
    if not any(c in ("description", *schema.names) for c in columns):
        raise ValueError(f"{path} has no product columns; give a 'description' column and/or attribute columns "
                         f"({', '.join(schema.names)})")


def read_ads(path, schema=None) -> tuple[list[AdRow], list[tuple[int, str]]]:
    """``(good rows, bad rows)`` of an ad sheet; bad rows are ``(row number, what is wrong)``. A file that cannot
    be read as a whole (missing, too big, not UTF-8 CSV, unknown columns, no rows, too many rows) -> one error."""
    from prodgen.apps.generate import read_sheet, sheet_request
    from prodgen.catalog.schema import BUILTIN

    schema = schema or BUILTIN
    path = Path(path)
    if path.is_file() and path.stat().st_size > MAX_SHEET_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size:,} bytes; an ad sheet may be at most {MAX_SHEET_BYTES:,}")
    columns, rows = read_sheet(path, max_rows=MAX_ROWS)
    _check_columns(path, columns, schema)
    numbered = [(number, row) for number, row in enumerate(rows, start=2)  # the header is row 1, as a
                if any(isinstance(v, list) or v for v in row.values())]  # spreadsheet shows it; blank rows skipped
    if not numbered:
        raise ValueError(f"{path} has a header but no rows")
    good, bad = [], []
    for number, row in numbered:
        try:
            if len(row.get("description") or "") > MAX_DESCRIPTION:
                raise ValueError(f"the description has {len(row['description'])} characters; at most "
                                 f"{MAX_DESCRIPTION}")
            request = sheet_request(row, schema)
            good.append(AdRow(number, request, _headline(row.get("headline")), _price(row.get("price"))))
        except ValueError as e:
            bad.append((number, str(e)))
    return good, bad


# ----------------------------------------------------------------------------- models
def _control(metrics: dict, reads: str) -> float | None:
    if reads == "attributes":
        return (metrics.get("control") or {}).get("mean")
    scores = [(metrics.get(k) or {}).get("mean") for k in ("test_en", "test_zh")]
    return None if None in scores else sum(scores) / 2


def choose_model(reads: str) -> str:
    """The shipped generator that best follows requests of the kind ``reads`` ("attributes" or "text"), by the
    figures recorded with the checkpoints (the manifest's, which ``prodgen models`` prints): the highest control
    (text models: the mean of English and Chinese), and among those within :data:`CONTROL_TIE` of it the lowest FID.
    Models without both figures (one that shares another's weights records none) are not candidates."""
    from prodgen.models import registry

    kinds, manifest = registry.generator_kinds(), registry.manifest()
    scored = []
    for name in registry.generators(shipped=True):
        metrics = manifest[name].get("metrics", {})
        control, fid = _control(metrics, reads), metrics.get("fid")
        if kinds[name] == reads and control is not None and fid is not None:
            scored.append((control, fid, name))
    if not scored:
        raise ValueError(f"no shipped model that reads {reads} has recorded control and FID figures; give --model")
    best = max(c for c, _, _ in scored)
    return min((fid, name) for c, fid, name in scored if c >= best - CONTROL_TIE)[1]


def _models(rows: list[AdRow], model) -> dict[int, object]:
    """``{row number: ImageModel}``: ``model`` for every row (a name, a file or an ImageModel), or per row the
    chosen text model (rows with a description) or attribute model (the others), each loaded once."""
    from prodgen.apps.generate import load_generator
    from prodgen.models.protocol import ImageModel

    if model is not None:
        loaded = model if isinstance(model, ImageModel) else load_generator(model)
        return {ad.row: loaded for ad in rows}
    names: dict[str, str] = {}
    loaded: dict[str, object] = {}
    chosen = {}
    for ad in rows:
        reads = "text" if ad.request.text else "attributes"
        if reads not in names:
            names[reads] = choose_model(reads)
        name = names[reads]
        if name not in loaded:
            loaded[name] = load_generator(name)
        chosen[ad.row] = loaded[name]
    return chosen


# ----------------------------------------------------------------------------- one row's banners
def lanczos(image, side: int):
    """The default upscaling step: Lanczos resampling of the product photo to ``side`` x ``side`` pixels (smooth,
    invents nothing). Any ``upscale(PIL image, side) -> PIL image of side x side`` can replace it."""
    from PIL import Image

    return image.resize((side, side), Image.Resampling.LANCZOS)


def _brand(attrs: dict) -> tuple[str, tuple, str | None]:
    """(display name, colour, logo kind) of the brand a request asked for or a text model read; unknown: none."""
    from prodgen.apps.ad_layout import NEUTRAL_RGB
    from prodgen.catalog.attributes import ATTRIBUTES, BRAND_LOGOS, BRAND_RGB

    key = attrs.get("brand")
    if key not in BRAND_RGB:
        return "", NEUTRAL_RGB, None
    name = next(v.en[0] for v in ATTRIBUTES["brand"] if v.key == key)
    return name, BRAND_RGB[key], BRAND_LOGOS.get(key)


def _default_headline(attrs: dict, lang: str) -> str:
    """The product named in the canonical words of ``lang`` ("Acme large red striped mug", "Acme 大号红色条纹马克杯"):
    the headline of a row that gives none; without a category, :data:`DEFAULT_HEADLINE`."""
    from prodgen.catalog.attributes import ATTRIBUTES

    if attrs.get("category") not in {v.key for v in ATTRIBUTES["category"]}:
        return DEFAULT_HEADLINE[lang]
    words = {a: next(getattr(v, lang)[0] for v in ATTRIBUTES[a] if v.key == attrs[a])
             for a in ("brand", "size", "color", "pattern", "category") if attrs.get(a) and a in ATTRIBUTES
             and attrs[a] in {v.key for v in ATTRIBUTES[a]}}
    if words.get("pattern") in ("plain", "纯色"):
        words.pop("pattern")
    if lang == "zh":
        brand = words.pop("brand", "")
        return (f"{brand} " if brand else "") + "".join(words.values())
    return " ".join(words.values())


def _price_text(price: tuple | None, lang: str) -> str:
    """``("", "12.5")`` -> ``"$12.50"`` in English, ``"¥12.50"`` in Chinese; a sign given in the sheet is kept."""
    if not price:
        return ""
    sign, amount = price
    if "." in amount or "," in amount:
        whole_part, _, cents = amount.replace(",", ".").partition(".")
        amount = f"{whole_part}.{cents.ljust(2, '0')}"
    return f"{sign or CURRENCY[lang]}{amount}"


def _content(ad: AdRow, attrs: dict, lang: str, faces):
    """The banner text of one row (``AdContent``), or ``ValueError`` if the fonts cannot draw a character of it."""
    from prodgen.apps.ad_layout import AdContent, undrawable

    headline = ad.headline or _default_headline(attrs, lang)
    price = _price_text(ad.price, lang)
    brand, colour, logo = _brand(attrs)
    content = AdContent(headline, price, CTA[lang], brand, colour, logo)
    if missing := undrawable(headline + price, faces):
        raise ValueError(f"the headline or price has characters the banner fonts cannot draw: {missing[:20]!r} "
                         "(DejaVu Sans and the course's Chinese subset; add a font that has them with --font FILE)")
    return content


def _banners(photo, content, sizes, upscale, faces) -> list:
    """``(PIL image, {element: Fitted})`` per size (``ad_layout.draw_banner``): the layout's product square filled
    by ``upscale`` (checked), then the banner."""
    from PIL import Image

    from prodgen.apps.ad_layout import draw_banner, layout

    small = Image.fromarray(photo.permute(1, 2, 0).numpy())
    images = []
    for w, h in sizes:
        x0, _, x1, _ = layout(w, h)["product"]
        product = upscale(small, x1 - x0)
        if not isinstance(product, Image.Image) or product.size != (x1 - x0, x1 - x0):
            got = product.size if isinstance(product, Image.Image) else type(product).__name__
            raise ValueError(f"upscale must return a PIL image of {x1 - x0}x{x1 - x0}, got {got}")
        images.append(draw_banner(w, h, product, content, faces))
    return images


def _generate(rows: list[AdRow], models: dict, seed: int) -> dict[int, tuple]:
    """``{row: (uint8 photo 3 x H x W, attributes asked or read)}``: each model's rows in batches of
    ``BATCH_IMAGES``, row ``r`` seeded with ``seed + r - 2``."""
    from prodgen.apps.generate import BATCH_IMAGES

    made = {}
    by_model: dict[int, list[AdRow]] = {}
    for ad in rows:
        by_model.setdefault(id(models[ad.row]), []).append(ad)
    for group in by_model.values():
        model = models[group[0].row]
        for start in range(0, len(group), BATCH_IMAGES):
            batch = group[start:start + BATCH_IMAGES]
            requests = [ad.request for ad in batch]
            images = model.generate_groups([([ad.request], seed + ad.row - 2) for ad in batch])
            for ad, image, attrs in zip(batch, images, model.understood(requests)):
                made[ad.row] = (image[0], attrs)
    return made


def _checked(rows: list[AdRow], models: dict, bad: list) -> list[AdRow]:
    """The rows their model accepts (``check_request``); the others join ``bad`` with the model's reason."""
    from prodgen.apps.generate import check_request

    kept = []
    for ad in rows:
        try:
            check_request(models[ad.row], ad.request)
            kept.append(ad)
        except ValueError as e:
            bad.append((ad.row, str(e)))
    return kept


def _options(sizes, lang: str, seed, faces) -> tuple[list, int]:
    """The sizes (``ad_layout.parse_sizes``; each must hold the longest price and the call to action whole, at the
    smallest font) and the seed, checked."""
    from prodgen.apps.ad_layout import MIN_FONT, parse_sizes, unfit
    from prodgen.numbers import whole

    if lang not in LANGS:
        raise ValueError(f"--lang must be one of {', '.join(LANGS)}, got {str(lang)[:20]!r}")
    sizes = parse_sizes(sizes) if isinstance(sizes, str) else parse_sizes(",".join(f"{w}x{h}" for w, h in sizes))
    longest = {"price": f"{CURRENCY[lang]}9999999.99", "cta": CTA[lang]}
    for w, h in sizes:
        if unfit(w, h, longest, faces):
            raise ValueError(f"--size {w}x{h} is too small to show a price such as {longest['price']} and the button "
                             f"{longest['cta']!r} whole at {MIN_FONT} px; the IAB sizes all fit (e.g. 300x250)")
    return sizes, whole(0 if seed is None else seed, "--seed", 0, 2**62)


def make_ads(sheet, out_dir, sizes="300x250,728x90,160x600", lang: str = "en", model=None, seed: int = 0,
             upscale=lanczos, faces=None) -> AdReport:
    """Banners for every good row of ``sheet`` (a CSV path) in every size into ``out_dir`` (new or empty): see the
    module's docstring. ``sizes``: ``"300x250,728x90"`` (or names, or ``[(w, h), ...]``); ``model``: a shipped
    name, a checkpoint file or an ``ImageModel`` (default: chosen per row, :func:`choose_model`); ``upscale``: the
    enlarging step (:func:`lanczos`); ``faces``: the font chain (``ad_layout.default_fonts()``). Every row bad ->
    ``ValueError`` naming them, and nothing is written."""
    from prodgen.apps.ad_layout import default_fonts
    from prodgen.apps.generate import _prepare_out, load_generator
    from prodgen.models.protocol import ImageModel
    from prodgen.paths import atomic_folder

    faces = tuple(faces or default_fonts())
    sizes, seed = _options(sizes, lang, seed, faces)
    out = Path(out_dir)
    _prepare_out(out)
    if model is not None and not isinstance(model, ImageModel):
        model = load_generator(model)
    good, bad = read_ads(sheet, None if model is None else model.schema)
    if (pixels := len(good) * sum(w * h for w, h in sizes)) > MAX_BANNER_PIXELS:
        raise ValueError(f"{len(good)} rows in {len(sizes)} sizes are {pixels / 1e6:,.0f} million pixels of banners; "
                         f"at most {MAX_BANNER_PIXELS / 1e6:,.0f} million per run: fewer rows or smaller sizes")
    models = _models(good, model) if good else {}
    good = _checked(good, models, bad)
    made = _generate(good, models, seed)
    contents = {}
    for ad in good:
        try:
            contents[ad.row] = _content(ad, made[ad.row][1], lang, faces)
        except ValueError as e:
            bad.append((ad.row, str(e)))
    bad.sort()
    if not contents:
        shown = "; ".join(f"row {r}: {m}" for r, m in bad[:3])
        raise ValueError(f"no banner made: every row is bad ({len(bad)}); {shown}"
                         + (f"; and {len(bad) - 3} more" if len(bad) > 3 else ""))
    report = AdReport(out, bad=bad, models={r: models[r].name for r in contents})
    sheet = ContactSheet(len(contents), sizes)
    with atomic_folder(out) as tmp:
        lines = []
        for ad in (a for a in good if a.row in contents):
            banners = _banners(made[ad.row][0], contents[ad.row], sizes, upscale, faces)
            for (w, h), (image, fitted) in zip(sizes, banners):
                name = f"row{ad.row:04d}_{w}x{h}.png"
                image.save(tmp / name, optimize=False)
                report.files.append(name)
                lines.append(_manifest_line(ad, f"{w}x{h}", name, models[ad.row], seed, contents[ad.row],
                                            made[ad.row][1]) | {"shortened": _shortened(fitted)})
            sheet.add(f"row {ad.row} · {models[ad.row].name} · seed {seed + ad.row - 2}", [b[0] for b in banners])
        lines += [{"row": r, "status": "skipped", "error": m} for r, m in bad]
        lines.sort(key=lambda line: line["row"])
        sheet.image.save(tmp / "contact-sheet.png", optimize=False)
        _write_manifest(tmp / "manifest.csv", lines, models)
    return report


MANIFEST_COLUMNS = ("row", "status", "banner", "file", "model", "seed", "headline", "price", "shortened")
"""The first columns of ``manifest.csv`` (``shortened``: the texts that had to be cut with "…" to fit that banner,
e.g. ``headline``); then the model's attribute columns (what each product was asked for, or what its text model
read), ``description`` and ``error`` (why a row was skipped)."""


def _shortened(fitted: dict) -> str:
    return " ".join(name for name, text in fitted.items() if text is not None and text.shortened)


def _manifest_line(ad: AdRow, banner: str, file: str, model, seed: int, content, attrs: dict) -> dict:
    return {**attrs, "row": ad.row, "status": "made", "banner": banner, "file": file, "model": model.name,
            "seed": seed + ad.row - 2, "headline": content.headline, "price": content.price,
            "description": ad.request.text}


def _safe(cell) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula (``=cmd()``, ``+``, ``-``, ``@``, a tab)
    gets a leading ``'``."""
    text = str(cell)
    return "'" + text if text.startswith(_FORMULA) else text


def _write_manifest(path: Path, lines: list[dict], models: dict) -> None:
    """``manifest.csv``: :data:`MANIFEST_COLUMNS`, the attribute columns, ``description``, ``error``."""
    names = list(dict.fromkeys(a for m in models.values() for a in m.schema.names))
    columns = [*MANIFEST_COLUMNS, *names, "description", "error"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for line in lines:
            writer.writerow([_safe(line.get(c, "")) for c in columns])


def _card(sizes: list[tuple[int, int]], gap: int) -> tuple[int, int, list[tuple[int, int]]]:
    """``(width, height, positions)`` of one row's banners of ``sizes``: the boxy and wide ones stacked in a column,
    the tall ones (skyscrapers) side by side to its right."""
    stacked = [i for i, (w, h) in enumerate(sizes) if h < 1.6 * w]
    positions, y = {}, 0
    for i in stacked:
        positions[i] = (0, y)
        y += sizes[i][1] + gap
    x = max((sizes[i][0] for i in stacked), default=-gap) + gap
    for i, (w, _) in enumerate(sizes):
        if i not in positions:
            positions[i] = (x, 0)
            x += w + gap
    width = max(px + sizes[i][0] for i, (px, _) in positions.items())
    height = max(py + sizes[i][1] for i, (_, py) in positions.items())
    return width, height, [positions[i] for i in range(len(sizes))]


class ContactSheet:
    """One image of every banner for review, filled row by row (:meth:`add`): a card per sheet row (its label over
    its banners: the boxy and wide ones stacked, the tall ones beside them), the cards in a grid about as wide as
    tall, the whole drawn at the scale that keeps it within :data:`CONTACT_MAX_PIXELS` (each banner shrunk with
    Lanczos as it is added, so a long sheet never holds every banner in memory)."""

    LABEL = 22
    GAP = 12

    def __init__(self, cards: int, sizes: list[tuple[int, int]]):
        from PIL import Image, ImageDraw

        from prodgen.apps.ad_layout import default_fonts

        w, h, self.positions = _card(sizes, self.GAP)
        self.card_w, self.card_h = w, self.LABEL + h
        self.columns = max(1, min(cards, math.ceil(math.sqrt(cards * self.card_h / self.card_w))))
        rows = -(-cards // self.columns)
        width = self.GAP + self.columns * (self.card_w + self.GAP)
        height = self.GAP + rows * (self.card_h + self.GAP)
        self.scale = min(1.0, math.sqrt(CONTACT_MAX_PIXELS / (width * height)))
        self.image = Image.new("RGB", (self._s(width), self._s(height)), (236, 236, 232))
        self.draw, self.faces, self.count = ImageDraw.Draw(self.image), default_fonts(bold=False), 0

    def _s(self, value: float) -> int:
        return max(1, round(value * self.scale))

    def add(self, label: str, images: list) -> None:
        """The next card: ``label`` over ``images`` (one per size, in the order the sheet was made with)."""
        from PIL import Image

        from prodgen.apps.ad_layout import draw_text, fit

        k, self.count = self.count, self.count + 1
        x = self.GAP + (k % self.columns) * (self.card_w + self.GAP)
        y = self.GAP + (k // self.columns) * (self.card_h + self.GAP)
        box = (self._s(x), self._s(y), self._s(x + self.card_w), self._s(y + self.LABEL - 4))
        fitted = fit(label, self.faces, box[2] - box[0], box[3] - box[1], 14, 1)
        if fitted:
            draw_text(self.draw, fitted, box, self.faces, (60, 60, 60), "left", "center")
        for im, (px, py) in zip(images, self.positions):
            if self.scale < 1.0:
                im = im.resize((self._s(im.width), self._s(im.height)), Image.Resampling.LANCZOS)
            self.image.paste(im, (self._s(x + px), self._s(y + self.LABEL + py)))


def contact_sheet(cards: list[tuple[str, list]]):
    """:class:`ContactSheet` of ``[(label, banners), ...]`` (every card with banners of the same sizes)."""
    sheet = ContactSheet(len(cards), [im.size for im in cards[0][1]])
    for label, images in cards:
        sheet.add(label, images)
    return sheet.image
