"""Catalog folders on disk: images plus ``metadata.csv``; export, import and checks.

**The format.** ``metadata.csv`` (comma-separated, UTF-8, one header row) has a ``file`` column (the image's
path inside the folder) and one column per attribute, with any names and any values. The text columns
``description_en``, ``description_zh`` and ``description`` (read as English when there is no
``description_en``) are optional; every other column is an attribute (:data:`TEXT_COLUMNS` lists the
columns that are not). To leave a column out (a price, a SKU), name the ones to use: ``attributes=["shape",
"colour"]`` (``--attributes shape,colour`` on the command line). An empty cell is an unknown value (label -1).
The course's own export (``prodgen data export``) writes ``file``, the five built-in attributes and both
descriptions (:data:`COLUMNS`).

**The schema** (``prodgen.catalog.schema``) is inferred when none is given: the attribute columns in file
order; each attribute's values sorted, except a built-in attribute (category, color, size, brand, pattern)
whose values are all built-in values: those keep the course's order, so an export of the course catalog
loads back with exactly ``schema.BUILTIN`` and the same labels. Given a schema (a checkpoint's), the
attribute columns must be exactly its attributes and every value one of its values; labels follow its order.

**Images** of any size and mode Pillow reads (RGB, RGBA, L, LA, P, 16-bit grey, CMYK, JPEG, ...) become
``size`` x ``size`` RGB (:func:`fit_image`): EXIF rotation is applied; transparent pixels are laid on white;
16-bit grey is scaled to 8 bits; an image that is not ``size`` x ``size`` is fitted inside the square with
Lanczos, keeping its aspect ratio, and centred on its border colour (the per-channel median of the fitted
image's outermost pixels), so a wide photo gets bars of its own background, never a squashed product. This is
the same rule ``prodgen edit`` uses for a photo (which lays transparency on the studio grey instead).

**Enough data.** Every attribute needs at least two values (one value is nothing to control) and every value
at least :data:`MIN_PER_VALUE` images (20: fewer and a judge cannot be trained or scored on that value).
Anything wrong is one ``FileNotFoundError`` / ``ValueError`` line naming the file, row or column.

Used by ``prodgen data export`` / ``data info``, ``prodgen train|evaluate --data`` and lesson 12.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from prodgen.catalog.attributes import ATTRIBUTE_NAMES, values_of
from prodgen.catalog.dataset import Catalog
from prodgen.catalog.schema import Schema
from prodgen.paths import atomic_folder

__all__ = ["COLUMNS", "to_rgb", "TEXT_COLUMNS", "MIN_PER_VALUE", "IMAGE_SUFFIXES", "export_catalog", "metadata_csv",
           "load_folder", "fit_image", "describe_folder", "format_description"]

COLUMNS = ("file", *ATTRIBUTE_NAMES, "description_en", "description_zh")
"""The columns ``prodgen data export`` writes for the course catalog."""

TEXT_COLUMNS = ("file", "description_en", "description_zh", "description")
"""The columns that are not attributes; every other column of ``metadata.csv`` is one."""

MIN_PER_VALUE = 20
"""The fewest images an attribute value may have (a judge needs examples of it to learn and to score it)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
"""Files counted as images when a folder is checked for images ``metadata.csv`` does not list."""

BACKGROUND = (255, 255, 255)
"""What transparent pixels become: white, the usual background of product photos."""

UNBALANCED = 3.0
"""``data info`` warns when an attribute's most common value has more than this many times the images of its
rarest one."""


# ------------------------------------------------------------------ export
def _file_names(catalog: Catalog) -> list[str]:
    prefix = f"{catalog.name}_" if catalog.name else ""
    return [f"{prefix}{i:06d}.png" for i in range(len(catalog))]


def _columns(catalog: Catalog) -> tuple[str, ...]:
    names = tuple(catalog.values)
    clash = [a for a in names if a in TEXT_COLUMNS]
    if clash:
        raise ValueError(f"attribute {clash[0]!r} has the name of a text column of metadata.csv; "
                         f"rename it (reserved: {', '.join(TEXT_COLUMNS)})")
    return ("file", *names, "description_en", "description_zh")


