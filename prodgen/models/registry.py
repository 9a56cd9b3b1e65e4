"""The registry of models: every network the course ships, declared next to its family as a :class:`ModelSpec`.

Each family module in ``prodgen/models/`` ends with ``SPECS = (ModelSpec(...), ...)``: the name, how to
build the network from its saved config, how to train it (``prodgen train NAME``), which image-model class
wraps it (``prodgen.models.protocol``; ``None`` for the judge and the text readers) and a one-line summary.
The registry finds those declarations by importing the modules of ``prodgen.models`` on first use; a model
outside the package (a test's toy model, your own) joins with :func:`register`. Nothing else lists model
names: ``prodgen models``, ``generate``, ``evaluate``, ``train``, ``tryon``, the leaderboard and the studio all ask
here, by the protocol's capabilities: :func:`generators` (``generates``) and :func:`tryon_models` (``can_try_on``)
are disjoint for today's models, so a try-on model is never asked for images.

Loading goes through the checkpoint store (``prodgen.checkpoints``: sha256-verified, ``weights_only=True``):
:func:`load` / :func:`load_entry` / :func:`load_generator` for shipped checkpoints, :func:`load_file` /
:func:`load_generator_file` for files written by ``prodgen train --out`` or ``--data``; :func:`save` writes
either. :func:`train` is ``prodgen train``'s launcher (options, ``--resume``, torchrun). Used by every lesson
that says "load pretrained, or train it yourself" (02+) and by the command line.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prodgen import checkpoints, paths
from prodgen.checkpoints import available, manifest, names, verify

__all__ = ["ModelSpec", "register", "unregister", "registered", "spec", "specs", "generators", "generator_kinds",
           "tryon_models", "load_tryon",
           "available", "manifest", "names", "verify", "load", "load_entry", "load_generator", "load_file",
           "load_generator_file", "save", "train", "SETTINGS", "own_catalog_trainers", "state_path"]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model. ``build(config) -> nn.Module`` rebuilds the network from the config saved with
    it; ``train(name, fast=False, log=print, ...) -> metrics`` retrains it (``None``: not trainable here);
    ``model``: the ``ImageModel`` class that wraps the network (``None``: the judge, the text readers, encoders);
    what the model is for is its class's protocol capabilities (:attr:`is_generator`, :attr:`is_tryon`), never
    its name; ``recipe``: the training settings ``prodgen train --epochs/--minutes/--seed/--batch`` may
    replace; ``lesson``: where the course builds it (lists follow course order).

    ``build=None`` declares a *weightless* model (the cut-and-paste try-on baseline): nothing to train, load or
    ship; the registry makes it as ``model(None, name, {})`` and the manifest never lists it."""

    name: str
    family: str
    build: Callable | None
    train: Callable | None = None
    model: type | None = None
    lesson: int = 0
    summary: str = ""
    recipe: dict = field(default_factory=dict)
    resolution: int = 32

    def __post_init__(self):
        if self.build is None and (self.model is None or self.train is not None):
            raise ValueError(f"model spec {self.name!r}: a weightless spec (build=None) needs a model class and "
                             "no trainer")

    @property
    def is_generator(self) -> bool:
        """Whether the model generates images from requests (its class's ``generates``): the leaderboard, the
        studio and ``prodgen generate`` list it."""
        return self.model is not None and bool(self.model.generates)

    @property
    def is_tryon(self) -> bool:
        """Whether the model tries products on scenes (its class's ``can_try_on``): ``prodgen tryon`` lists it."""
        return self.model is not None and bool(self.model.can_try_on)

    @property
    def weightless(self) -> bool:
        """Whether the model has no network to build or load (``build=None``): always available, never shipped."""
        return self.build is None


_SKIP = {"protocol", "registry", "condition", "recipe"}  # modules of prodgen.models that declare no model
_found: dict[str, ModelSpec] | None = None
_added: dict[str, ModelSpec] = {}


def _discovered() -> dict[str, ModelSpec]:
    """The specs declared by the modules of ``prodgen.models`` (imported once, on first use)."""
    global _found
    if _found is None:
        import prodgen.models as package

        found = {}
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.name not in _SKIP and not info.name.startswith("_"):
                module = importlib.import_module(f"{package.__name__}.{info.name}")
                for item in getattr(module, "SPECS", ()):
                    if item.name in found:
                        raise RuntimeError(f"two specs are named {item.name!r}")
                    found[item.name] = item
        _found = found
    return _found


def specs() -> list[ModelSpec]:
    """Every registered spec, in course order (lesson, then declaration)."""
    every = {**_discovered(), **_added}
    order = {name: i for i, name in enumerate(every)}
    return sorted(every.values(), key=lambda s: (s.lesson, order[s.name]))


def spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; an unknown name -> ``ValueError`` listing the registered ones."""
    every = {**_discovered(), **_added}
    if name not in every:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(s.name for s in specs())}")
    return every[name]


def register(new: ModelSpec) -> None:
    """Add a model from outside ``prodgen/models/`` (a name already taken -> ``ValueError``)."""
    if new.name in {**_discovered(), **_added}:
        raise ValueError(f"a model named {new.name!r} is already registered")
    _added[new.name] = new


def unregister(name: str) -> None:
    """Remove a model added with :func:`register`."""
    _added.pop(name, None)


@contextmanager
def registered(new: ModelSpec):
    """``with registered(spec): ...``: the model is registered inside the block only."""
    register(new)
    try:
        yield new
    finally:
        unregister(new.name)


def generators(shipped: bool = False) -> list[str]:
    """Names of the image generators, in course order; ``shipped=True``: only those the manifest lists."""
    listed = manifest() if shipped else None
    return [s.name for s in specs() if s.is_generator and (listed is None or s.name in listed)]


def generator_kinds() -> dict[str, str]:
    """``{name: what it accepts}`` ("attributes", "text" or "nothing") for every generator, without loading
    any checkpoint."""
    return {s.name: s.model.accepts for s in specs() if s.is_generator}


def tryon_models(shipped: bool = False) -> list[str]:
    """Names of the try-on models (lesson 15), in course order; ``shipped=True``: only those that can be used now
    (weightless, or listed in the manifest)."""
    listed = manifest() if shipped else None
    return [s.name for s in specs() if s.is_tryon and (listed is None or s.weightless or s.name in listed)]


def load_tryon(name: str, device="cpu"):
    """The try-on model ``name`` as an ``ImageModel`` with ``try_on(scenes, slots, photos, seed, **knobs)``: a
    weightless one made here, a shipped one loaded (sha256-verified). Not a try-on model -> ``ValueError``."""
    found = {**_discovered(), **_added}.get(name)
    if found is None or not found.is_tryon:
        raise ValueError(f"{name!r} is not a try-on model; try-on models: {', '.join(tryon_models())}")
    if found.weightless:
        return found.model(None, name, {})
    network, info = load_entry(name, device)
    return found.model(network, name, info)


def _weightless(name: str, action: str) -> None:
    found = {**_discovered(), **_added}.get(name)
    if found is not None and found.weightless:
        raise ValueError(f"{name!r} has no weights to {action}: it is made, not loaded"
                         + (" (registry.load_tryon)" if found.is_tryon else ""))


def _generator_spec(name: str) -> ModelSpec:
    found = {**_discovered(), **_added}.get(name)
    if found is None or not found.is_generator:
        raise ValueError(f"{name!r} is not an image generator; generators: {', '.join(generators())}")
    return found


def _rebuild(name: str, payload: dict, device, where):
    try:
        model = spec(name).build(payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as e:  # e.g. a mismatched or foreign file
        raise ValueError(f"{where} cannot be loaded ({type(e).__name__}: {str(e)[:200]}); "
                         f"retrain it with `prodgen train {name}`") from None
    return model.to(device).eval()


def load_entry(name: str, device="cpu"):
    """``(model, info)``: the rebuilt network in eval mode, and its manifest entry plus the
    checkpoint's ``extra`` data (e.g. a vocabulary) under ``info["extra"]``."""
    _weightless(name, "load")
    if name not in manifest() and name in {**_discovered(), **_added}:
        raise ValueError(f"{name!r} is registered but no checkpoint of it is shipped; train one with `prodgen train "
                         f"{name}` (or `--out FILE.pt` and load that file)")
    path = verify(name)  # an unknown name -> one clear error listing the shipped ones
    payload = checkpoints.read(path, device)
    model = _rebuild(name, payload, device, f"checkpoint for {name!r}")
    return model, {**checkpoints.entry(name), "extra": payload.get("extra", {})}


def load(name: str, device="cpu"):
    """The shipped network ``name`` in eval mode, sha256-verified, loaded with ``weights_only=True``."""
    return load_entry(name, device)[0]


def load_generator(name: str, device="cpu"):
    """The shipped image generator ``name`` as an ``ImageModel`` (``prodgen.models.protocol``): its
    ``accepts``, ``knobs`` and ``generate(requests, seed, **knobs) -> uint8 images``; sha256-verified."""
    found = _generator_spec(name)
    network, info = load_entry(name, device)
    return found.model(network, name, info)


