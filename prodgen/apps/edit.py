"""Edit a real product photo: change some of its attributes and keep the rest (``prodgen edit``).

A photo from outside the catalog has no labels, so the shipped ``judge`` reads its five attributes; the
requested changes (``{"color": "teal"}``) replace some of them, and the model edits through the image-model
protocol (``ImageModel.edit``; the models whose ``can_edit`` is true) with the photo, the labels read on it and
the changes:

- ``cvae`` (lesson 06) encodes the photo with the labels read on it and decodes that code with the changed
  labels. It is deterministic (the posterior mean), so it makes one result per photo: ``n > 1`` is refused.
  Codes drawn from ``q(z | x, y)`` instead would not be real variants: on 200 test photos the posterior's
  spread is small (std 0.06-0.73 per dimension against 0.36-1.76 between photos), and decodes of drawn codes
  differ from the mean's by about 1.3 of 255 per pixel on average, against 6.6 between the photo and its
  reconstruction.
- ``diffusion`` (lesson 11) regenerates only the product region (RePaint-style inpainting,
  ``prodgen.models.diffusion.edit``); the pixels outside that region are the photo's own. Variant ``i`` is
  drawn with seed ``S + i``, so ``after-<seed>.png`` is what a run with ``--seed <seed> --n 1`` writes (up to
  batch-size rounding, at most one grey level: the variants are made in one batch, ``ImageModel.edit_variants``).

Whether an editor draws anything is the protocol's ``edit_draws``, not a test of its name.

**Photos of any size.** Any file Pillow reads (PNG, JPEG, WebP, GIF: the first frame, ...) in any mode:
transparency is laid on the catalog's light studio grey (:data:`STUDIO_GREY`), then the image is made RGB.
A photo that is not 32 x 32 is fitted inside 32 x 32 (Lanczos, aspect ratio kept) and centred on its own
border colour (the median of its border pixels), so a wide photo gets background bars, not a squashed
product; :func:`load_photo` returns a note saying so.

:func:`edit_to_folder` writes ``before.png`` (the photo as the model saw it, 32 x 32), one ``after-<seed>.png``
per variant and ``metadata.csv`` into a new or empty folder, atomically (a temporary folder renamed at the end):
the columns are ``file, category, color, size, brand, pattern`` (what the judge reads on that image, in the
catalog folder's layout), then ``role`` (before / after), ``model``, ``seed``
(empty for a deterministic editor), ``request_<attribute>`` (the labels the edit asked for: read on the photo,
with the changes), ``changes`` (e.g. ``color=teal``) and ``note`` (the resize note).

Used by ``prodgen edit`` and lessons 06 and 11.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import torch

from prodgen.catalog.attributes import ATTRIBUTE_NAMES

__all__ = ["SIZE", "STUDIO_GREY", "METADATA_COLUMNS", "editors", "load_editor", "load_photo", "check_changes",
           "edit_photo", "edit_to_folder"]

SIZE = 32
"""The models' resolution: photos are edited at 32 x 32."""

STUDIO_GREY = (237, 237, 237)
"""What transparent pixels become: the catalog's studio sweep at mid-height (``prodgen.catalog.render``)."""

METADATA_COLUMNS = ("file", *ATTRIBUTE_NAMES, "role", "model", "seed", *(f"request_{a}" for a in ATTRIBUTE_NAMES),
                    "changes", "note")


def _model_class(name: str):
    """The protocol class of generator ``name`` (its spec's ``model``), without loading its checkpoint."""
    from prodgen.models import registry

    return registry.spec(name).model


def editors() -> list[str]:
    """The generators that can edit photos (their protocol class's ``can_edit``), shipped or not."""
    from prodgen.models import registry

    return [name for name in registry.generators() if _model_class(name).can_edit]


def _check_editor(name: str) -> None:
    """``ValueError`` unless ``name`` is a shipped generator that can edit (says which can, or how to get it)."""
    from prodgen.models import registry

    can = ", ".join(editors())
    if name not in editors():
        if name in [s.name for s in registry.specs()] or name in registry.manifest():
            raise ValueError(f"{name} cannot edit photos; models that can edit: {can}")
        raise ValueError(f"unknown model {name!r}; models that can edit: {can}")
    if name not in registry.manifest():
        raise ValueError(f"{name} can edit photos but is not shipped yet; train it with `prodgen train {name}`")


