"""Shipped checkpoints: a registry, a manifest with sha256 sums, safe saving and loading.

``data/checkpoints/manifest.json`` lists every shipped model: its file, sha256,
the configuration that rebuilds the network, how it was trained, and the metrics
measured when it was saved. :func:`load` rebuilds the network with the builder
registered for that name, verifies the file's sha256, and loads the weights with
``torch.load(weights_only=True)``, which cannot run code hidden in a file.
Files are written atomically (temp file + rename): an interrupted save never leaves
a half-written checkpoint. :data:`GENERATORS` says which entries are image generators;
:func:`load_generator` gives one through the image-model protocol. Used by every lesson that
says "load pretrained, or train it yourself" (02+), by ``prodgen models``, ``generate``,
``evaluate``, ``leaderboard`` and ``prodgen doctor``.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path

from . import paths

__all__ = ["BUILDERS", "TRAINERS", "GENERATORS", "available", "generators", "generator_kinds", "load", "load_entry",
           "load_generator", "manifest", "names", "save", "train", "verify"]

# name -> "module:function" that builds the network from the manifest's config dict.
# Only these builders are ever imported: the manifest cannot name arbitrary code.
BUILDERS: dict[str, str] = {
    "judge": "prodgen.models.judge:build",
    "dcgan": "prodgen.models.dcgan:build",
    "text-bag": "prodgen.text:build",
    "text-gru": "prodgen.text:build",
    "text-votes": "prodgen.text:build",
    "vae": "prodgen.models.vae:build",
    "cgan-projection": "prodgen.models.cgan:build",
    "cgan-concat": "prodgen.models.cgan:build",
    "cgan-acgan": "prodgen.models.cgan:build",
    "cvae": "prodgen.models.cvae:build",
    "text2img": "prodgen.models.text2img:build",
    "text2img-embedding": "prodgen.models.text2img:build",
}

# name -> "module:function(name, fast=False, log=print) -> metrics" that retrains the
# checkpoint with its shipped configuration (``prodgen train NAME``).
TRAINERS: dict[str, str] = {
    "judge": "prodgen.models.judge:train_checkpoint",
    "text-bag": "prodgen.text:train_checkpoint",
    "text-gru": "prodgen.text:train_checkpoint",
    "text-votes": "prodgen.text:train_checkpoint",
    "dcgan": "prodgen.models.dcgan:train_checkpoint",
    "vae": "prodgen.models.vae:train_checkpoint",
    "cgan-projection": "prodgen.models.cgan:train_checkpoint",
    "cgan-concat": "prodgen.models.cgan:train_checkpoint",
    "cgan-acgan": "prodgen.models.cgan:train_checkpoint",
    "cvae": "prodgen.models.cvae:train_checkpoint",
    "text2img": "prodgen.models.text2img:train_checkpoint",
    "text2img-embedding": "prodgen.models.text2img:train_checkpoint",
}

# name -> "module:Class" implementing the image-model protocol (``prodgen.models.protocol.ImageModel``) around
# the network BUILDERS makes: the entries that are image generators, in course order. ``prodgen generate``,
# ``evaluate`` and ``leaderboard`` take their models from here (:func:`load_generator`); a new image model is
# one line here, one in BUILDERS (and TRAINERS), and its manifest entry.
GENERATORS: dict[str, str] = {
    "dcgan": "prodgen.models.dcgan:DCGANImageModel",
    "vae": "prodgen.models.vae:VAEImageModel",
    "cgan-projection": "prodgen.models.cgan:CGANImageModel",
    "cgan-concat": "prodgen.models.cgan:CGANImageModel",
    "cgan-acgan": "prodgen.models.cgan:CGANImageModel",
    "cvae": "prodgen.models.cvae:CVAEImageModel",
    "text2img": "prodgen.models.text2img:TextImageModel",
    "text2img-embedding": "prodgen.models.text2img:TextImageModel",
}


def _manifest_path() -> Path:
    return paths.checkpoints_dir() / "manifest.json"


def manifest() -> dict:
    """The manifest as a dict ``{name: entry}`` (empty if nothing is shipped)."""
    path = _manifest_path()
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it with `git checkout -- {path}`") from None


def names() -> list[str]:
    """Names of the shipped models."""
    return sorted(manifest())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry(name: str) -> dict:
    entries = manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none shipped yet"
        raise ValueError(f"unknown model {name!r}; shipped models: {known}")
    return entries[name]


def verify(name: str) -> Path:
    """The checkpoint's path, after checking that it exists and its sha256 matches the manifest."""
    entry = _entry(name)
    path = paths.checkpoints_dir() / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint for {name!r} is missing: {path}. Restore it with "
                                f"`git checkout -- {path}` or retrain it with `prodgen train {name}`")
    if _sha256(path) != entry["sha256"]:
        raise ValueError(f"checkpoint for {name!r} is corrupt (sha256 does not match the manifest): {path}. "
                         f"Restore it with `git checkout -- {path}` or retrain it with `prodgen train {name}`")
    return path