def load_file(path, device="cpu"):
    """``(model, info)`` from a checkpoint file written by ``prodgen train --out`` (``save(..., out=)``):
    checked against its sha256 record (``NAME.pt.sha256``; a file without one is read with an
    ``UnverifiedCheckpoint`` warning), loaded with ``weights_only=True``, refused if its weights are not finite,
    and rebuilt with the registered builder of the name stored in it."""
    import warnings

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}" + (" (it is a folder)" if path.is_dir() else ""))
    verified = checkpoints.verify_file(path)  # a mismatch -> ValueError "corrupt"
    payload = checkpoints.read(path, device)
    name = payload.get("name")
    if not isinstance(name, str) or not isinstance(payload.get("config"), dict):
        raise ValueError(f"{path} is not a checkpoint written by `prodgen train --out` / `--data` (it names no "
                         f"model, or has no config); {checkpoints.VALID}")
    try:
        found = spec(name)
    except ValueError:
        raise ValueError(f"{path} holds a checkpoint of {name!r}, which no registered model is named; "
                         f"registered models: {', '.join(s.name for s in specs())}") from None
    if found.weightless:
        raise ValueError(f"{path} claims to hold {name!r}, a model without weights; {checkpoints.VALID}")
    model = _rebuild(name, payload, device, str(path))
    if not verified:  # said once the file proved to be a checkpoint
        warnings.warn(checkpoints.unverified_note(path), checkpoints.UnverifiedCheckpoint, stacklevel=2)
    info = {k: payload.get(k, {}) for k in ("name", "config", "training", "metrics", "extra")}
    return model, info


def load_generator_file(path, device="cpu"):
    """The image generator in checkpoint file ``path`` (``prodgen train --out`` or ``--data``) as an
    ``ImageModel``, named after the file; a file holding no image generator (e.g. a judge) -> ``ValueError``."""
    model, info = load_file(path, device)
    found = spec(info["name"])
    if not found.is_generator:
        raise ValueError(f"{path} holds a {info['name']!r} checkpoint, which is not an image generator; "
                         f"generators: {', '.join(generators())}")
    return found.model(model, Path(path).stem, info)


def save(name: str, model, config: dict, metrics: dict | None = None, training: dict | None = None,
         extra: dict | None = None, out=None) -> Path:
    """Save ``model``'s weights as the checkpoint ``name`` and record it in the manifest.

    ``config`` must rebuild the network with ``spec(name).build``; ``training`` says how it was trained
    (for ``prodgen train``), ``metrics`` what was measured; ``extra`` holds plain data stored inside the
    checkpoint (e.g. a vocabulary). ``out``: write the file there instead, with ``name``, ``training`` and
    ``metrics`` inside it, and leave the shipped checkpoint and the manifest alone (``prodgen train --out``;
    :func:`load_file` reads it).
    """
    spec(name)  # refuse unregistered names before writing anything
    _weightless(name, "save")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "config": config, **({"extra": extra} if extra else {})}
    if out is not None:
        payload |= {"name": name, "training": training or {}, "metrics": metrics or {}}
        return checkpoints.write_file(out, payload)
    return checkpoints.write_shipped(name, payload, {"config": config, "training": training or {},
                                                     "metrics": metrics or {}})


# ``prodgen train``: options, state files, the launcher
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
    from prodgen.numbers import positive, whole

    whole(epochs, "epochs", 1), positive(minutes, "minutes"), whole(seed, "seed", 0), whole(batch, "batch", 2)
    if out is not None and (Path(out).suffix != ".pt" or Path(out).is_dir()):
        raise ValueError(f"--out must be the path of a .pt file to write, got {str(out)!r}")


def _trainer(name: str):
    """``(trainer function, its parameters, its recipe dict)`` for a trainable name."""
    import inspect

    trainable = [s.name for s in specs() if s.train is not None]
    if name not in trainable:
        raise ValueError(f"unknown model {name!r}; trainable models: {', '.join(trainable)}")
    found = spec(name)
    return found.train, inspect.signature(found.train).parameters, found.recipe


def _uses_engine(params) -> bool:
    """Whether a trainer trains with ``prodgen.engine.train`` (so it takes every option and runs under torchrun)."""
    return all(k in params for k in ("device", "out", "checkpoint", "resume"))


def own_catalog_trainers() -> list[str]:
    """The models ``prodgen train MODEL --data DIR`` can train on a catalog folder of your own (their trainer
    takes ``data=``; lesson 12)."""
    return [s.name for s in specs() if s.train is not None and "data" in _trainer(s.name)[1]]


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
    ``data``: a catalog folder of your own (PNGs + metadata.csv, any attributes; ``prodgen.evaluation.own_catalog``):
    the
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
    # noqa: E731
    engine_models = lambda: ", ".join(s.name for s in specs() if s.train and _uses_engine(_trainer(s.name)[1]))
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
        result = trainer(name, fast=fast, log=log, device=device if dev is None else str(dev),
                         out=None if out is None else Path(out), checkpoint=state, resume=resume, **own, **settings)
        if joined:  # every rank done (rank 0 has saved) before any leaves the group: none tears down under another
            distributed.barrier()
        return result
    finally:
        if joined:
            distributed.teardown()
