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
from pathlib import Path

from prodgen import paths

__all__ = ["BUILDERS", "TRAINERS", "GENERATORS", "EDITORS", "available", "generators", "generator_kinds", "load", "load_entry",
           "load_generator", "manifest", "names", "save", "train", "verify"]
__all__ += ["SETTINGS", "load_file", "load_generator_file", "own_catalog_trainers", "state_path"]  # prodgen train's options,
# --out files (and models trained on your own catalog, --data), --resume state

# name -> "module:function" that builds the network from the manifest's config dict.
# Only these builders are ever imported: the manifest cannot name arbitrary code.
BUILDERS: dict[str, str] = {
    "judge": "prodgen.models.judge:build",
    "dcgan": "prodgen.models.dcgan:build",
    "text-bag": "prodgen.models.text:build",
    "text-gru": "prodgen.models.text:build",
    "text-votes": "prodgen.models.text:build",
    "vae": "prodgen.models.vae:build",
    "cgan-projection": "prodgen.models.cgan:build",
    "cgan-concat": "prodgen.models.cgan:build",
    "cgan-acgan": "prodgen.models.cgan:build",
    "cgan-stable": "prodgen.models.cgan:build",
    "cvae": "prodgen.models.cvae:build",
    "text2img": "prodgen.models.text2img:build",
    "text2img-embedding": "prodgen.models.text2img:build",
    "diffusion": "prodgen.models.diffusion:build",
    "diffusion-text": "prodgen.models.diffusion:build",
}

# name -> "module:function(name, fast=False, log=print, ...) -> metrics" that retrains the checkpoint with its
# shipped configuration (``prodgen train NAME``). What a trainer can take beyond that, all optional (``train``
# reads its signature and refuses an option a trainer lacks, naming the model):
#   device= the torch device;  out= a file to write instead of the shipped checkpoint (``save(..., out=)``);
#   checkpoint= / resume= the engine's per-epoch training state, passed on to ``train_gan`` / ``train_vae``;
#   **settings: CHECKPOINT_CONFIG entries to replace (SETTINGS: epochs, minutes, seed, batch_size).
# Under torchrun every rank calls the trainer; rank 0 alone evaluates and saves (the others return {}).
TRAINERS: dict[str, str] = {
    "judge": "prodgen.models.judge:train_checkpoint",
    "text-bag": "prodgen.models.text:train_checkpoint",
    "text-gru": "prodgen.models.text:train_checkpoint",
    "text-votes": "prodgen.models.text:train_checkpoint",
    "dcgan": "prodgen.models.dcgan:train_checkpoint",
    "vae": "prodgen.models.vae:train_checkpoint",
    "cgan-projection": "prodgen.models.cgan:train_checkpoint",
    "cgan-concat": "prodgen.models.cgan:train_checkpoint",
    "cgan-acgan": "prodgen.models.cgan:train_checkpoint",
    "cgan-stable": "prodgen.models.cgan_stable:train_checkpoint",
    "cvae": "prodgen.models.cvae:train_checkpoint",
    "text2img": "prodgen.models.text2img:train_checkpoint",
    "text2img-embedding": "prodgen.models.text2img:train_checkpoint",
    "diffusion": "prodgen.models.diffusion:train_checkpoint",
    "diffusion-text": "prodgen.models.diffusion:train_checkpoint",  # trains `diffusion` and saves both
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
    "cgan-stable": "prodgen.models.cgan:CGANImageModel",
    "cvae": "prodgen.models.cvae:CVAEImageModel",
    "text2img": "prodgen.models.text2img:TextImageModel",
    "text2img-embedding": "prodgen.models.text2img:TextImageModel",
    "diffusion": "prodgen.models.diffusion:DiffusionImageModel",
    "diffusion-text": "prodgen.models.diffusion:DiffusionTextModel",
}

# name -> "module:Class.method" taking (network, images uint8 N x 3 x H x W, labels N x 5, changes dict) and
# returning images in [-1, 1]: the attribute editors the studio's Edit tab offers (lesson 09; diffusion
# inpainting adds a line here).
EDITORS: dict[str, str] = {"cvae": "prodgen.models.cvae:CVAE.edit", "diffusion": "prodgen.models.diffusion:edit"}


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


# option of ``train`` (``prodgen train --NAME``) -> the recipe's CHECKPOINT_CONFIG entry it replaces
SETTINGS = {"epochs": "epochs", "minutes": "minutes", "seed": "seed", "batch": "batch_size"}