def metadata_csv(catalog: Catalog) -> str:
    """The ``metadata.csv`` text for ``catalog``: ``file``, its attributes (the course catalog: :data:`COLUMNS`),
    both descriptions; unknown attributes are empty cells."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = _columns(catalog)
    writer.writerow(columns)
    names = columns[1:-2]
    for i, name in enumerate(_file_names(catalog)):
        attrs = catalog.attributes(i)
        writer.writerow([name, *(attrs.get(a, "") for a in names),
                         catalog.descriptions_en[i], catalog.descriptions_zh[i]])
    return out.getvalue()


def export_catalog(catalog: Catalog, out_dir, progress: bool = False) -> Path:
    """Write ``catalog`` as PNGs plus ``metadata.csv`` into ``out_dir``.

    Everything is written to a temporary folder first and renamed at the end, so an
    interrupted export leaves nothing behind. An ``out_dir`` that already holds this
    very export is left as it is; one that holds anything else is an error.
    """
    out = Path(out_dir)
    text = metadata_csv(catalog)
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder; choose a new folder for the export")
        existing = sorted(p.name for p in out.iterdir())
        if existing:
            meta = out / "metadata.csv"
            if meta.is_file() and meta.read_text(encoding="utf-8") == text:
                return out  # the same export is already there
            raise FileExistsError(
                f"{out} already holds {'a different export' if meta.is_file() else 'other files'} "
                f"({len(existing)} entries); choose an empty or new folder, or delete it first")
    with atomic_folder(out) as tmp:
        names = _file_names(catalog)
        pixels = catalog.images.permute(0, 2, 3, 1).numpy()
        it = range(len(catalog))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"writing {out.name}", unit="img", leave=False)
        for i in it:
            Image.fromarray(pixels[i]).save(tmp / names[i], optimize=False)
        (tmp / "metadata.csv").write_text(text, encoding="utf-8")
    return out


# ------------------------------------------------------------------ images
def to_rgb(im: Image.Image, background=BACKGROUND) -> Image.Image:
    """Any mode -> RGB: transparency on ``background`` (default :data:`BACKGROUND`), 16-bit and float grey scaled
    to 8 bits. The one image reader of catalog folders and ``prodgen edit``."""
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, background)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if im.mode.startswith("I") or im.mode == "F":  # Pillow would clip these to 255
        a = np.asarray(im).astype(np.float64)
        if im.mode == "F" and a.size and a.max() <= 1.0:
            a = a * 255.0
        elif im.mode.startswith("I;16") or (im.mode == "I" and a.size and a.max() > 255):
            a = a / 257.0  # 16-bit range -> 8-bit
        return Image.fromarray(np.clip(a.round(), 0, 255).astype(np.uint8)).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def fit_image(im: Image.Image, size: int = 32) -> np.ndarray:
    """``size x size x 3`` uint8 pixels of ``im`` by the module's rule: EXIF rotation applied, transparency on
    white, then fitted inside the square with Lanczos (aspect ratio kept) and centred on its border colour."""
    if im.format == "JPEG" and max(im.size) > 2 * size:
        im.draft("RGB", (size, size))  # decode at a smaller scale (still >= size): much faster for big photos
    if "exif" in im.info:
        im = ImageOps.exif_transpose(im)
    im = to_rgb(im)
    if im.size == (size, size):
        return np.asarray(im)
    w, h = im.size
    scale = size / max(w, h)
    fitted = im.resize((max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))), Image.LANCZOS)
    pixels = np.asarray(fitted)
    if fitted.size == (size, size):
        return pixels
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])  # K x 3
    colour = np.median(border, axis=0).round().astype(np.uint8)
    out = np.empty((size, size, 3), np.uint8)
    out[:] = colour
    top, left = (size - fitted.height) // 2, (size - fitted.width) // 2
    out[top:top + fitted.height, left:left + fitted.width] = pixels
    return out


def _cell(text: str, limit: int = 80) -> str:
    """A ``file`` cell for a message: quoted, and cut in the middle when longer than ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit // 2]!r}...{text[-limit // 2:]!r} ({len(text)} characters)"


