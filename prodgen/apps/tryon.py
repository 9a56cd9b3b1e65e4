"""Try a product photo on a rendered scene (``prodgen tryon``, lesson 15).

**Scenes are named, not uploaded.** A try-on model reads more than the scene's pixels: the slot's mask (which
pixels it may change) and the slot's geometry (``prodgen.catalog.scenes.slot_anchors``: place, scale, tilt, the
role pose keypoints play in published systems). A scene PNG carries neither, so a scene is named by the
deterministic renderer that made it: ``SPLIT:INDEX`` (e.g. ``test:17``) is scene INDEX of that split
(``prodgen.catalog.scenes.scene_at``, data seed 0), INDEX below the split's size (``SCENE_DEFAULT_N``: the scenes
of the data set lesson 15 uses). :func:`list_slots` (``prodgen tryon --list-slots test:17``) says what a scene holds.

**The product photo** is any image file Pillow reads, fitted to 64 px by ``prodgen.apps.edit.load_photo`` (the
loader of ``prodgen edit``, at the try-on models' resolution; a note says how it was resized). A symbolic link, a
file that is not an image, and an image of more than :data:`MAX_PIXELS` pixels (read from its header, before it
is decoded) are refused. The shipped 64 px photo judge (``judge-64``) reads what the photo shows; a product whose
category the slot does not hold (a mug on the head) is refused, naming the categories that fit.

:func:`tryon_to_folder` writes into a new or empty folder, atomically (nothing is left if anything fails):
``scene.png``, ``product.png`` (the photo as the model saw it), ``mask.png`` (white: the pixels the model may
change), ``result-<seed>.png`` per try-on and ``metadata.csv`` (:data:`METADATA_COLUMNS`): per file its role,
scene, slot, model and seed, then the attributes read on it: by the scene judge on the slot of the scene and of
each result (only the attributes the slot shows: ``Slot.shown``), by ``judge-64`` on the product photo.

Used by ``prodgen tryon`` and lesson 15.
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from prodgen.catalog.attributes import ATTRIBUTE_NAMES

__all__ = ["DEFAULT_MODEL", "SIZE", "MAX_PIXELS", "MAX_N", "METADATA_COLUMNS", "parse_scene", "load_scene",
           "list_slots", "choose_slot", "load_product", "try_on", "tryon_to_folder"]

DEFAULT_MODEL = "cut-paste"
SIZE = 64
"""The scenes' and the try-on models' resolution: product photos are fitted to 64 x 64."""
MAX_PIXELS = 40_000_000
"""The largest product photo read (a 40-megapixel camera's): anything larger is refused from its header."""
MAX_N = 16
"""The most try-ons (seeds) one run makes."""
SCENE_SEED = 0
"""The scene data set's seed (``load_scenes(split)`` and ``scene_at(split, 0, i)``)."""
PHOTO_JUDGE, SCENE_JUDGE = "judge-64", "scene-judge"
METADATA_COLUMNS = ("file", "role", "scene", "slot", "model", "seed", *ATTRIBUTE_NAMES, "read_by", "note")


def parse_scene(text) -> tuple[str, int]:
    """``"test:17"`` -> ``("test", 17)``; anything else -> ``ValueError`` saying the form and the valid range."""
    from prodgen.catalog.scenes import SCENE_DEFAULT_N, SCENE_SPLITS

    ranges = ", ".join(f"{s}:0-{SCENE_DEFAULT_N[s] - 1}" for s in SCENE_SPLITS)
    split, sep, index = str(text).strip().partition(":")
    if not sep or not split:
        raise ValueError(f"a scene is SPLIT:INDEX, e.g. test:17 (scenes {ranges}), got {text!r}")
    if split not in SCENE_SPLITS:
        raise ValueError(f"unknown scene split {split!r}; valid splits: {', '.join(SCENE_SPLITS)} (scenes {ranges})")
    if not index.strip().isdigit() or not index.strip().isascii():
        raise ValueError(f"the scene index must be a whole number 0-{SCENE_DEFAULT_N[split] - 1}, got {index!r}")
    number = int(index)
    if number >= SCENE_DEFAULT_N[split]:
        raise ValueError(f"scene index {number} is out of range: the {split} split has scenes 0-"
                         f"{SCENE_DEFAULT_N[split] - 1}")
    return split, number


def load_scene(text):
    """The ``prodgen.catalog.scenes.Scene`` named ``SPLIT:INDEX`` (:func:`parse_scene`)."""
    from prodgen.catalog.scenes import scene_at

    split, index = parse_scene(text)
    return scene_at(split, SCENE_SEED, index)


def _product_words(attrs: dict) -> str:
    return f"a {attrs['size']} {attrs['color']} {attrs['pattern']} {attrs['category']} by {attrs['brand']}"


def list_slots(text) -> str:
    """What scene ``SPLIT:INDEX`` holds, one line per slot: the categories that fit, the product in it (the
    truth it was rendered with), the mask's size."""
    from prodgen.catalog.scenes import KINDS, SLOTS

    scene = load_scene(text)
    p = scene.params
    what = f"pose {p['pose']}, {p['body']} body" if p["kind"] == "mannequin" else "a table"
    lines = [f"{str(text).strip()}: a {p['kind']} scene ({what}); slots, back to front:"]
    for slot in KINDS[p["kind"]]:
        fits = "/".join(SLOTS[slot].categories)
        worn = _product_words(scene.slots[slot]) if slot in scene.slots else "empty"
        lines.append(f"  {slot:<6} holds {fits:<18} now: {worn:<48} mask {int(scene.masks[slot].sum())} px")
    return "\n".join(lines)


def choose_slot(scene, slot: str | None, name: str) -> str:
    """``slot`` if the scene has it; ``None`` is the scene's only slot (a tabletop's ``table``); else ``ValueError``
    naming the scene's slots."""
    from prodgen.catalog.scenes import KINDS

    kind = scene.params["kind"]
    valid = KINDS[kind]
    if slot is None or not str(slot).strip():
        if len(valid) == 1:
            return valid[0]
        raise ValueError(f"scene {name} (a {kind}) has slots {', '.join(valid)}: choose one with --slot")
    if slot not in valid:
        raise ValueError(f"scene {name} (a {kind}) has no slot {slot!r}; its slots: {', '.join(valid)}")
    return slot


def load_product(path) -> tuple[torch.Tensor, str | None]:
    """``(uint8 1 x 3 x 64 x 64, note)`` from a product photo (``prodgen.apps.edit.load_photo`` at 64 px); a
    symbolic link or an image of more than :data:`MAX_PIXELS` pixels -> ``ValueError``."""
    from prodgen.apps.edit import load_photo

    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; give the photo file itself")
    return load_photo(path, SIZE, max_pixels=MAX_PIXELS)


def _check_model(name: str) -> None:
    from prodgen.models import registry

    ready = registry.tryon_models(shipped=True)
    if name in ready:
        return
    if name in registry.tryon_models():
        raise ValueError(f"{name} can try products on but is not shipped yet; train it with `prodgen train {name}` "
                         f"(ready: {', '.join(ready)})")
    raise ValueError(f"{name!r} is not a try-on model; try-on models: {', '.join(ready)}")


def _whole(value, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ValueError(f"{what} must be a whole number {'>= ' + str(low) if high is None else f'{low}-{high}'}, "
                         f"got {value!r}")
    return value


def _read(judge, images: torch.Tensor) -> list[dict]:
    """``{attribute: value}`` per uint8 image (N x 3 x H x W), as ``judge`` reads it."""
    from prodgen.catalog import normalize
    from prodgen.models.condition import request_to_dict

    with torch.no_grad():
        return [request_to_dict(row) for row in judge.predict(normalize(images))]


def _read_slot(judge, images: torch.Tensor, mask: torch.Tensor, slot: str) -> list[dict]:
    """What the scene judge reads on each image's ``slot`` (its 32 px crop, grey outside the mask): only the
    attributes the slot shows."""
    from prodgen.catalog.scenes import SLOTS, slot_crops

    crops = slot_crops(images, mask.expand(len(images), -1, -1), 32, 128)
    return [{a: v for a, v in read.items() if a in SLOTS[slot].shown} for read in _read(judge, crops)]


def try_on(scene_name: str, slot: str | None, product_path, model_name: str = DEFAULT_MODEL, seed: int = 0,
           n: int = 1, **knobs) -> dict:
    """One product photo tried on one scene, ``n`` times (seeds ``seed .. seed + n - 1``; only for models whose
    try-on draws, ``try_on_draws``). Returns a dict: ``scene`` (the ``Scene``), ``slot``, ``mask`` (64 x 64 bool),
    ``product`` (uint8 1 x 3 x 64 x 64), ``note``, ``seeds``, ``results`` (uint8 n x 3 x 64 x 64), ``read``
    (``{"scene", "product", "results"}``: what the judges read) and ``model``. Every input is checked before the
    model runs; a product the slot cannot hold -> ``ValueError``."""
    from prodgen.catalog.scenes import KINDS, SLOTS
    from prodgen.models import registry

    seed, n = _whole(seed, "seed", 0), _whole(n, "n", 1, MAX_N)
    name = str(scene_name).strip()
    scene = load_scene(name)
    slot = choose_slot(scene, slot, name)
    _check_model(model_name)
    if n > 1 and not registry.spec(model_name).model.try_on_draws:
        raise ValueError(f"{model_name}'s try-on is deterministic (one result per product): use --n 1")
    product, note = load_product(product_path)
    read_product = _read(registry.load(PHOTO_JUDGE), product)[0]
    fits = SLOTS[slot].categories
    if read_product["category"] not in fits:
        cat = read_product["category"]
        home = " or ".join(f"slot {s} of a {k} scene" for k, slots in KINDS.items() for s in slots
                           if cat in SLOTS[s].categories)
        raise ValueError(f"the product photo reads as {_product_words(read_product)} ({PHOTO_JUDGE}); slot {slot!r} "
                         f"holds {', '.join(fits)}, not a {cat} (a {cat} goes in {home})")
    model = registry.load_tryon(model_name)
    seeds = [seed + i for i in range(n)]
    results = torch.stack([model.try_on(scene, slot, product, seed=s, **knobs) for s in seeds])
    mask = torch.from_numpy(scene.masks[slot])
    judge = registry.load(SCENE_JUDGE)
    read_scene = _read_slot(judge, torch.from_numpy(scene.image)[None], mask, slot)[0]
    return {"scene": scene, "name": name, "slot": slot, "mask": mask, "product": product, "note": note,
            "seeds": seeds, "results": results, "model": model_name,
            "read": {"scene": read_scene, "product": read_product, "results": _read_slot(judge, results, mask, slot)}}


def _rows(done: dict, files: list[str]) -> list[list]:
    """metadata.csv's rows (:data:`METADATA_COLUMNS`) for :func:`try_on`'s result."""
    where = [done["name"], done["slot"]]
    attrs = lambda read: [read.get(a, "") for a in ATTRIBUTE_NAMES]  # noqa: E731
    rows = [["scene.png", "scene", *where, "", "", *attrs(done["read"]["scene"]), SCENE_JUDGE, ""],
            ["product.png", "product", *where, "", "", *attrs(done["read"]["product"]), PHOTO_JUDGE,
             done["note"] or ""],
            ["mask.png", "mask", *where, "", "", *attrs({}), "", "white: the pixels the model may change"]]
    for file, s, read in zip(files, done["seeds"], done["read"]["results"]):
        rows.append([file, "result", *where, done["model"], s, *attrs(read), SCENE_JUDGE, ""])
    return rows


def _check_out(out: Path) -> None:
    from prodgen.apps.generate import _prepare_out

    if out.is_symlink():
        raise ValueError(f"--out {out} is a symbolic link; give a new or empty folder")
    _prepare_out(out)


def tryon_to_folder(scene_name: str, slot: str | None, product_path, out_dir, model_name: str = DEFAULT_MODEL,
                    seed: int = 0, n: int = 1, **knobs) -> tuple[Path, dict]:
    """:func:`try_on`, written to ``out_dir`` (new or empty; a non-empty one is refused before any work) as
    ``scene.png``, ``product.png``, ``mask.png``, ``result-<seed>.png`` and ``metadata.csv``, atomically; returns
    ``(out_dir, info)`` with ``info["files"]`` the results' names."""
    from PIL import Image

    from prodgen.paths import atomic_folder

    out = Path(out_dir)
    _check_out(out)
    done = try_on(scene_name, slot, product_path, model_name, seed=seed, n=n, **knobs)
    _check_out(out)  # still empty after the work
    files = [f"result-{s}.png" for s in done["seeds"]]
    pictures = {"scene.png": torch.from_numpy(done["scene"].image), "product.png": done["product"][0],
                **dict(zip(files, done["results"]))}
    with atomic_folder(out) as tmp:
        for file, image in pictures.items():
            Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(tmp / file, optimize=False)
        Image.fromarray(done["mask"].numpy().astype("uint8") * 255).save(tmp / "mask.png", optimize=False)  # grey
        with open(tmp / "metadata.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(METADATA_COLUMNS)
            writer.writerows(_rows(done, files))
    return out, {**done, "files": files}
