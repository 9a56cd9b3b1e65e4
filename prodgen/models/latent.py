"""Latent flow (lesson 14): lesson 13's flow model in the latent space of the ``ae-64`` autoencoder, 64 px photos.

A 64 x 64 photo has 12,288 numbers; the autoencoder (``prodgen.models.autoencoder``) squeezes it into a scaled
latent map of 4 x 16 x 16 = 1,024 with unit variance. Generating there (Rombach et al., 2022) is lesson 13's recipe
unchanged: the same U-Net (``FlowUNet(channels=4, size=16)``, the same class as the 32 px pixel model), straight
paths from latents to noise, logit-normal times, condition dropout and classifier-free guidance, the same samplers.
Only the ends differ:

- **training data** (:func:`cached_latents`): the 64 px training split is encoded once (the posterior mean, scaled)
  and kept on disk, keyed by the autoencoder's sha256 and the photos' own, written atomically: a retrained
  autoencoder gets new latents, and an epoch reads 1,024 numbers per photo instead of running the encoder;
- **sampling** (:class:`LatentFlowModel`): the ODE runs on latents (no clamping to [-1, 1]: latents are not
  pixels), then the autoencoder's decoder turns them into 64 px photos. The checkpoint names its autoencoder
  (``config["autoencoder"]``, with the sha256 it was trained on): the leaderboard keys its rows on both
  checkpoints, and a latent model refuses an autoencoder other than its own (its latents would mean nothing).

``prodgen train latent-64`` trains it through the one recipe (``prodgen.models.recipe``); ``latent-64-text`` is the
same weights behind lesson 07's description reader (EN/ZH), as ``flow-text``. ``benchmarks/latent64_recipe.py``
measures where the time goes (network, decoder). Used by lesson 14, the leaderboard's 64 px board and the studio.
"""
from __future__ import annotations

import hashlib
import json

import torch

from prodgen.catalog.schema import BUILTIN, Schema, schema_of
from prodgen.models.autoencoder import IMAGE_SIZE, LATENT_SIZE
from prodgen.models.diffusion import DiffusionTextModel
from prodgen.models.flow import FlowImageModel, FlowUNet, sample
from prodgen.models.recipe import Trained, with_text_reader
from prodgen.models.registry import ModelSpec

__all__ = ["require_autoencoder", "load_autoencoder", "latent_network", "cache_key", "latent_cache_path",
           "cached_latents", "Latents", "LatentFlowModel", "LatentFlowTextModel", "build", "evaluate",
           "CHECKPOINT_CONFIG", "train_checkpoint"]


# ----------------------------------------------------------------------------- the autoencoder it decodes with
def require_autoencoder(name: str = "ae-64", user: str = "latent-64") -> str:
    """The sha256 of the shipped autoencoder ``name``; not shipped -> ``ValueError`` saying what to run first
    (``user``: the model that needs it, named in the message: ``latent-64``, lesson 15's ``tryon-64``)."""
    from prodgen.models import registry

    entry = registry.manifest().get(name)
    if entry is None:
        what = "generates" if user.startswith("latent") else "works"
        raise ValueError(f"{user} {what} in the latent space of the autoencoder {name!r}, and none is shipped: "
                         f"train it first (prodgen train {name})")
    return entry["sha256"]


def load_autoencoder(name: str = "ae-64", sha256: str | None = None, user: str = "latent-64"):
    """The shipped autoencoder ``name`` (sha256-verified); ``sha256``: the one a latent model was trained on (another
    autoencoder -> ``ValueError``: retrain the latent model ``user``)."""
    from prodgen.models import registry

    found = require_autoencoder(name, user)
    if sha256 is not None and found != sha256:
        raise ValueError(f"this latent model was trained on {name} {sha256[:12]}, but the shipped {name} is "
                         f"{found[:12]}: its latents mean something else now; retrain it (prodgen train {user})")
    return registry.load(name)


def latent_network(autoencoder, width: int = 48, schema: Schema = BUILTIN) -> FlowUNet:
    """Lesson 13's flow U-Net on ``autoencoder``'s latent maps (c x 16 x 16), ``width`` channels at 16 x 16."""
    return FlowUNet(width, schema=schema, channels=autoencoder.channels, size=LATENT_SIZE)


# ----------------------------------------------------------------------------- the latent training data
def cache_key(autoencoder_sha256: str, images: torch.Tensor) -> str:
    """What a latent cache file is keyed by: the autoencoder's sha256 and the sha256 of the photos' bytes."""
    photos = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()
    return hashlib.sha256(json.dumps([autoencoder_sha256, photos, list(images.shape)]).encode()).hexdigest()[:20]


def latent_cache_path(key: str, folder=None):
    """``<cache>/latents/latents-KEY.pt`` (or in ``folder``)."""
    from pathlib import Path

    from prodgen import paths

    return (Path(folder) if folder is not None else paths.cache_dir() / "latents") / f"latents-{key}.pt"


