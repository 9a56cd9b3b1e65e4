"""Generate product photos from requests: one request, or a whole catalog from a spreadsheet.

Every model is reached through the image-model protocol (``prodgen.models.protocol``) and the registry
(``registry.load_generator``): what a model accepts decides what a request must hold. A request is
attributes (``{"category": "mug", "color": "red"}``; the rest unspecified) for the attribute-controlled
models, a description ("a large red striped t-shirt by Acme", "大号红色条纹T恤，Acme品牌") for the
text-to-image models (attributes are described for them), or just a number of images for the
unconditional ones (``dcgan``, ``vae``). :func:`generate_catalog` writes PNGs and a ``metadata.csv`` with
the columns ``file, category, color, size, brand, pattern, description, model, seed`` (for a
description, the attribute columns say what the text reader heard in it).

A request is the protocol's one :class:`~prodgen.models.protocol.Request` (re-exported here); a row of a request
sheet is a :class:`Row`: a request and how many images of it. Row ``r`` of a run with seed ``S`` draws its noise
from a generator seeded with ``S + r``: the same seed gives byte-identical images, and one row's images do not
depend on the other rows. Rows are generated together, up to :data:`BATCH_IMAGES` images per model call
(``ImageModel.generate_groups``: each row keeps its own generator), so a sheet of single images runs at the
speed of one large request; a row's images match what the row gives alone up to the network's batch-size
rounding (at most one grey level). Everything is written to a temporary folder and renamed at the end: an
interrupted run leaves nothing behind.

Used by ``prodgen generate``, the studio's export (:func:`write_catalog`) and lessons 07, 09 and 12.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from prodgen.catalog.attributes import ATTRIBUTE_NAMES
from prodgen.models.protocol import Request
from prodgen.paths import atomic_folder

__all__ = ["MODELS", "MAX_IMAGES", "BATCH_IMAGES", "Request", "Row", "parse_attrs", "read_requests",  # noqa: F822
           "read_sheet", "sheet_request", "check_n", "load_generator", "check_request", "generate", "generate_catalog",
           "write_catalog", "METADATA_COLUMNS"]  # MODELS: lazy, below


def __getattr__(name):
    if name == "MODELS":  # {generator: what it accepts}, read from the registry when first asked for
        from prodgen.models import registry

        return registry.generator_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MAX_IMAGES = 100_000  # per run: a guard against a typo such as --n 1000000
BATCH_IMAGES = 500
"""Images per model call when rows are batched together: the GANs' network batch (diffusion's is 256), and small
enough that a batch's latents and images take a few MB (a row asking for more goes alone)."""
METADATA_COLUMNS = ("file", *ATTRIBUTE_NAMES, "description", "model", "seed")


@dataclass(frozen=True)
class Row:
    """One row of a request sheet (``prodgen generate --batch``, or ``--attrs`` / ``--text`` as one row): a
    protocol :class:`Request` and how many images of it."""

    request: Request
    n: int = 1


def parse_attrs(text: str, flag: str = "--attrs", schema=None) -> dict:
    """``"color=red,size=large"`` -> ``{"color": "red", "size": "large"}``, checked against ``schema`` (the
    model's; default the course catalog's); ``flag`` names the option in error messages (``prodgen edit``
    passes ``--set``)."""
    from prodgen.catalog.schema import BUILTIN
    from prodgen.models.condition import parse_request

    schema = schema or BUILTIN

    attrs = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"{flag} expects key=value pairs separated by commas (e.g. color=red,size=large), "
                             f"got {part!r}")
        key, value = (s.strip() for s in part.split("=", 1))
        attrs[key] = value
    if not attrs:
        example = ",".join(f"{a}={v[0]}" for a, v in list(schema.values.items())[:2])
        raise ValueError(f"{flag} is empty; give key=value pairs, e.g. {example} "
                         f"(attributes: {', '.join(schema.names)})")
    parse_request(attrs, schema)  # unknown names or values -> ValueError listing the valid ones
    return attrs


def check_n(n, where: str) -> int:
    """``n`` (a number or text) as a whole number of images in 1..MAX_IMAGES; ``where`` names the source in errors."""
    try:
        value = int(str(n).strip())
    except ValueError:
        raise ValueError(f"{where}: n must be a whole number of images (1 to {MAX_IMAGES}), got {n!r}") from None
    if not 1 <= value <= MAX_IMAGES:
        raise ValueError(f"{where}: n must be between 1 and {MAX_IMAGES}, got {value}")
    return value