def state_path(name: str, out=None) -> Path:
    """Where ``prodgen train NAME`` keeps its per-epoch training state (models, optimisers, history, RNG)
    for ``--resume``: next to ``out`` (``x.pt`` -> ``x.state.pt``), else ``<cache>/train-state/NAME.pt``."""
    if out is not None:
        out = Path(out)
        return out.with_name(f"{out.stem}.state{out.suffix}")
    return paths.cache_dir() / "train-state" / f"{name}.pt"


def _check_options(epochs, minutes, seed, batch, out) -> None:
    def whole(value, low):
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if epochs is not None and not whole(epochs, 1):
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
                                or not 0 < minutes < float("inf")):
        raise ValueError(f"minutes must be a positive number of minutes, got {minutes!r}")
    if seed is not None and not whole(seed, 0):
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if batch is not None and not whole(batch, 2):
        raise ValueError(f"batch must be a whole number >= 2, got {batch!r}")
    if out is not None and (Path(out).suffix != ".pt" or Path(out).is_dir()):
        raise ValueError(f"--out must be the path of a .pt file to write, got {str(out)!r}")


def _trainer(name: str):
    """``(trainer function, its parameters, its recipe dict)`` for a trainable name."""
    import inspect

    if name not in TRAINERS:
        raise ValueError(f"unknown model {name!r}; trainable models: {', '.join(TRAINERS)}")
    module, function = TRAINERS[name].split(":")
    try:
        module = importlib.import_module(module)
        trainer = getattr(module, function)
    except (ImportError, AttributeError):
        raise ValueError(f"{name!r} has no trainer yet ({TRAINERS[name]} is missing)") from None
    recipe = getattr(module, "CHECKPOINT_CONFIG", None) or getattr(module, "CHECKPOINTS", {}).get(name, {})
    return trainer, inspect.signature(trainer).parameters, recipe  # CHECKPOINTS: one recipe per name (text.py)


def _uses_engine(params) -> bool:
    """Whether a trainer trains with ``prodgen.engine.train`` (so it takes every option and runs under torchrun)."""
    return all(k in params for k in ("device", "out", "checkpoint", "resume"))


def own_catalog_trainers() -> list[str]:
    """The models ``prodgen train MODEL --data DIR`` can train on a catalog folder of your own (their trainer
    takes ``data=``; lesson 12)."""
    return [n for n in TRAINERS if "data" in _trainer(n)[1]]


def train(name: str, fast: bool = False, log=print, *, out=None, epochs: int | None = None,
          minutes: float | None = None, seed: int | None = None, batch: int | None = None, device: str = "auto",
          resume: bool = False, data=None) -> dict:
    """Retrain checkpoint ``name`` with its shipped configuration and save it; returns its metrics.

    ``out``: write the checkpoint to this ``.pt`` file (:func:`load_file` reads it) and leave the shipped
    checkpoint and the manifest alone; without it the shipped checkpoint is replaced. ``epochs``,
    ``minutes`` (a time budget), ``seed`` and ``batch`` (the global batch size, see ``prodgen.engine.train``)
    replace the recipe's values; ``device``: ``auto``, ``cpu``,
    ``cuda``, ``mps``. The training state is saved after every epoch (:func:`state_path`), and
    ``resume=True`` continues from it (``epochs`` is then the total to reach). Under ``torchrun`` this
    joins the process group (``prodgen.engine.distributed``): every process trains on its shard, rank 0 saves.
    Models whose trainer has its own loop (the judge, the text readers) take none of these options.
    ``data``: a catalog folder of your own (PNGs + metadata.csv, any attributes; ``prodgen.evaluation.own_catalog``): the
    model learns that catalog's schema, and ``out`` defaults to ``DATA/models/NAME.pt`` (the shipped
    checkpoints are left alone).
    """
    from prodgen.engine import distributed

    trainer, params, recipe = _trainer(name)
    if data is not None:
        from prodgen.catalog.own import default_out

        if "data" not in params:
            raise ValueError(f"prodgen train {name} takes no --data; models that train on your own catalog: "
                             f"{', '.join(own_catalog_trainers())}")
        if not Path(data).is_dir():
            raise FileNotFoundError(f"--data {data}: no such folder; give a catalog folder (PNG files and a "
                                    "metadata.csv)")
        out = default_out(data, name) if out is None else out
    _check_options(epochs, minutes, seed, batch, out)
    takes_settings = any(p.kind is p.VAR_KEYWORD for p in params.values())
    options = {"out": out, "resume": resume or None, "device": None if device == "auto" else device}
    own = {"data": Path(data)} if data is not None else {}
    asked = {"epochs": epochs, "minutes": minutes, "seed": seed, "batch": batch}
    settings = {SETTINGS[k]: v for k, v in asked.items() if v is not None}
    refused = [k for k, v in options.items() if v is not None and k not in params]
    refused += [k for k, v in asked.items() if v is not None and not (SETTINGS[k] in recipe and takes_settings)]
    engine_models = lambda: ", ".join(n for n in TRAINERS if _uses_engine(_trainer(n)[1]))  # noqa: E731
    if refused:
        raise ValueError(f"prodgen train {name} takes no --{', --'.join(refused)} (it trains with its own loop); "
                         f"all options work for {engine_models()}")
    if not _uses_engine(params):
        if distributed.launched():
            raise ValueError(f"{name} trains in one process (its own loop, not prodgen.engine.train's engine); "
                             f"under torchrun train one of {engine_models()}")
        return trainer(name, fast=fast, log=log, **{k: v for k, v in options.items() if v is not None}, **own,
                       **settings)
    joined = distributed.launched() and distributed.world_size() == 1
    dev = distributed.init(device)  # joins the process group under torchrun
    try:
        if not distributed.is_main():
            log = None  # rank 0 alone reports
        state = state_path(name, out)
        if resume and log and not state.is_file():
            log(f"no training state at {state}: starting afresh")
        return trainer(name, fast=fast, log=log, device=device if dev is None else str(dev),
                       out=None if out is None else Path(out), checkpoint=state, resume=resume, **own, **settings)
    finally:
        if joined:
            distributed.teardown()


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