def cached_latents(autoencoder, images: torch.Tensor, autoencoder_sha256: str, folder=None, log=None) -> torch.Tensor:
    """Scaled latents (posterior means, N x c x 16 x 16, fp32) of the uint8 photos ``images`` (N x 3 x 64 x 64):
    read from the cache when a file with the same key (:func:`cache_key`) holds them, else encoded and written
    atomically (a damaged file is re-encoded). ``folder``: the cache folder (default ``<cache>/latents``)."""
    from prodgen import paths

    key = cache_key(autoencoder_sha256, images)
    path = latent_cache_path(key, folder)
    want = (len(images), autoencoder.channels, LATENT_SIZE, LATENT_SIZE)
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved["key"] == key and tuple(saved["latents"].shape) == want:
                return saved["latents"].float()
        except Exception:  # a damaged or foreign file is re-encoded, never trusted
            pass
    if log:
        log(f"encoding {len(images):,} photos with the autoencoder (once; cached in {path.parent})")
    latents = autoencoder.encode(images)
    with paths.atomic_file(path) as tmp:
        torch.save({"key": key, "autoencoder_sha256": autoencoder_sha256, "latents": latents}, tmp)
    return latents


class Latents:
    """Latent maps and their requests as the engine's data (``prodgen.engine.train.train_flow``): batches of
    ``(N x c x 16 x 16 scaled latents, labels N x A)``, shuffled as a catalog's."""

    def __init__(self, latents: torch.Tensor, labels: torch.Tensor, schema: Schema = BUILTIN):
        if len(latents) != len(labels):
            raise ValueError(f"latents and labels differ in number: {len(latents)} and {len(labels)}")
        self.images, self.labels, self.schema = latents.float(), labels, schema

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, shuffle: bool = True, generator=None, drop_last: bool = False, device=None):
        from prodgen.catalog.dataset import batch_indices

        for idx in batch_indices(len(self), batch_size, shuffle, generator, drop_last):
            yield self.images[idx].to(device), self.labels[idx].to(device)


# ----------------------------------------------------------------------------- the image-model protocol
class LatentFlowModel(FlowImageModel):
    """The latent flow on the image-model protocol: attribute requests, knobs ``guidance``, ``steps``, ``sampler``,
    ``unspecified`` (lesson 13's); 64 px images. ``generate`` draws the start noise in the latent shape, solves the
    guided ODE there and decodes with ``autoencoder`` (default: the shipped one the checkpoint names, checked
    against the sha256 it was trained on). It neither edits nor restores yet. Registered as ``latent-64``."""

    image_size = IMAGE_SIZE
    can_edit = False
    edit_draws = False
    can_restore = False

    def __init__(self, network, name: str = "latent-64", info: dict | None = None, autoencoder=None):
        super().__init__(network, name, info)
        config = (info or {}).get("config") or {}
        if autoencoder is None:
            autoencoder = load_autoencoder(config.get("autoencoder", "ae-64"), config.get("autoencoder_sha256"))
        if (autoencoder.channels, LATENT_SIZE, LATENT_SIZE) != tuple(network.shape):
            raise ValueError(f"the autoencoder's latents are {autoencoder.channels} x {LATENT_SIZE} x {LATENT_SIZE}, "
                             f"the network's {' x '.join(map(str, network.shape))}: they do not belong together")
        self.autoencoder = autoencoder.eval()
        if next(autoencoder.parameters()).device.type == "cpu":
            self.autoencoder = autoencoder.to(memory_format=torch.channels_last)

    def _decode(self, latents: dict, noise=None, guidance: float = 2.0, steps: int = 8, sampler: str = "ab2",
                unspecified: str = "random") -> torch.Tensor:
        z = sample(self.network, latents["condition"], steps=steps, guidance=guidance, sampler=sampler,
                   x_1=latents["x_1"], clip=False)  # N x c x 16 x 16 latents, not clamped
        return self.autoencoder.decode(z)  # N x 3 x 64 x 64 in [-1, 1]


class LatentFlowTextModel(DiffusionTextModel, LatentFlowModel):
    """The same network behind lesson 07's description reader (EN or ZH; soft requests N x 34), as ``flow-text``.
    Registered as ``latent-64-text``."""

    def __init__(self, network, name: str = "latent-64-text", info: dict | None = None, autoencoder=None):
        from prodgen.models.text import load_encoder

        LatentFlowModel.__init__(self, network, name, info, autoencoder)
        self.reader = load_encoder((info or {}).get("config", {}).get("reader", "text-votes"))


def build(config: dict) -> FlowUNet:
    """Rebuild a latent flow U-Net from its checkpoint config (``prodgen.models.registry``)."""
    return FlowUNet(config.get("width", 48), schema=schema_of(config), channels=config.get("channels", 4),
                    size=config.get("size", LATENT_SIZE))