def available(name: str) -> bool:
    """Whether ``name`` is shipped and its file is intact."""
    try:
        verify(name)
        return True
    except (ValueError, FileNotFoundError):
        return False


def _builder(name: str):
    if name not in BUILDERS:
        raise ValueError(f"no builder registered for {name!r}; registered: {', '.join(sorted(BUILDERS))}")
    module, function = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module), function)


def train(name: str, fast: bool = False, log=print) -> dict:
    """Retrain checkpoint ``name`` with its shipped configuration and save it; returns its metrics."""
    if name not in TRAINERS:
        raise ValueError(f"unknown model {name!r}; trainable models: {', '.join(TRAINERS)}")
    module, function = TRAINERS[name].split(":")
    try:
        trainer = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        raise ValueError(f"{name!r} has no trainer yet ({TRAINERS[name]} is missing)") from None
    return trainer(name, fast=fast, log=log)


def load_entry(name: str, device="cpu"):
    """``(model, info)``: the rebuilt network in eval mode, and its manifest entry plus the
    checkpoint's ``extra`` data (e.g. a vocabulary) under ``info["extra"]``."""
    import torch

    path = verify(name)
    entry = _entry(name)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        model = _builder(name)(entry["config"])
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, EOFError, OSError) as e:  # e.g. an unreadable or mismatched file
        raise ValueError(f"checkpoint for {name!r} cannot be loaded ({type(e).__name__}: {str(e)[:200]}); "
                         f"retrain it with `prodgen train {name}`") from None
    return model.to(device).eval(), {**entry, "extra": payload.get("extra", {})}


def generators(shipped: bool = False) -> list[str]:
    """Names of the image generators in :data:`GENERATORS` (course order); ``shipped=True``: only those
    the manifest lists."""
    listed = manifest() if shipped else GENERATORS
    return [name for name in GENERATORS if name in listed]


def _generator_class(name: str):
    if name not in GENERATORS:
        raise ValueError(f"{name!r} is not an image generator; generators: {', '.join(GENERATORS)}")
    module, cls = GENERATORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def generator_kinds() -> dict[str, str]:
    """``{name: what it accepts}`` ("attributes", "text" or "nothing") for every generator, without loading
    any checkpoint."""
    return {name: _generator_class(name).accepts for name in GENERATORS}


def load_generator(name: str, device="cpu"):
    """The shipped image generator ``name`` as an ``ImageModel`` (``prodgen.models.protocol``): its
    ``accepts``, ``knobs`` and ``generate(requests, seed, **knobs) -> uint8 images``; sha256-verified."""
    cls = _generator_class(name)
    network, info = load_entry(name, device)
    return cls(network, name, info)


def load(name: str, device="cpu"):
    """The shipped network ``name`` in eval mode, sha256-verified, loaded with ``weights_only=True``."""
    return load_entry(name, device)[0]


def save(name: str, model, config: dict, metrics: dict | None = None, training: dict | None = None,
         extra: dict | None = None) -> Path:
    """Save ``model``'s weights as the checkpoint ``name`` and record it in the manifest.

    ``config`` must rebuild the network with ``BUILDERS[name]``; ``training`` says how it
    was trained (for ``prodgen train``), ``metrics`` what was measured; ``extra`` holds
    plain data stored inside the checkpoint (e.g. a vocabulary).
    """
    import torch

    _builder(name)  # refuse names without a builder before writing anything
    folder = paths.checkpoints_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "config": config, **({"extra": extra} if extra else {})}
    _atomic_write(path, lambda f: torch.save(payload, f))
    entries = manifest()
    entries[name] = {"file": path.name, "sha256": _sha256(path), "config": config,
                     "training": training or {}, "metrics": metrics or {}}
    text = json.dumps(dict(sorted(entries.items())), indent=2, ensure_ascii=False) + "\n"
    _atomic_write(_manifest_path(), lambda f: f.write(text.encode("utf-8")))
    return path


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