def _check_inside(folder: Path, cell: str, where: str) -> None:
    """A ``file`` cell must name a file inside the catalog folder: ``../x``, an absolute path or a symbolic link
    that resolves outside it -> ``ValueError`` naming the row (a catalog folder from elsewhere must not make
    ``prodgen`` open ``/etc/passwd`` or another user's files)."""
    root = folder.resolve()
    try:
        target = (folder / cell).resolve()
    except (OSError, RuntimeError) as e:  # a loop of links, a name the system refuses
        why = getattr(e, "strerror", None) or str(e)
        raise ValueError(f"{where}: file {_cell(cell)} cannot be resolved ({why})") from None
    if target != root and root not in target.parents:
        how = "an absolute path" if Path(cell).is_absolute() else "a path (or a link) leading out of the folder"
        raise ValueError(f"{where}: file {_cell(cell)} is {how}; list only files inside {folder} "
                         f"(relative paths such as images/0001.png)")


def _read_image(path: Path, where: str, size: int):
    """``(pixels, (width, height), mode)`` of one listed image; a clear error naming the row otherwise."""
    try:
        path.stat()
    except FileNotFoundError:
        pass
    except OSError as e:  # a name too long for the file system, no permission, ...
        raise ValueError(f"{where}: the image cannot be opened ({e.strerror})") from None
    if not path.is_file():
        what = "is a folder, not an image" if path.is_dir() else "is missing"
        raise FileNotFoundError(f"{where}: image file {what} ({path})")
    try:
        with Image.open(path) as im:
            shape, mode = im.size, im.mode
            return fit_image(im, size), shape, mode
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{where}: cannot be read as an image ({type(e).__name__}: {str(e)[:120]})") from None


# ------------------------------------------------------------------ metadata.csv
def _read_metadata(folder: Path):
    """``(path of metadata.csv, header, rows)``: rows are lists as long as the header (short rows padded)."""
    if not folder.exists():
        raise FileNotFoundError(f"no catalog folder at {folder}")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is a file, not a catalog folder (a folder of images plus metadata.csv)")
    meta = folder / "metadata.csv"
    if not meta.is_file():
        entries = list(folder.iterdir())
        if not entries:
            raise FileNotFoundError(f"{folder} is empty; a catalog folder holds images plus a metadata.csv with a "
                                    f"'file' column and one column per attribute")
        images = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in entries)
        raise FileNotFoundError(f"no metadata.csv in {folder} ({images} image(s) there); add one with a 'file' "
                                f"column and one column per attribute, e.g. file,shape,colour")
    try:
        with open(meta, newline="", encoding="utf-8-sig") as f:
            table = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as e:
        raise ValueError(f"{meta} is not UTF-8 text (byte {e.object[e.start]:#x} at position {e.start}); "
                         f"save it as 'CSV UTF-8'") from None
    except csv.Error as e:
        raise ValueError(f"{meta} is not a readable CSV file ({e})") from None
    if not table:
        raise ValueError(f"{meta} is empty; it needs a header row (file and the attribute columns) and one row "
                         f"per image")
    header = [c.strip() for c in table[0]]
    if "file" not in header:
        hint = (" (it looks ';'-separated: metadata.csv must be comma-separated)"
                if len(header) == 1 and ";" in header[0] else "")
        raise ValueError(f"{meta} has no 'file' column (header: {', '.join(header) or 'nothing'}){hint}; the "
                         f"header must name the image column 'file'")
    for j, name in enumerate(header):
        if not name:
            raise ValueError(f"{meta}: column {j + 1} of the header has no name")
        if header.index(name) != j:
            raise ValueError(f"{meta}: column {name!r} appears twice in the header")
    rows = table[1:]
    if not rows:
        raise ValueError(f"{meta} lists no images (a header and no rows)")
    for i, row in enumerate(rows):
        if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
            raise ValueError(f"{meta}, row {i + 2}: {len(row)} cells but the header has {len(header)} columns "
                             f"(a comma inside a value needs quotes)")
        rows[i] = [c.strip() for c in row[:len(header)]] + [""] * (len(header) - len(row))
    return meta, header, rows


