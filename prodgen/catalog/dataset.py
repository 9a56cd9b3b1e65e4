"""Catalog datasets: splits, rendering in parallel, the on-disk cache, tensors in memory.

Product ``i`` of a split depends only on ``(split, seed, i)``, so a smaller catalog is
the first ``n`` products of a larger one, and the same seed always gives the same
bytes. Rendered catalogs are cached as ``.npz`` files and loaded as uint8 tensors. A split renders in any look
of ``prodgen.catalog.looks`` (lesson 16): product ``i`` is the same product, in the same pose, in every look.

Used by every lesson from 01 on.
"""
from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from prodgen import paths
from prodgen.catalog.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, HELD_OUT_PAIRS, values_of
from prodgen.catalog.describe import random_description
from prodgen.catalog.looks import check_look
from prodgen.catalog.render import SUPPORTED_SIZES, draw_parameters, render_array

__all__ = [
    "SPLITS",
    "DEFAULT_N",
    "Catalog",
    "batch_indices",
    "load_catalog",
    "render_catalog",
    "sample_attributes",
    "normalize",
    "denormalize",
    "cache_path",
]

SPLITS = ("train", "val", "test", "unseen")
DEFAULT_N = {"train": 20_000, "val": 2_000, "test": 2_000, "unseen": 2_000}
CACHE_VERSION = 9  # bump when rendering or descriptions change
LOOK_CACHE_VERSION = 1  # bump when a look other than the photo changes (prodgen.catalog.looks)
_SPLIT_ID = {name: i for i, name in enumerate(SPLITS)}
_HELD_OUT = set(HELD_OUT_PAIRS)


# ------------------------------------------------------------------ one product
def sample_attributes(split: str, rng: np.random.Generator) -> dict:
    """Draw a product's attributes, uniformly over the combinations this split allows.

    ``train``, ``val`` and ``test`` never contain a held-out (category, color) pair;
    ``unseen`` contains only those.
    """
    while True:
        attrs = {name: values[rng.integers(len(values))].key for name, values in ATTRIBUTES.items()}
        if ((attrs["category"], attrs["color"]) in _HELD_OUT) == (split == "unseen"):
            return attrs


def _product(split: str, seed: int, index: int, size: int, look: str = "photo"):
    rng = np.random.default_rng([seed, _SPLIT_ID[split], index])
    attrs = sample_attributes(split, rng)
    image = render_array(attrs, size, draw_parameters(rng, attrs["size"]), look)
    mentioned, en, zh = random_description(attrs, rng)
    return image, attrs, mentioned, en, zh


def _render_range(split: str, seed: int, size: int, start: int, stop: int, look: str = "photo"):
    n = stop - start
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty((n, len(ATTRIBUTE_NAMES)), np.int64)
    mentioned = np.empty((n, len(ATTRIBUTE_NAMES)), bool)
    en, zh = [], []
    keys = [values_of(a) for a in ATTRIBUTE_NAMES]
    for j in range(n):
        image, attrs, said, d_en, d_zh = _product(split, seed, start + j, size, look)
        images[j] = image
        labels[j] = [k.index(attrs[a]) for k, a in zip(keys, ATTRIBUTE_NAMES)]
        mentioned[j] = [a in said for a in ATTRIBUTE_NAMES]
        en.append(d_en)
        zh.append(d_zh)
    return images, labels, mentioned, en, zh