def load_editor(name: str):
    """``(editor, draws)``: ``editor(images uint8 N x 3 x H x W, labels N x 5, changes, seed=..., **knobs) ->
    images in [-1, 1]``, the shipped model ``name``'s ``ImageModel.edit`` (sha256-verified); ``draws``: whether
    its results vary with the seed (``edit_draws``). A model that cannot edit -> ``ValueError`` naming the ones
    that can."""
    from prodgen.models import registry

    _check_editor(name)
    model = registry.load_generator(name)

    def editor(images, labels, changes, seed=None, **knobs):
        return model.edit(images, labels, changes, **({"seed": seed} if seed is not None else {}), **knobs)

    return editor, model.edit_draws


def check_changes(changes) -> dict:
    """``changes`` as a dict of valid attribute values (names and values checked); empty -> ``ValueError``."""
    from prodgen.models.condition import parse_request

    if not isinstance(changes, dict) or not any(v not in (None, "") for v in changes.values()):
        raise ValueError(f"no change requested; give attribute=value pairs, e.g. color=teal,pattern=dotted "
                         f"(attributes: {', '.join(ATTRIBUTE_NAMES)})")
    parse_request(changes)  # unknown names or values -> ValueError listing the valid ones
    return {a: v for a, v in changes.items() if v not in (None, "")}