def _attribute_columns(meta: Path, header: list[str], attributes) -> list[str]:
    if attributes is None:
        names = [c for c in header if c not in TEXT_COLUMNS]
        if not names:
            raise ValueError(f"{meta} has no attribute column (header: {', '.join(header)}); add one column per "
                             f"attribute, e.g. file,shape,colour")
        return names
    if isinstance(attributes, str):
        attributes = attributes.split(",")
    names = [str(a).strip() for a in attributes if str(a).strip()]
    if not names:
        raise ValueError("attributes: name at least one attribute column")
    for a in names:
        if a in TEXT_COLUMNS:
            raise ValueError(f"attributes: {a!r} is not an attribute column "
                             f"(not attributes: {', '.join(TEXT_COLUMNS)})")
        if a not in header:
            valid = [c for c in header if c not in TEXT_COLUMNS]
            raise ValueError(f"attributes: {meta} has no column {a!r}; "
                             f"its attribute columns: {', '.join(valid) or 'none'}")
        if names.count(a) > 1:
            raise ValueError(f"attributes: {a!r} is named twice")
    return names


def _infer_values(meta: Path, name: str, cells: list[str]) -> list[str]:
    found = set(cells) - {""}
    if not found:
        raise ValueError(f"{meta}: column {name!r} has no values (every cell is empty); fill it in or leave the "
                         f"column out")
    if len(found) == 1:
        raise ValueError(f"{meta}: column {name!r} has a single value ({next(iter(found))!r}): nothing to control; "
                         f"leave the column out or add images with other values")
    if name in ATTRIBUTE_NAMES and found <= set(values_of(name)):
        return [v for v in values_of(name) if v in found]  # the course's order: exports load back as BUILTIN
    return sorted(found)


def _schema_and_labels(meta: Path, header, rows, names, schema: Schema | None):
    """``(schema, labels N x A)`` from the attribute columns ``names``."""
    if schema is not None:
        if not isinstance(schema, Schema):
            raise ValueError(f"schema must be a prodgen.catalog.schema.Schema, got {type(schema).__name__}")
        if set(names) != set(schema.names):
            missing = [a for a in schema.names if a not in names]
            extra = [a for a in names if a not in schema.names]
            raise ValueError(
                f"{meta} has the attribute columns {', '.join(names)} but the schema (e.g. the checkpoint's) has "
                f"{', '.join(schema.names)}" + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; not in the schema: {', '.join(extra)} (leave columns out with attributes=/--attributes)"
                   if extra else ""))
        names = list(schema.names)
    columns = {a: [row[header.index(a)] for row in rows] for a in names}
    if schema is None:
        schema = Schema([(a, _infer_values(meta, a, columns[a])) for a in names])
    labels = np.full((len(rows), len(names)), -1, np.int64)
    for j, (a, values) in enumerate(schema.values.items()):
        index = {v: k for k, v in enumerate(values)}
        for i, cell in enumerate(columns[a]):
            if cell:
                k = index.get(cell)
                if k is None:
                    raise ValueError(f"{meta}, row {i + 2} (file {rows[i][header.index('file')]!r}): {a} {cell!r} is "
                                     f"not in the schema; valid values: {', '.join(values)}")
                labels[i, j] = k
    return schema, labels


def _check_counts(meta: Path, schema: Schema, labels: np.ndarray, min_per_value: int) -> None:
    for j, (a, values) in enumerate(schema.values.items()):
        counts = np.bincount(labels[:, j][labels[:, j] >= 0], minlength=len(values))
        few = [f"{v!r} ({c})" for v, c in zip(values, counts) if c < min_per_value]
        if few:
            raise ValueError(f"{meta}: too few images for {a} {', '.join(few)}: the minimum is {min_per_value} per "
                             f"value; add images, merge values or leave the column out")


