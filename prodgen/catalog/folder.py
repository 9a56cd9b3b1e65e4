"""The catalog on disk: a folder of PNGs plus ``metadata.csv``.

``metadata.csv`` has the columns ``file, category, color, size, brand, pattern,
description_en, description_zh``. :func:`export_catalog` writes that format and
:func:`load_folder` reads it back, so the same loader takes a user's own catalog
("bring your own catalog", lesson 12). Also used by ``prodgen data export``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .attributes import ATTRIBUTE_NAMES, values_of
from .dataset import Catalog
from ..paths import atomic_folder

__all__ = ["COLUMNS", "export_catalog", "load_folder", "metadata_csv"]

COLUMNS = ("file", *ATTRIBUTE_NAMES, "description_en", "description_zh")


def _file_names(catalog: Catalog) -> list[str]:
    prefix = f"{catalog.name}_" if catalog.name else ""
    return [f"{prefix}{i:06d}.png" for i in range(len(catalog))]


def metadata_csv(catalog: Catalog) -> str:
    """The ``metadata.csv`` text for ``catalog`` (unknown attributes are empty cells)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i, name in enumerate(_file_names(catalog)):
        attrs = catalog.attributes(i)
        writer.writerow([name, *(attrs.get(a, "") for a in ATTRIBUTE_NAMES),
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


def load_folder(folder, size: int | None = None, strict: bool = True) -> Catalog:
    """Read a catalog folder (PNGs plus ``metadata.csv``) into a :class:`Catalog`.

    - Columns other than ``COLUMNS`` are ignored; attribute columns may be missing
      (their labels are -1, "unknown"), and so may empty cells.
    - ``strict=True`` accepts only the course's attribute values; ``strict=False``
      takes the values found in the file (sorted) as the vocabulary.
    - Images are converted to RGB and resized to ``size`` (default: the first image's
      width) if they differ.
    - A row whose file is missing or unreadable is an error that names the row.
    """
    folder = Path(folder)
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(
            f"no metadata.csv in {folder}; a catalog folder holds PNG files and a metadata.csv "
            f"with the columns {', '.join(COLUMNS)} (only 'file' is required)")
    with open(meta, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
        columns = rows[0].keys() if rows else []
    if "file" not in columns:
        raise ValueError(f"{meta} has no 'file' column (found: {', '.join(columns) or 'nothing'}); "
                         f"expected columns: {', '.join(COLUMNS)}")
    present = [a for a in ATTRIBUTE_NAMES if a in columns]
    values = {}
    for a in ATTRIBUTE_NAMES:
        if strict or a not in present:
            values[a] = values_of(a) if strict else []
        else:
            values[a] = sorted({(r[a] or "").strip() for r in rows} - {""})

    labels = np.full((len(rows), len(ATTRIBUTE_NAMES)), -1, np.int64)
    images = []
    for i, row in enumerate(rows):
        where = f"{meta}, row {i + 2} (file {row['file']!r})"  # row 1 is the header
        for j, a in enumerate(ATTRIBUTE_NAMES):
            value = (row.get(a) or "").strip()
            if a in present and value:
                if value not in values[a]:
                    raise ValueError(f"{where}: unknown {a} {value!r}; valid values: {', '.join(values[a])}")
                labels[i, j] = values[a].index(value)
        images.append(_read_image(folder / (row["file"] or ""), where, size or (images[0].shape[1] if images else None)))
    if not rows:
        raise ValueError(f"{meta} lists no products")
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Catalog(pixels, torch.from_numpy(labels),
                   [r.get("description_en") or "" for r in rows], [r.get("description_zh") or "" for r in rows],
                   values=values, name=folder.name)


def _read_image(path: Path, where: str, size: int | None) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image file is missing ({path})")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is None:
                size = im.width
            if im.size != (size, size):
                im = im.resize((size, size), Image.LANCZOS)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{where}: cannot be read as an image ({e})") from None