def _check_request(split: str, n: int | None, size: int, seed: int, look: str = "photo") -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if n is None:
        n = DEFAULT_N[split]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive whole number of products, got {n!r}")
    if size not in SUPPORTED_SIZES:
        raise ValueError(f"unsupported image size {size!r}; valid sizes: {', '.join(map(str, SUPPORTED_SIZES))}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    check_look(look)
    return int(n)


def render_catalog(split: str = "train", n: int | None = None, size: int = 32, seed: int = 0,
                   workers: int | None = None, progress: bool = False, look: str = "photo") -> dict:
    """Render ``n`` products of ``split`` (in parallel processes) into NumPy arrays.

    Returns a dict with ``images`` (N x 3 x S x S uint8), ``labels`` (N x 5),
    ``mentioned`` (N x 5 bool: which attributes the descriptions name) and the
    descriptions ``en`` and ``zh``. ``look``: ``prodgen.catalog.looks.LOOKS`` (the photo by default).
    """
    n = _check_request(split, n, size, seed, look)
    workers = workers or min(os.cpu_count() or 1, 8)
    chunk = 250
    ranges = [(split, seed, size, a, min(a + chunk, n), look) for a in range(0, n, chunk)]
    what = f"{size}px" if look == "photo" else f"{size}px, {look}"
    bar = _progress(n, f"rendering {split} ({what})") if progress else None
    parts = []
    if workers == 1 or n <= 2 * chunk:
        for r in ranges:
            parts.append(_render_range(*r))
            bar and bar.update(r[4] - r[3])
    else:
        ctx = _mp_context()
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for r, part in zip(ranges, pool.map(_render_range, *zip(*ranges))):
                parts.append(part)
                bar and bar.update(r[4] - r[3])
    bar and bar.close()
    images = np.concatenate([p[0] for p in parts]).transpose(0, 3, 1, 2)
    return {
        "images": np.ascontiguousarray(images),
        "labels": np.concatenate([p[1] for p in parts]),
        "mentioned": np.concatenate([p[2] for p in parts]),
        "en": np.array(sum((p[3] for p in parts), [])),
        "zh": np.array(sum((p[4] for p in parts), [])),
    }


def _mp_context():
    import multiprocessing

    # fork is fast and works in notebooks on Linux; elsewhere use the safe default.
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)


def _progress(total, desc):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False)


# ----------------------------------------------------------------------- cache
def _look_tag(look: str) -> str:
    """The look's part of a cache file name: nothing for the photo (its names predate the looks)."""
    return "" if look == "photo" else f"-{look}{LOOK_CACHE_VERSION}"


def cache_path(split: str, n: int, size: int, seed: int, look: str = "photo") -> Path:
    """Where the cache file of this catalog lives."""
    return paths.cache_dir() / f"catalog-v{CACHE_VERSION}-{split}-{size}px{_look_tag(look)}-seed{seed}-n{n}.npz"


def _cached(split: str, n: int, size: int, seed: int, look: str = "photo") -> tuple[Path, int] | None:
    """The smallest cached catalog holding at least ``n`` products, or None."""
    tag = re.escape(_look_tag(look))
    pattern = re.compile(rf"catalog-v{CACHE_VERSION}-{split}-{size}px{tag}-seed{seed}-n(\d+)\.npz$")
    found = []
    folder = paths.cache_dir()
    if folder.is_dir():
        for f in folder.iterdir():
            m = pattern.match(f.name)
            if m and int(m.group(1)) >= n:
                found.append((int(m.group(1)), f))
    return (min(found)[1], n) if found else None


def _save_npz(path: Path, arrays: dict) -> None:
    """Write atomically: a temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_npz(path: Path, n: int) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k][:n] for k in ("images", "labels", "mentioned", "en", "zh")}


def load_catalog(split: str = "train", n: int | None = None, size: int = 32, seed: int = 0,
                 cache: bool = True, progress: bool = True, workers: int | None = None,
                 look: str = "photo") -> Catalog:
    """The catalog split as in-memory tensors, rendered on first use and cached on disk.

    ``n`` defaults to the split's standard size (``DEFAULT_N``); a smaller ``n`` reuses
    a larger cached catalog (product ``i`` is the same in both). ``look`` (lesson 16): the same products
    as a ``"sketch"``, ``"poster"`` or ``"watercolour"`` (``prodgen.catalog.looks``), cached separately;
    the catalog's name then says the look (``"test-sketch"``).
    """
    n = _check_request(split, n, size, seed, look)
    hit = _cached(split, n, size, seed, look) if cache else None
    arrays = None
    if hit:
        try:
            arrays = _load_npz(hit[0], n)
        except Exception:  # a damaged cache file is rebuilt, never trusted
            arrays = None
    if arrays is None:
        arrays = render_catalog(split, n, size, seed, workers=workers, progress=progress, look=look)
        if cache:
            _save_npz(cache_path(split, n, size, seed, look), arrays)
    return Catalog(
        torch.from_numpy(arrays["images"]),
        torch.from_numpy(arrays["labels"]),
        [str(s) for s in arrays["en"]],
        [str(s) for s in arrays["zh"]],
        mentioned=torch.from_numpy(arrays["mentioned"]),
        name=split if look == "photo" else f"{split}-{look}",
        seed=seed,
    )


# ------------------------------------------------------------------- tensors
def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float in [-1, 1] (what a tanh generator outputs)."""
    return images.float().div(127.5).sub(1.0)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 pixels (values outside [-1, 1] are clipped)."""
    return x.detach().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def batch_indices(n: int, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None,
                  drop_last: bool = False):
    """One epoch of index tensors into ``n`` items: shuffled by ``generator`` (or in order), the last short batch
    dropped when ``drop_last``. Every in-memory data set's ``batches`` (the catalog's, the flow's teacher pairs,
    the latent cache) slices with it."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