def read_sheet(path, max_rows: int | None = None) -> tuple[list[str], list[dict]]:
    """``(header, rows)`` of a UTF-8 CSV request sheet: the column names (stripped) and one ``{column: cell}`` dict
    per row (cells stripped; a row with more cells than the header keeps the extra ones under ``None``, as
    ``csv.DictReader`` does). A missing file -> ``FileNotFoundError``; unreadable bytes or CSV, or more than
    ``max_rows`` rows -> ``ValueError``. The sheet reader of ``prodgen generate --batch`` (:func:`read_requests`)
    and ``prodgen ads`` (``prodgen.apps.ads``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"request file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = []
            for row in reader:
                if max_rows is not None and len(rows) == max_rows:
                    raise ValueError(f"{path} has more than {max_rows} rows; at most {max_rows} per run (split the "
                                     "sheet)")
                rows.append({(k.strip() if k is not None else None): (v.strip() if isinstance(v, str) else v)
                             for k, v in row.items()})
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path} is not a readable UTF-8 CSV file ({e})") from None
    return columns, rows


def sheet_request(row: dict, schema=None) -> Request:
    """The :class:`Request` in one row of :func:`read_sheet`: its ``description`` cell and its attribute cells of
    ``schema`` (default the course catalog's; blank = unspecified). A row with more cells than the header, a row
    that asks for nothing, or an unknown attribute value -> ``ValueError`` (the caller says where)."""
    from prodgen.catalog.schema import BUILTIN
    from prodgen.models.condition import parse_request

    schema = schema or BUILTIN
    if None in row:  # csv.DictReader keeps cells beyond the header under the key None
        raise ValueError(f"more cells than the header has columns ({len(row) - 1}); quote cells that contain commas")
    attrs = {a: row[a] for a in schema.names if row.get(a)}
    description = row.get("description") or ""
    if not attrs and not description:
        raise ValueError("the row asks for nothing (no description, no attribute)")
    parse_request(attrs, schema)  # unknown names or values -> ValueError listing the valid ones
    return Request(attrs, description)


def read_requests(path, default_n: int = 1, schema=None) -> list[Row]:
    """Requests from a CSV: a ``description`` column and/or attribute columns of ``schema`` (default the course
    catalog's; blank cells = unspecified), and an optional ``n`` column (images per row, default
    ``default_n``). Other columns are ignored."""
    from prodgen.catalog.schema import BUILTIN

    schema = schema or BUILTIN
    names = schema.names
    columns, rows = read_sheet(path)
    usable = [c for c in columns if c in names or c == "description"]
    if not usable:
        raise ValueError(f"{path} has no request columns; give a 'description' column and/or attribute columns "
                         f"({', '.join(names)}), and optionally 'n' (found: {', '.join(columns) or 'none'})")
    if not rows:
        raise ValueError(f"{path} has a header but no requests")
    requests = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            request = sheet_request(row, schema)
        except ValueError as e:
            raise ValueError(f"{path}, line {i}: {e}") from None
        n = check_n(row["n"], f"{path}, line {i}") if row.get("n") else default_n
        requests.append(Row(request, n))
    return requests


def load_generator(name: str):
    """The shipped image generator ``name`` (sha256-verified), or the one in a checkpoint file (a path ending in
    ``.pt``: ``prodgen train --out / --data``), as a protocol ``ImageModel``; its ``accepts`` says what a request
    must hold and its ``schema`` which attributes."""
    from prodgen.models import registry

    if str(name).endswith(".pt") or "/" in str(name):
        return registry.load_generator_file(name)
    return registry.load_generator(name)


def _request(row) -> Request:
    return row.request if isinstance(row, Row) else row


def check_request(model, row) -> None:
    """``ValueError`` if ``row`` (a :class:`Row` or a :class:`Request`) does not fit ``model`` (checked before
    anything is written): the model's own refusal (``ImageModel.condition``), or, for a conditional model, a
    row that asks for nothing."""
    request = _request(row)
    model.condition([request])
    if model.conditional and request.unconditional:
        raise ValueError(f"{model.name} needs a request: give --attrs (e.g. category=mug,color=red) or --batch")


def _check_rows(model, rows: list[Row]) -> None:
    """Every row checked before anything is written: all at once (one call to the model), and row by row only to
    name the first bad one (``request 2: ...``)."""
    try:
        model.condition([row.request for row in rows])
        if not (model.conditional and any(row.request.unconditional for row in rows)):
            return
    except ValueError:
        pass
    for i, row in enumerate(rows):
        try:
            check_request(model, row)
        except ValueError as e:
            raise ValueError(f"request {i + 1}: {e}" if len(rows) > 1 else str(e)) from None


def generate(model, row, seed: int, knobs: dict | None = None) -> tuple[torch.Tensor, dict]:
    """``(uint8 images n x 3 x H x W, the attributes requested or read)`` for one :class:`Row` (or one image of a
    :class:`Request`); ``knobs``: the model's settings (e.g. ``{"guidance": 3.0, "steps": 20}`` for diffusion),
    checked by the model."""
    check_request(model, row)
    request, n = _request(row), row.n if isinstance(row, Row) else 1
    return model.generate([request] * n, seed=seed, **(knobs or {})), model.understood([request])[0]


def _batches(rows: list[Row], size: int):
    """Consecutive runs of ``(row index, row)`` holding at most ``size`` images (a larger row goes alone)."""
    batch, images = [], 0
    for i, row in enumerate(rows):
        if batch and images + row.n > size:
            yield batch
            batch, images = [], 0
        batch.append((i, row))
        images += row.n
    if batch:
        yield batch


def _generate_batch(model, batch: list, seed: int, knobs: dict) -> list[tuple[torch.Tensor, dict, str]]:
    """``(images, attributes requested or read, description)`` for each ``(row index, row)`` of ``batch``, the
    rows generated together (row ``i`` seeded with ``seed + i``)."""
    requests = [row.request for _, row in batch]
    images = model.generate_groups([([row.request] * row.n, seed + i) for i, row in batch], **knobs)
    return list(zip(images, model.understood(requests), model.described(requests)))


def _prepare_out(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder; choose a new folder for the images")
        if any(out.iterdir()):
            raise FileExistsError(f"{out} is not empty; choose an empty or new folder, or delete it first")


def generate_catalog(name, requests: list[Row], out_dir, seed: int = 0, progress: bool = False,
                     knobs: dict | None = None) -> Path:
    """Generate every row with model ``name`` (a shipped name, a checkpoint file, or an ``ImageModel``) into
    ``out_dir`` (PNGs + ``metadata.csv`` with the model's attribute columns); returns it. Rows go to the model
    :data:`BATCH_IMAGES` images at a time, each with its own seed (``seed + row index``).
    ``knobs``: settings of the model (``prodgen generate --guidance 3 --steps 20``), checked before anything
    is written (a knob the model lacks -> ``ValueError`` naming the knobs it has)."""
    from PIL import Image

    from prodgen.models.protocol import ImageModel

    if not requests:
        raise ValueError("no requests to generate")
    total = sum(r.n for r in requests)
    if total > MAX_IMAGES:
        raise ValueError(f"the requests ask for {total} images in all; at most {MAX_IMAGES} per run")
    out = Path(out_dir)
    _prepare_out(out)
    model = name if isinstance(name, ImageModel) else load_generator(name)
    names = model.schema.names
    knobs = {k: v for k, v in (knobs or {}).items() if v is not None}
    model.check_knobs(knobs)
    _check_rows(model, requests)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"generating with {model.name}", unit="img")
    try:
        with atomic_folder(out) as tmp:
            rows, k = [], 0
            for batch in _batches(requests, BATCH_IMAGES):
                for (r_index, _), (images, attrs, description) in zip(batch, _generate_batch(model, batch, seed,
                                                                                              knobs)):
                    for pixels in images.permute(0, 2, 3, 1).numpy():
                        file = f"{k:06d}.png"
                        Image.fromarray(pixels).save(tmp / file, optimize=False)
                        rows.append([file, *(attrs.get(a, "") for a in names), description, model.name,
                                     seed + r_index])
                        k += 1
                    if bar is not None:
                        bar.update(len(images))
            _write_metadata(tmp, rows, ("file", *names, "description", "model", "seed"))
    finally:
        if bar is not None:
            bar.close()
    return out


def _write_metadata(folder: Path, rows: list[list], columns=METADATA_COLUMNS) -> None:
    """``metadata.csv`` with ``columns`` (default :data:`METADATA_COLUMNS`) and one row per image."""
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def write_catalog(out_dir, images: torch.Tensor, rows: list[dict]) -> Path:
    """Write uint8 ``images`` (N x 3 x H x W) and one metadata dict per image (keys from ``METADATA_COLUMNS``
    except ``file``; missing ones blank) as a folder in :func:`generate_catalog`'s format, atomically (a
    temporary folder renamed at the end). ``out_dir`` must be new or empty. Used by the studio's export."""
    from PIL import Image

    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or len(images) != len(rows):
        raise ValueError(f"write_catalog needs uint8 images N x 3 x H x W and one metadata row per image, got "
                         f"{tuple(images.shape)} {images.dtype} and {len(rows)} rows")
    if not len(images):
        raise ValueError("nothing to write: no images")
    out = Path(out_dir)
    _prepare_out(out)
    pixels = images.permute(0, 2, 3, 1).numpy()
    with atomic_folder(out) as tmp:
        lines = []
        for k, row in enumerate(rows):
            file = f"{k:06d}.png"
            Image.fromarray(pixels[k]).save(tmp / file, optimize=False)
            lines.append([file, *(row.get(c, "") for c in METADATA_COLUMNS[1:])])
        _write_metadata(tmp, lines)
    return out