def _whole(value, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be a whole number >= {low}, got {value!r}")
    return value


class _TooLarge(Exception):
    """An image refused by its size (kept apart from Pillow's own errors, which say "not an image")."""


def load_photo(path, size: int = SIZE, max_pixels: int | None = None) -> tuple[torch.Tensor, str | None]:
    """``(uint8 1 x 3 x size x size, note)`` from an image file; ``note`` says how it was resized (``None`` when
    it already was ``size`` x ``size``). Missing -> ``FileNotFoundError``; not an image, or (``max_pixels``) an
    image with more pixels than that, refused from its header before it is decoded -> ``ValueError``."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from prodgen.catalog.folder import to_rgb

    path = Path(path)
    if not path.is_file():
        what = " (it is a folder)" if path.is_dir() else " (not a regular file)" if path.exists() else ""
        raise FileNotFoundError(f"no photo at {path}{what}")
    too_large = f"{path} has more than {max_pixels or 0:,} pixels; give a smaller photo"
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:  # a decompression-bomb warning: the size is refused below instead
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if max_pixels is not None and im.width * im.height > max_pixels:
                    raise _TooLarge(f"{path} is {im.width}x{im.height}: more than {max_pixels:,} pixels; give a "
                                    "smaller photo")
                im.load()
                picture = to_rgb(im, STUDIO_GREY)  # the catalog loader's rules: 16-bit grey scaled, not clipped
    except _TooLarge as e:
        raise ValueError(str(e)) from None
    except Image.DecompressionBombError as e:
        if max_pixels is not None:
            raise ValueError(too_large) from None
        raise ValueError(f"{path} is not an image Pillow can read (PNG, JPEG, ...): {type(e).__name__}: "
                         f"{str(e)[:120]}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"{path} is not an image Pillow can read (PNG, JPEG, ...): "
                         f"{type(e).__name__}: {str(e)[:120]}") from None
    width, height = picture.size
    note = None
    if (width, height) != (size, size):
        scale = size / max(width, height)
        fitted = picture.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.LANCZOS)
        pixels = np.asarray(fitted)
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])  # K x 3
        colour = tuple(int(c) for c in np.median(border, axis=0).round())
        picture = Image.new("RGB", (size, size), colour)
        picture.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
        padded = "" if fitted.size == (size, size) else f", centred on its border colour {colour}"
        note = f"{path.name} is {width}x{height}: resized to {size}x{size} (fitted inside with Lanczos{padded})"
    image = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)[None]  # 1 x 3 x size x size
    return image.contiguous(), note


def _read(judge, images: torch.Tensor) -> list[dict]:
    """What the judge reads on uint8 images: one ``{attribute: value}`` per image."""
    from prodgen.catalog import normalize
    from prodgen.models.condition import request_to_dict

    with torch.no_grad():
        labels = judge.predict(normalize(images).contiguous(memory_format=torch.channels_last))
    return [request_to_dict(row) for row in labels]


def edit_photo(model_name: str, image_path, changes: dict, seed: int = 0, n: int = 1, **knobs):
    """Edit one photo: ``(before uint8 1 x 3 x 32 x 32, afters uint8 n x 3 x 32 x 32, info)``.

    The judge reads the photo's attributes, ``changes`` replaces some of them, and ``model_name``'s editor
    redraws the photo. ``n`` variants with seeds ``seed, seed + 1, ...`` (only for editors that draw: not
    ``cvae``). ``knobs`` go to the editor (e.g. ``steps=``, ``guidance=`` for diffusion). ``info``: ``model``,
    ``seeds`` (``None`` for a deterministic editor), ``read`` (on the photo), ``request`` (after the changes),
    ``changes``, ``results`` (read on each after-image), ``note`` (the resize note or ``None``),
    ``already`` (requested values the photo already shows).
    """
    from prodgen.catalog import denormalize
    from prodgen.models import registry
    from prodgen.models.condition import parse_request, request_to_dict

    seed, n = _whole(seed, "seed", 0), _whole(n, "n", 1)
    changes = check_changes(changes)
    _check_editor(model_name)  # cannot edit, unknown or not shipped: said before any work
    draws = _model_class(model_name).edit_draws
    if n > 1 and not draws:
        raise ValueError(f"{model_name}'s edit is deterministic (one result per photo): use n = 1, or an editor "
                         f"that draws variants ({', '.join(e for e in editors() if _model_class(e).edit_draws)})")
    before, note = load_photo(image_path)
    judge = registry.load("judge")
    model = registry.load_generator(model_name)
    read = _read(judge, before)[0]
    labels = parse_request(read)  # 1 x 5, every attribute read
    request = request_to_dict(torch.where(parse_request(changes) >= 0, parse_request(changes), labels)[0])
    seeds = [seed + i for i in range(n)] if draws else None
    with torch.no_grad():
        outs = model.edit_variants(before, labels, changes, seeds or [seed], **knobs)  # one batch for all seeds
    afters = denormalize(torch.cat(outs).float())
    info = {"model": model_name, "seeds": seeds, "read": read, "request": request, "changes": changes,
            "results": _read(judge, afters), "note": note,
            "already": {a: v for a, v in changes.items() if read.get(a) == v}}
    return before, afters, info


def edit_to_folder(model_name: str, image_path, changes: dict, out_dir, seed: int = 0, n: int = 1,
                   **knobs) -> tuple[Path, dict]:
    """:func:`edit_photo`, written to ``out_dir`` (new or empty) as ``before.png``, ``after-<seed>.png`` per
    variant and ``metadata.csv`` (:data:`METADATA_COLUMNS`), atomically; returns ``(out_dir, info)``, and
    ``info["files"]`` lists the after-images. A non-empty ``out_dir`` is refused before any work."""
    from PIL import Image

    from prodgen.apps.generate import _prepare_out
    from prodgen.paths import atomic_folder

    out = Path(out_dir)
    _prepare_out(out)
    before, afters, info = edit_photo(model_name, image_path, changes, seed=seed, n=n, **knobs)
    _prepare_out(out)  # still empty after the (possibly long) edit
    names = [f"after-{s}.png" for s in (info["seeds"] or [seed])]
    changed = ",".join(f"{a}={v}" for a, v in info["changes"].items())
    request = [info["request"].get(a, "") for a in ATTRIBUTE_NAMES]
    rows = [["before.png", *(info["read"].get(a, "") for a in ATTRIBUTE_NAMES), "before", "", "", *request,
             changed, info["note"] or ""]]
    for k, file in enumerate(names):
        rows.append([file, *(info["results"][k].get(a, "") for a in ATTRIBUTE_NAMES), "after", model_name,
                     "" if info["seeds"] is None else info["seeds"][k], *request, changed, info["note"] or ""])
    with atomic_folder(out) as tmp:
        for file, image in zip(["before.png", *names], torch.cat([before, afters])):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp / file, optimize=False)
        with open(tmp / "metadata.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(METADATA_COLUMNS)
            writer.writerows(rows)
    return out, {**info, "files": names}