class Catalog(torch.utils.data.Dataset):
    """Product photos and their attributes, all in memory.

    - ``images``: uint8 tensor ``N x 3 x S x S``
    - ``labels``: int64 tensor ``N x A``, one column per attribute of ``values`` (the course catalog:
      ``ATTRIBUTE_NAMES``, A = 5); -1 = unknown
    - ``descriptions_en`` / ``descriptions_zh``: one string per product
    - ``mentioned``: bool ``N x A``, which attributes a description names (None if unknown)
    - ``values``: for each attribute, in column order, the value names of its class indices; with
      :attr:`schema` (``prodgen.catalog.schema``) the catalog's attributes as one object (lesson 12)

    Indexing returns ``(image in [-1, 1], labels)`` so a ``DataLoader`` works; for
    speed, :meth:`batches` slices whole batches out of the tensors instead.
    """

    def __init__(self, images, labels, descriptions_en, descriptions_zh, mentioned=None, values=None,
                 name="catalog", seed=None):
        n = len(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be a uint8 tensor N x 3 x H x W, got {tuple(images.shape)} {images.dtype}")
        self.values = dict(values) if values else {a: values_of(a) for a in ATTRIBUTE_NAMES}
        if labels.shape != (n, len(self.values)) or len(descriptions_en) != n or len(descriptions_zh) != n:
            raise ValueError("images, labels (one column per attribute) and descriptions must describe the same "
                             "number of products")
        self.images, self.labels = images, labels
        self.descriptions_en, self.descriptions_zh = list(descriptions_en), list(descriptions_zh)
        self.mentioned = mentioned
        self.name, self.seed = name, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return normalize(self.images[i]), self.labels[i]

    def __repr__(self) -> str:
        s = self.images.shape[-1]
        return f"Catalog({self.name!r}, {len(self)} products, {s}x{s} px)"

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def schema(self):
        """The catalog's attributes and values as a :class:`~prodgen.catalog.schema.Schema`."""
        from prodgen.catalog.schema import Schema

        return Schema(self.values)

    def attributes(self, i: int) -> dict:
        """The attributes of product ``i`` as ``{name: value}`` (unknown ones left out)."""
        return {a: self.values[a][k] for a, k in zip(self.values, self.labels[i].tolist()) if k >= 0}

    def label(self, attribute: str) -> torch.Tensor:
        """The class indices of one attribute, a length-N tensor."""
        names = list(self.values)
        if attribute not in names:
            raise ValueError(f"unknown attribute {attribute!r}; valid attributes: {', '.join(names)}")
        return self.labels[:, names.index(attribute)]

    def value_counts(self, attribute: str) -> dict[str, int]:
        """How many products have each value of ``attribute``."""
        counts = torch.bincount(self.label(attribute).clamp(min=0), minlength=len(self.values[attribute]))
        return {v: int(c) for v, c in zip(self.values[attribute], counts)}

    def subset(self, indices) -> Catalog:
        """A new catalog with the products at ``indices`` (a list, range or tensor)."""
        idx = torch.as_tensor(list(indices) if isinstance(indices, range) else indices, dtype=torch.long)
        m = None if self.mentioned is None else self.mentioned[idx]
        return Catalog(self.images[idx], self.labels[idx], [self.descriptions_en[i] for i in idx.tolist()],
                       [self.descriptions_zh[i] for i in idx.tolist()], m, self.values, self.name, self.seed)

    def batches(self, batch_size: int = 128, shuffle: bool = True, generator: torch.Generator | None = None,
                drop_last: bool = False, device=None):
        """Yield ``(images in [-1, 1], labels)`` batches sliced from memory, one epoch."""
        for idx in batch_indices(len(self), batch_size, shuffle, generator, drop_last):
            x, y = self.images[idx], self.labels[idx]
            if device is not None:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            yield normalize(x), y