def load_file(path, device="cpu"):
    """``(model, info)`` from a checkpoint file written by ``prodgen train --out`` (``save(..., out=)``):
    rebuilt with the registered builder of the name stored in it, loaded with ``weights_only=True``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        name = payload["name"]
        model = _builder(name)(payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, EOFError, OSError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a checkpoint written by `prodgen train --out` ({type(e).__name__}: "
                         f"{str(e)[:200]})") from None
    info = {k: payload.get(k, {}) for k in ("name", "config", "training", "metrics", "extra")}
    return model.to(device).eval(), info


def load_generator_file(path, device="cpu"):
    """The image generator in checkpoint file ``path`` (``prodgen train --out`` or ``--data``) as an
    ``ImageModel``, named after the file; a file holding no image generator (e.g. a judge) -> ``ValueError``."""
    model, info = load_file(path, device)
    if info["name"] not in GENERATORS:
        raise ValueError(f"{path} holds a {info['name']!r} checkpoint, which is not an image generator; "
                         f"generators: {', '.join(GENERATORS)}")
    return _generator_class(info["name"])(model, Path(path).stem, info)


def load(name: str, device="cpu"):
    """The shipped network ``name`` in eval mode, sha256-verified, loaded with ``weights_only=True``."""
    return load_entry(name, device)[0]


def save(name: str, model, config: dict, metrics: dict | None = None, training: dict | None = None,
         extra: dict | None = None, out=None) -> Path:
    """Save ``model``'s weights as the checkpoint ``name`` and record it in the manifest.

    ``config`` must rebuild the network with ``BUILDERS[name]``; ``training`` says how it
    was trained (for ``prodgen train``), ``metrics`` what was measured; ``extra`` holds
    plain data stored inside the checkpoint (e.g. a vocabulary). ``out``: write the file there
    instead, with ``name``, ``training`` and ``metrics`` inside it, and leave the shipped
    checkpoint and the manifest alone (``prodgen train --out``; :func:`load_file` reads it).
    """
    import torch

    _builder(name)  # refuse names without a builder before writing anything
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "config": config, **({"extra": extra} if extra else {})}
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload |= {"name": name, "training": training or {}, "metrics": metrics or {}}
        _atomic_write(out, lambda f: torch.save(payload, f))
        return out
    folder = paths.checkpoints_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    _atomic_write(path, lambda f: torch.save(payload, f))
    entries = manifest()
    entries[name] = {"file": path.name, "sha256": _sha256(path), "config": config,
                     "training": training or {}, "metrics": metrics or {}}
    text = json.dumps(dict(sorted(entries.items())), indent=2, ensure_ascii=False) + "\n"
    _atomic_write(_manifest_path(), lambda f: f.write(text.encode("utf-8")))
    return path


def _atomic_write(path: Path, write) -> None:
    with paths.atomic_file(path) as tmp, open(tmp, "wb") as f:
        write(f)