def _read_folder(folder, size, schema, min_per_value, attributes):
    """``(catalog, original (width, height) per image, mode per image, header, file per image)``."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive whole number of pixels, got {size!r}")
    if isinstance(min_per_value, bool) or not isinstance(min_per_value, (int, np.integer)) or min_per_value < 0:
        raise ValueError(f"min_per_value must be a whole number >= 0, got {min_per_value!r}")
    folder = Path(folder)
    meta, header, rows = _read_metadata(folder)
    names = _attribute_columns(meta, header, attributes)
    f = header.index("file")
    seen = {}
    for i, row in enumerate(rows):
        if not row[f]:
            raise ValueError(f"{meta}, row {i + 2}: the 'file' cell is empty")
        if row[f] in seen:
            raise ValueError(f"{meta}, row {i + 2}: file {_cell(row[f])} is listed twice (also row {seen[row[f]] + 2})")
        seen[row[f]] = i
        _check_inside(folder, row[f], f"{meta}, row {i + 2}")
    schema, labels = _schema_and_labels(meta, header, rows, names, schema)
    _check_counts(meta, schema, labels, int(min_per_value))
    pixels = np.empty((len(rows), size, size, 3), np.uint8)
    shapes, modes = [], []
    for i, row in enumerate(rows):
        pixels[i], shape, mode = _read_image(folder / row[f], f"{meta}, row {i + 2} (file {_cell(row[f])})", int(size))
        shapes.append(shape)
        modes.append(mode)

    def text(column):
        return [row[header.index(column)] for row in rows] if column in header else [""] * len(rows)

    en = text("description_en") if "description_en" in header else text("description")
    catalog = Catalog(torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels),
                      en, text("description_zh"), values={a: list(v) for a, v in schema.values.items()},
                      name=folder.name)
    return catalog, shapes, modes, header, [row[f] for row in rows]


def load_folder(folder, size: int = 32, schema: Schema | None = None, min_per_value: int = MIN_PER_VALUE,
                attributes=None) -> Catalog:
    """Read a catalog folder (images plus ``metadata.csv``, see the module docstring) into a :class:`Catalog`.

    ``size``: the side of the square RGB images (default 32, the course's models). ``schema``: the schema the
    folder must follow (e.g. a checkpoint's; ``schema.BUILTIN`` for the course's vocabulary); ``None`` infers
    it. ``min_per_value``: the fewest images a value may have (:data:`MIN_PER_VALUE`). ``attributes``: the
    attribute columns to use (a list or ``"a,b"``; default every column but :data:`TEXT_COLUMNS`).
    ``catalog.schema`` is the schema; ``catalog.labels`` has one column per attribute, -1 for an empty cell.
    """
    return _read_folder(folder, size, schema, min_per_value, attributes)[0]


# ------------------------------------------------------------------ data info
def _duplicates(images: torch.Tensor, labels: torch.Tensor, files: list[str], examples: int = 3) -> dict:
    first: dict[bytes, int] = {}
    pairs, conflicting = [], 0
    flat = images.reshape(len(images), -1).numpy()
    for i in range(len(flat)):
        key = flat[i].tobytes()
        j = first.setdefault(key, i)
        if j != i:
            pairs.append((files[j], files[i]))
            conflicting += bool((labels[i] != labels[j]).any())
    return {"images": len(pairs), "conflicting": conflicting, "examples": pairs[:examples]}


def _missing_pairs(schema: Schema, labels: np.ndarray) -> list[dict]:
    out = []
    names = list(schema.names)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            ka, kb = len(schema.values[names[a]]), len(schema.values[names[b]])
            known = (labels[:, a] >= 0) & (labels[:, b] >= 0)
            table = np.zeros((ka, kb), np.int64)
            np.add.at(table, (labels[known, a], labels[known, b]), 1)
            never = [(schema.values[names[a]][i], schema.values[names[b]][k]) for i, k in zip(*np.nonzero(table == 0))]
            out.append({"attributes": (names[a], names[b]), "combinations": ka * kb, "missing": never})
    return out


def describe_folder(folder, size: int = 32, attributes=None, min_per_value: int = MIN_PER_VALUE,
                    schema: Schema | None = None) -> dict:
    """Check a catalog folder and summarise it (``prodgen data info``): raises the same one-line errors as
    :func:`load_folder` (same parameters) when it is not usable; otherwise a dict with ``products``, ``schema`` (its
    ``to_config()``), ``counts`` per value, ``unknown`` cells per attribute, original image ``sizes`` and
    ``modes`` (counts), exact ``duplicates`` (same pixels after conversion), ``pairs`` (value combinations
    that never occur), ``unlisted`` images (in the folder, or a subfolder it lists files in, but not in
    ``metadata.csv``), ``ignored_columns`` and ``warnings``."""
    catalog, shapes, modes, header, files = _read_folder(folder, size, schema, min_per_value, attributes)
    folder = Path(folder)
    schema = catalog.schema
    labels = catalog.labels.numpy()
    counts = {a: catalog.value_counts(a) for a in schema.names}
    unknown = {a: int((labels[:, j] < 0).sum()) for j, a in enumerate(schema.names)}
    listed = {(folder / f).resolve() for f in files}
    places = {folder.resolve()} | {p.parent for p in listed}  # the folder and the subfolders it lists files in
    unlisted = sorted(str(p.relative_to(folder.resolve())) for d in places if d.is_dir() for p in d.iterdir()
                      if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and p.resolve() not in listed)
    info = {
        "folder": str(folder), "products": len(catalog), "size": int(size),
        "schema": schema.to_config(), "counts": counts, "unknown": unknown,
        "sizes": dict(Counter(f"{w}x{h}" for w, h in shapes).most_common()),
        "modes": dict(Counter(modes).most_common()),
        "duplicates": _duplicates(catalog.images, catalog.labels, files),
        "pairs": _missing_pairs(schema, labels) if len(schema) > 1 else [],
        "unlisted": unlisted,
        "ignored_columns": [c for c in header if c != "file" and c not in schema.names],
        "min_per_value": int(min_per_value),
    }
    warnings = []
    for a, c in counts.items():
        if min(c.values()) and max(c.values()) / min(c.values()) > UNBALANCED:
            rare, common = min(c, key=c.get), max(c, key=c.get)
            warnings.append(f"{a} is unbalanced: {common!r} has {c[common]} images, {rare!r} only {c[rare]} "
                            f"(more than {UNBALANCED:g}x): a model sees the rare value less often")
        folded = Counter(v.strip().lower() for v in c)
        same = [v for v in c if folded[v.strip().lower()] > 1]
        if same:
            warnings.append(f"{a} has values that differ only in upper/lower case: {', '.join(same)}")
    for a, n in unknown.items():
        if n:
            warnings.append(f"{a} is unknown (empty) for {n} of {len(catalog)} images")
    other = [s for s in info["sizes"] if s != f"{size}x{size}"]
    if other:
        n = sum(info["sizes"][s] for s in other)
        warnings.append(f"{n} image(s) are not {size}x{size}: fitted inside {size}x{size} (aspect ratio kept, "
                        f"centred on their border colour)")
    dup = info["duplicates"]
    if dup["images"]:
        warnings.append(f"{dup['images']} image(s) are exact copies of an earlier one"
                        + (f", {dup['conflicting']} of them with different labels" if dup["conflicting"] else ""))
    for p in info["pairs"]:
        if p["missing"]:
            a, b = p["attributes"]
            warnings.append(f"{len(p['missing'])} of {p['combinations']} {a} x {b} combinations never occur (e.g. "
                            f"{p['missing'][0][0]} + {p['missing'][0][1]}): a model cannot learn them from this folder")
    if unlisted:
        warnings.append(f"{len(unlisted)} image file(s) in the folder are not listed in metadata.csv (ignored)")
    info["warnings"] = warnings
    return info


def format_description(info: dict) -> str:
    """The text ``prodgen data info`` prints for a :func:`describe_folder` result."""
    lines = [f"{info['folder']}: {info['products']} images, {len(info['schema'])} attribute(s), "
             f"loaded as {info['size']}x{info['size']} RGB"]
    for name, values in info["schema"]:
        counts = info["counts"][name]
        unknown = info["unknown"][name]
        lines.append(f"  {name} ({len(values)} values): " + ", ".join(f"{v} {counts[v]}" for v in values)
                     + (f" | unknown {unknown}" if unknown else ""))
    if info["ignored_columns"]:
        lines.append(f"  other columns (not attributes): {', '.join(info['ignored_columns'])}")
    lines.append("  image sizes: " + ", ".join(f"{s} {n}" for s, n in info["sizes"].items()))
    lines.append("  image modes: " + ", ".join(f"{m} {n}" for m, n in info["modes"].items()))
    dup = info["duplicates"]
    examples = " (e.g. " + "; ".join(f"{a} = {b}" for a, b in dup["examples"]) + ")" if dup["examples"] else ""
    lines.append(f"  exact duplicates: {dup['images']}" + examples)
    for p in info["pairs"]:
        a, b = p["attributes"]
        present = p["combinations"] - len(p["missing"])
        lines.append(f"  {a} x {b}: {present} of {p['combinations']} combinations present")
    lines.append(f"usable: every attribute has 2+ values, every value {info['min_per_value']}+ images")
    lines.extend(f"warning: {w}" for w in info["warnings"])
    return "\n".join(lines)