def evaluate(model: FlowUNet, n: int = 2000, seed: int = 0, judge=None, autoencoder=None, info=None, **knobs) -> dict:
    """What ``prodgen train latent-64`` records (``diffusion.evaluate`` at 64 px, with ``judge-64``): control on ``n``
    balanced requests, held-out pairs and partial requests; FID against 64 px photos (with its floor), precision and
    recall."""
    from prodgen.models import registry
    from prodgen.models.diffusion import evaluate as evaluate_diffusion

    judge = judge if judge is not None else registry.load("judge-64")
    image_model = LatentFlowModel(model, "latent-64", info, autoencoder)
    return evaluate_diffusion(model, n, seed, judge, image_model=image_model, **knobs)


# ----------------------------------------------------------------------------- the checkpoint
CHECKPOINT_CONFIG = {"autoencoder": "ae-64", "width": 48, "epochs": 150, "minutes": None, "batch_size": 64,
                     "lr": 1e-3, "ema_decay": 0.999, "drop_p": 0.1, "hide_p": 0.1, "time_sampling": "logit-normal",
                     "seed": 0, "train_split": "train", "reader": "text-votes"}
"""How ``prodgen train latent-64`` trains: lesson 13's flow recipe (Adam, batch 64, warmed-up EMA 0.999, condition
dropout, logit-normal times) on the cached latents of the 64 px training split. ``autoencoder``: the registry name
of the autoencoder whose latents it learns (shipped first). Measured by ``benchmarks/latent64_recipe.py``
(``data/results/latent64-recipe.json``, one thread, bf16): the width-48 latent network trains at 342 images per
CPU-second (the 32 px pixel flow of width 32: 190) and runs forward at 989 images/CPU-s at batch 64 (width 32:
1,374; the pixel flow of width 32: 576); 3 CPU-minutes on the latents of a 2-epoch autoencoder already gave
judge-64 control 0.90 (category 1.0, colour 0.996, size 1.0, pattern 0.84, brand 0.65). ``epochs``: 150 = 3.0M
images, about 150 minutes at that one-thread rate (resumable; ``--minutes`` caps a sitting). ``reader``: the
description reader ``latent-64-text`` puts in front of the same network."""


def train_checkpoint(name: str = "latent-64", fast: bool = False, log=print, device: str = "auto", out=None,
                     checkpoint=None, resume: bool = False, **overrides) -> dict:
    """Train the latent flow (``prodgen train latent-64``) on the shipped autoencoder's latents, measure it
    (:func:`evaluate`) and save the EMA weights as ``latent-64`` and, with the text reader, ``latent-64-text``.
    ``fast=True``: 1,024 products, one epoch (a smoke test). ``out``, ``checkpoint``, ``resume``: see
    ``prodgen.models.registry.train``. No autoencoder shipped -> one ``ValueError`` line saying to train it first."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume)


def _fit(run) -> Trained:
    import copy

    from prodgen.engine.train import train_flow

    cfg = run.cfg
    sha = require_autoencoder(cfg["autoencoder"])
    autoencoder = load_autoencoder(cfg["autoencoder"], sha)
    data = Latents(cached_latents(autoencoder, run.train.images, sha, log=run.log), run.train.labels,
                   run.train.schema)
    torch.manual_seed(cfg["seed"])
    model = latent_network(autoencoder, cfg["width"], run.train.schema)
    ema = copy.deepcopy(model)
    history = train_flow(model, data, lr=cfg["lr"], ema=ema, ema_decay=cfg["ema_decay"], drop_p=cfg["drop_p"],
                         hide_p=cfg["hide_p"], time_sampling=cfg["time_sampling"], n_samples=0, **run.engine())
    config = {"width": cfg["width"], "channels": model.channels, "size": model.size,
              "autoencoder": cfg["autoencoder"], "autoencoder_sha256": sha}
    return Trained(ema, config, history, notes={"save_as": "latent-64"})


def _evaluate(model: FlowUNet, n: int = 2000) -> dict:
    return evaluate(model, n, info={"config": {"autoencoder": CHECKPOINT_CONFIG["autoencoder"]}})


def _recipe():
    import dataclasses

    base = with_text_reader(CHECKPOINT_CONFIG, _fit, _evaluate, "latent-64", "latent-64-text")

    def prepare(run) -> None:
        base.prepare(run)
        if run.resolution != IMAGE_SIZE:
            raise ValueError(f"{run.name} is registered at {run.resolution} px; it decodes {IMAGE_SIZE} px photos")
        require_autoencoder(run.cfg["autoencoder"])  # before any photo is loaded: say what to train first

    return dataclasses.replace(base, prepare=prepare)


RECIPE = _recipe()
"""What ``prodgen train latent-64`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (
    ModelSpec("latent-64", "latent", build, train_checkpoint, LatentFlowModel, lesson=14, resolution=IMAGE_SIZE,
              recipe=CHECKPOINT_CONFIG,
              summary="lesson 13's flow in ae-64's 16x16x4 latent space, decoded to 64 px: attribute requests"),
    ModelSpec("latent-64-text", "latent", build, train_checkpoint, LatentFlowTextModel, lesson=14,
              resolution=IMAGE_SIZE, recipe=CHECKPOINT_CONFIG,
              summary="the latent flow behind the text reader: descriptions (EN/ZH), 64 px"),
)
