"""The learned try-on model ``tryon-64`` (lesson 15): latent inpainting of a scene's slot, given the product photo.

Lesson 14's recipe (the ``ae-64`` latents, straight-path flow matching, a few-step ODE sampler) turned into an
inpainting model conditioned the CatVTON way, by concatenation (issue 26 §2). The network (``FlowUNet`` on 4 x 16 x
16 latents, ``in_channels`` = 13) reads, stacked as channels at every latent position:

- the noisy latent ``x_t`` (4), on the straight path from the truth's latent to noise;
- the scene's latent with the slot masked out (4): the scene with the slot's pixels set to grey, encoded;
- the slot mask at latent resolution (1): a latent cell is "to regenerate" when any of its 4 x 4 pixels is;
- the product photo's latent (4), zeroed for the condition dropout (``drop_p``) that classifier-free guidance needs.

It writes the velocity (4). **Channels, not side by side** (:data:`LAYOUTS`). CatVTON puts the garment beside the
person (a wider image) so that self-attention carries it across; here the 16 x 16 U-Net's 4 x 4 bottleneck with
self-attention already sees the whole frame. Measured at an equal budget (``benchmarks/tryon64_recipe.py``, 4
CPU-minutes each on the same 4,000 pairs, 100 held-back pairs, ``data/results/tryon64-recipe*.json``): stacked as
channels the network trains on 378 pairs per CPU-second and reached slot SSIM 0.700, judge distance 0.327, worn
category / colour / brand 1.0 / 0.83 / 0.26 at 59 try-ons per CPU-second; side by side (``layout="side"``) 210
pairs/CPU-s and 0.655, 0.362, 0.93 / 0.89 / 0.19 at 32 try-ons/CPU-s. So ``channels`` is the default; ``side``
stays as an option to re-measure on a longer budget.

**Training data** (:func:`render_pairs`, :func:`encode_pairs`): training scenes, a random slot each, a random 64 px
training-split catalog photo that fits, and the truth rendered by ``swap``; rendered once and cached (atomically,
keyed by the request and the photos' bytes), then encoded once with the autoencoder through lesson 14's latent cache
(``prodgen.models.latent.cached_latents``: keyed by the autoencoder's sha256 and the images' bytes). The loss
(:func:`tryon_loss`) is flow matching weighted to the slot: 1 inside the latent mask grown by one cell, ``outside``
(0.1) elsewhere, since the sampler puts the scene's own latent back there (chosen, not measured).

**Sampling** (:class:`LatentTryOn`): start noise from the seed's CPU generator, ``steps`` (default 8) AB2 steps of the
guided field; after every step the latent outside the latent mask is put back on the scene's own straight path
(``flow.inpaint``'s rule), the result is decoded and composited in pixel space with the slot's mask: every pixel
outside the mask *is* the scene's (byte-identical, so "outside the mask >= 40 dB" holds by construction).

``prodgen train tryon-64`` trains it through the one recipe (``prodgen.models.recipe``; without a shipped ``ae-64``
it says to train that first); ``benchmarks/tryon64_recipe.py`` measures a short run. Used by lesson 15,
``prodgen tryon`` and ``benchmarks/tryon.py`` (which measures every shipped try-on model).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from prodgen.models.autoencoder import IMAGE_SIZE, LATENT_SIZE
from prodgen.models.flow import SAMPLER, STEPS, FlowUNet, integrate
from prodgen.models.protocol import ImageModel, Knob, TryOnInputs
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["latent_mask", "masked_scenes", "TryOnPairSet", "render_pairs", "pairs_cache_path", "load_pairs",
           "TryOnLatents", "encode_pairs", "tryon_loss", "tryon_network", "LAYOUTS", "layout_of", "velocity",
           "LatentTryOn", "build", "CHECKPOINT_CONFIG", "train_checkpoint", "GREY"]

GREY = 128  # the value the slot's pixels get in the masked scene (0 in [-1, 1])
FACTOR = IMAGE_SIZE // LATENT_SIZE  # 4 pixels a latent cell


# ----------------------------------------------------------------------------- the conditioning
def latent_mask(masks: torch.Tensor) -> torch.Tensor:
    """N x 1 x 16 x 16 float: 1 where any of a latent cell's 4 x 4 pixels lies in the slot mask (N x 64 x 64)."""
    return F.max_pool2d(masks[:, None].float(), FACTOR)


def masked_scenes(scenes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """uint8 scenes with the slot's pixels grey (:data:`GREY`): what the network may see of the scene."""
    return torch.where(masks[:, None], torch.tensor(GREY, dtype=torch.uint8), scenes)


LAYOUTS = ("channels", "side")
"""How the product reaches the network: ``channels``: its latent stacked on the noisy latent, the masked scene and the
mask (3c + 1 channels at 16 x 16); ``side``: CatVTON's, the product's latent beside the scene's (16 x 32): the noisy
half and the masked scene each get the product's latent on their right, the mask 0 there (2c + 1 channels), and
the velocity is read off the left half."""


def tryon_network(width: int = 48, channels: int = 4, layout: str = "channels") -> FlowUNet:
    """The try-on U-Net for ``layout`` (:data:`LAYOUTS`): reads ``3 * channels + 1`` channels at 16 x 16 (noisy
    latent, masked scene, mask, product) or ``2 * channels + 1`` at 16 x 32 (side by side), writes the
    ``channels``-channel velocity."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    reads = 3 * channels + 1 if layout == "channels" else 2 * channels + 1
    return FlowUNet(width, channels=channels, size=LATENT_SIZE, in_channels=reads)


def layout_of(network) -> str:
    """The layout a try-on network was built for (read off its channels)."""
    c = network.channels
    return {3 * c + 1: "channels", 2 * c + 1: "side"}.get(network.in_channels, "unknown")


def velocity(network, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The network's velocity N x c x 16 x 16 for states ``x_t`` given ``cond`` (masked scene c, mask 1, product c),
    in the network's layout (:data:`LAYOUTS`)."""
    c = network.channels
    if layout_of(network) == "channels":
        return network(torch.cat([x_t, cond], 1), t, labels)
    masked, mask, product = cond[:, :c], cond[:, c:c + 1], cond[:, c + 1:]
    left = torch.cat([x_t, masked, mask], 1)
    right = torch.cat([product, product, torch.zeros_like(mask)], 1)
    return network(torch.cat([left, right], 3), t, labels)[..., :LATENT_SIZE]


# ----------------------------------------------------------------------------- the training pairs
@dataclass
class TryOnPairSet:
    """Rendered try-on pairs in memory (uint8 N x 3 x 64 x 64 each, masks N x 64 x 64 bool): the ``scenes``, the
    ``masks`` of their ``slots``, the catalog ``photos`` (their products' catalog ``labels``) and the ``truths`` (the
    scene wearing the photo's product)."""

    scenes: torch.Tensor
    masks: torch.Tensor
    photos: torch.Tensor
    truths: torch.Tensor
    slots: list
    labels: torch.Tensor  # N x 5: the catalog labels of each photo's product

    def __len__(self) -> int:
        return len(self.scenes)


def _products(catalog) -> list[dict]:
    from prodgen.catalog.attributes import ATTRIBUTE_NAMES, values_of

    keys = [values_of(a) for a in ATTRIBUTE_NAMES]
    return [{a: keys[j][int(row[j])] for j, a in enumerate(ATTRIBUTE_NAMES)} for row in catalog.labels.tolist()]


def render_pairs(n: int, catalog, seed: int = 0, split: str = "train", start: int = 0) -> TryOnPairSet:
    """``n`` pairs on scenes ``start..start+n-1`` of ``split``: a random slot each and a random photo of ``catalog``
    (a 64 px catalog) that fits it; the truth is ``swap``'s. Deterministic in its arguments and the catalog."""
    from prodgen.catalog.scenes import KINDS, SLOTS, scene_at, swap

    if getattr(catalog, "image_size", IMAGE_SIZE) != IMAGE_SIZE:
        raise ValueError(f"try-on pairs need a {IMAGE_SIZE} px catalog, got {catalog.image_size} px")
    attrs = _products(catalog)
    fits = {s: [i for i, p in enumerate(attrs) if p["category"] in SLOTS[s].categories] for s in SLOTS}
    if not all(fits.values()):
        raise ValueError(f"the catalog's {len(attrs)} products hold none for slot(s) "
                         f"{', '.join(s for s, f in fits.items() if not f)}; give more products")
    rng = np.random.default_rng([seed, 15])
    scenes, masks, truths, chosen, slots = [], [], [], [], []
    for i in range(start, start + n):
        sc = scene_at(split, 0, i)
        kind_slots = KINDS[sc.params["kind"]]
        slot = kind_slots[rng.integers(len(kind_slots))]
        p = fits[slot][rng.integers(len(fits[slot]))]
        scenes.append(torch.from_numpy(sc.image))
        masks.append(torch.from_numpy(sc.masks[slot]))
        truths.append(torch.from_numpy(swap(sc, slot, attrs[p]).image))
        chosen.append(p)
        slots.append(slot)
    return TryOnPairSet(torch.stack(scenes), torch.stack(masks), catalog.images[chosen].clone(), torch.stack(truths),
                        slots, catalog.labels[chosen].clone())


def pairs_cache_path(key: str, folder=None):
    """``<cache>/tryon-pairs/pairs-KEY.pt`` (or in ``folder``)."""
    from pathlib import Path

    from prodgen import paths

    return (Path(folder) if folder is not None else paths.cache_dir() / "tryon-pairs") / f"pairs-{key}.pt"


def load_pairs(n: int, catalog, seed: int = 0, split: str = "train", folder=None, log=None) -> TryOnPairSet:
    """:func:`render_pairs` read from ``<cache>/tryon-pairs`` (or ``folder``) when rendered before with the same
    request and catalog photos, else rendered and written atomically (a damaged file is rendered again)."""
    from prodgen import paths

    photos = hashlib.sha256(catalog.images.contiguous().numpy().tobytes()).hexdigest()
    key = hashlib.sha256(json.dumps([n, seed, split, photos, 2]).encode()).hexdigest()[:20]
    path = pairs_cache_path(key, folder)
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved["key"] == key:
                return TryOnPairSet(*(saved[k] for k in ("scenes", "masks", "photos", "truths", "slots", "labels")))
        except Exception:  # a damaged or foreign file is rendered again, never trusted
            pass
    if log:
        log(f"rendering {n:,} try-on pairs (once; cached in {path.parent})")
    pairs = render_pairs(n, catalog, seed, split)
    with paths.atomic_file(path) as tmp:
        torch.save({"key": key, "scenes": pairs.scenes, "masks": pairs.masks, "photos": pairs.photos,
                    "truths": pairs.truths, "slots": pairs.slots, "labels": pairs.labels}, tmp)
    return pairs


class TryOnLatents:
    """Encoded pairs as the engine's data (``prodgen.engine.train.train_field``): batches of ``(N x (3c + 1) x 16 x 16
    packed latents, labels N x 5 of -1)``; the packed channels are the truth's latent, then the masked scene's, the
    latent mask and the product's (the network's condition, :meth:`LatentTryOn.condition`)."""

    def __init__(self, truths: torch.Tensor, masked: torch.Tensor, masks: torch.Tensor, products: torch.Tensor):
        self.images = torch.cat([truths, masked, latent_mask(masks), products], 1).float()
        self.labels = torch.full((len(self.images), 5), -1, dtype=torch.long)  # the U-Net's request: none

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, shuffle: bool = True, generator=None, drop_last: bool = False, device=None):
        from prodgen.catalog.dataset import batch_indices

        for idx in batch_indices(len(self), batch_size, shuffle, generator, drop_last):
            yield self.images[idx].to(device), self.labels[idx].to(device)


def encode_pairs(autoencoder, pairs: TryOnPairSet, autoencoder_sha256: str, folder=None, log=None) -> TryOnLatents:
    """The pairs' truths, masked scenes and photos encoded once (lesson 14's latent cache, keyed by the
    autoencoder's sha256 and each image set's bytes)."""
    from prodgen.models.latent import cached_latents

    enc = lambda images: cached_latents(autoencoder, images, autoencoder_sha256, folder, log)  # noqa: E731
    return TryOnLatents(enc(pairs.truths), enc(masked_scenes(pairs.scenes, pairs.masks)), pairs.masks,
                        enc(pairs.photos))


def tryon_loss(model, packed: torch.Tensor, labels: torch.Tensor, drop_p: float = 0.1, outside: float = 0.1,
               sampling: str = "logit-normal", generator: torch.Generator | None = None) -> torch.Tensor:
    """Flow matching on the truth's latent given the condition (``packed``: :class:`TryOnLatents`' channels): the
    product's latent zeroed for a share ``drop_p`` of the rows (the unconditional model guidance needs); the squared
    error weighted 1 inside the latent mask grown by one cell and ``outside`` elsewhere."""
    from prodgen.engine.losses import flow_interpolate, flow_time, flow_velocity

    c = (packed.shape[1] - 1) // 3
    z0, cond = packed[:, :c], packed[:, c:].clone()
    keep = (torch.rand(len(packed), device=packed.device, generator=generator) >= drop_p).to(cond.dtype)
    cond[:, -c:] *= keep[:, None, None, None]
    t = flow_time(len(z0), sampling, generator, z0.device)
    eps = torch.randn(z0.shape, device=z0.device, dtype=z0.dtype, generator=generator)
    x_t = flow_interpolate(z0, eps, t)
    v_hat = velocity(model, x_t, t, cond, labels).float()
    grown = F.max_pool2d(cond[:, c:c + 1].float(), 3, stride=1, padding=1)
    weight = outside + (1 - outside) * grown
    err = (v_hat - flow_velocity(z0, eps).float()).pow(2) * weight
    return err.sum() / (weight.sum() * c)


# ----------------------------------------------------------------------------- the image-model protocol
GUIDANCE = Knob("guidance", 2.0, 0.0, 20.0, doc="classifier-free guidance on the product photo: 0 = ignore it (fill "
                "the slot from the scene alone), 1 = plain conditional, more = follow the photo more closely")


class LatentTryOn(ImageModel):
    """``tryon-64`` on the protocol: ``try_on(scenes, slots, photos, seed, guidance, steps, sampler)``; seeds give
    different try-ons (``try_on_draws``); never an image generator. ``autoencoder``: default the shipped one the
    checkpoint names, checked against the sha256 it was trained on."""

    accepts = "nothing"
    can_try_on = True
    try_on_draws = True
    generates = False
    image_size = IMAGE_SIZE

    def __init__(self, network, name: str = "tryon-64", info: dict | None = None, autoencoder=None):
        from prodgen.models.latent import load_autoencoder

        super().__init__(network, name, info)
        config = (info or {}).get("config") or {}
        if autoencoder is None:
            autoencoder = load_autoencoder(config.get("autoencoder", "ae-64"), config.get("autoencoder_sha256"),
                                           user="tryon-64")
        c = autoencoder.channels
        if network.channels != c or network.size != LATENT_SIZE or layout_of(network) == "unknown":
            raise ValueError(f"a try-on network for {c}-channel latents reads {3 * c + 1} (or {2 * c + 1} side by "
                             f"side) and writes {c} channels at {LATENT_SIZE} x {LATENT_SIZE}; this one reads "
                             f"{network.in_channels}, writes {network.channels} at {network.size}: they do not belong "
                             "together")
        self.autoencoder = autoencoder.eval()

    @property
    def knobs(self) -> dict[str, Knob]:
        return {"guidance": GUIDANCE, "steps": STEPS, "sampler": SAMPLER}

    def condition(self, inputs: TryOnInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(condition N x (2c + 1) x 16 x 16, the scene's latents N x c x 16 x 16, latent mask N x 1 x 16 x 16)``."""
        ae = self.autoencoder
        mask = latent_mask(inputs.masks)
        masked = ae.encode(masked_scenes(inputs.scenes, inputs.masks))
        return torch.cat([masked, mask, ae.encode(inputs.photos)], 1), ae.encode(inputs.scenes), mask

    def _try_on(self, inputs: TryOnInputs, seed: int, guidance: float = 2.0, steps: int = 8,
                sampler: str = "ab2") -> torch.Tensor:
        from prodgen.catalog import denormalize

        cond, scene, mask = self.condition(inputs)
        x_1 = torch.randn(scene.shape, generator=torch.Generator().manual_seed(seed))
        field = self._field(cond, float(guidance))
        project = lambda x, t: mask * x + (1 - mask) * ((1 - t) * scene + t * x_1)  # noqa: E731
        was = self.network.training
        self.network.eval()
        try:
            z = integrate(field, x_1.clone(), steps, sampler, project)
        finally:
            self.network.train(was)
        out = denormalize(self.autoencoder.decode(z))
        return torch.where(inputs.masks[:, None], out, inputs.scenes)

    def _field(self, cond: torch.Tensor, w: float, batch_size: int = 256):
        """``field(x, t)``: the guided velocity, conditional and product-less rows in one pass (one of them for
        ``w`` 1 or 0); channels-last and bf16 autocast on a CPU with native bf16, the state fp32."""
        from prodgen.engine.train import autocast_for, resolve_precision

        net = self.network
        dev = next(net.parameters()).device
        fmt = torch.channels_last if dev.type == "cpu" else torch.contiguous_format
        precision = resolve_precision("auto", dev)
        c = net.channels
        uncond = cond.clone()
        uncond[:, -c:] = 0
        rows = {1.0: (cond,), 0.0: (uncond,)}.get(w, (cond, uncond))

        @torch.no_grad()
        def field(x: torch.Tensor, t: float) -> torch.Tensor:
            parts = []
            for s in range(0, len(x), batch_size):
                xb = x[s:s + batch_size]
                xs = torch.cat([xb] * len(rows)).to(dev).contiguous(memory_format=fmt)
                cs = torch.cat([r[s:s + batch_size] for r in rows]).to(dev).contiguous(memory_format=fmt)
                labels = torch.full((len(xs), 5), -1, dtype=torch.long, device=dev)
                with autocast_for(dev, precision):
                    v = velocity(net, xs, torch.full((len(xs),), t, device=dev), cs, labels).float().cpu()
                parts.append(v if len(rows) == 1 else v[len(xb):] + w * (v[:len(xb)] - v[len(xb):]))
            return torch.cat(parts)

        return field


def build(config: dict) -> FlowUNet:
    """Rebuild the try-on U-Net from its checkpoint config (``prodgen.models.registry``)."""
    return tryon_network(config.get("width", 48), config.get("channels", 4), config.get("layout", "channels"))


# ----------------------------------------------------------------------------- the checkpoint
CHECKPOINT_CONFIG = {"autoencoder": "ae-64", "width": 48, "layout": "channels", "pairs": 8000, "epochs": 200,
                     "minutes": None, "batch_size": 64, "lr": 1e-3, "ema_decay": 0.999, "drop_p": 0.1, "outside": 0.1,
                     "time_sampling": "logit-normal", "seed": 0, "train_split": "train"}
"""How ``prodgen train tryon-64`` trains: ``pairs`` rendered pairs on the 8,000 training scenes (one random slot each,
random 64 px training-split photos: ``train_split``), encoded once; lesson 14's flow recipe on them (Adam, batch 64,
warmed-up EMA 0.999, logit-normal times) with the product dropped for ``drop_p`` of the rows and the loss weighted
``outside`` away from the slot (:func:`tryon_loss`). ``epochs``: 200 x 8,000 = 1.6M pairs, about 70 CPU-minutes at
the one-thread rate ``benchmarks/tryon64_recipe.py`` measured (378 pairs per CPU-second; resumable, ``--minutes``
caps a sitting), plus rendering the pairs once (about 22 ms of CPU a pair). Not yet run: it needs the shipped
``ae-64``."""


def train_checkpoint(name: str = "tryon-64", fast: bool = False, log=print, device: str = "auto", out=None,
                     checkpoint=None, resume: bool = False, **overrides) -> dict:
    """Train the try-on model (``prodgen train tryon-64``) on the shipped autoencoder's latents of rendered pairs,
    measure it on held-back pairs and save the EMA weights. ``fast=True``: 256 pairs of the first 1,024 products,
    one epoch (a smoke test). No autoencoder shipped -> one ``ValueError`` line saying to train it first."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume)


def _fit(run) -> Trained:
    import copy
    import functools

    from prodgen.engine.train import train_field
    from prodgen.models.latent import load_autoencoder, require_autoencoder

    cfg = run.cfg
    sha = require_autoencoder(cfg["autoencoder"], run.name)
    autoencoder = load_autoencoder(cfg["autoencoder"], sha, run.name)
    pairs = load_pairs(cfg["pairs"], run.train, cfg["seed"], log=run.log)
    data = encode_pairs(autoencoder, pairs, sha, log=run.log)
    torch.manual_seed(cfg["seed"])
    model = tryon_network(cfg["width"], autoencoder.channels, cfg["layout"])
    ema = copy.deepcopy(model)
    loss = functools.partial(tryon_loss, drop_p=cfg["drop_p"], outside=cfg["outside"], sampling=cfg["time_sampling"])
    history = train_field(model, data, loss, kind="tryon", lr=cfg["lr"], ema=ema, ema_decay=cfg["ema_decay"],
                          **run.engine())
    config = {"width": cfg["width"], "channels": model.channels, "layout": cfg["layout"],
              "autoencoder": cfg["autoencoder"], "autoencoder_sha256": sha}
    return Trained(ema, config, history)


def _measure(run, trained) -> dict:
    """A quick check on held-back pairs (test scenes, test products; 40 in a smoke test, else 500): PSNR inside the
    slot against the rendered truth, the share of outputs that kept every pixel outside the mask, the scene judge's
    accuracy on the worn product's shown attributes, try-ons per second. The field's full measure (SSIM, judge
    distance, FID/KID, against the baseline) is ``benchmarks/tryon.py``'s (the evaluation layer, above models)."""
    import time

    from prodgen.catalog import load_catalog, normalize
    from prodgen.catalog.attributes import ATTRIBUTE_NAMES
    from prodgen.catalog.scenes import SLOTS, scene_at, slot_crops
    from prodgen.models import registry

    n = 40 if run.fast else 500
    pairs = render_pairs(n, load_catalog("test", 200 if run.fast else None, size=64, progress=False), split="test")
    model = LatentTryOn(trained.model, run.name, {"config": trained.config})
    start = time.perf_counter()
    out = model.try_on([scene_at("test", 0, i) for i in range(n)], pairs.slots, pairs.photos)
    seconds = time.perf_counter() - start
    inside = pairs.masks[:, None].expand_as(out)
    err = ((out.double() - pairs.truths.double()) ** 2 * inside).flatten(1).sum(1) / inside.flatten(1).sum(1)
    kept = ((out == pairs.scenes) | inside).flatten(1).all(1)
    pred = registry.load("scene-judge").predict(normalize(slot_crops(out, pairs.masks, 32)))
    hits: dict = {}
    for i, slot in enumerate(pairs.slots):
        for j, a in enumerate(ATTRIBUTE_NAMES):
            if a in SLOTS[slot].shown:
                hits.setdefault(a, []).append(bool(pred[i, j] == pairs.labels[i, j]))
    worn = {a: round(sum(v) / len(v), 4) for a, v in hits.items()}
    result = {"n": n, "psnr_slot_db": round(float((10 * torch.log10(255.0**2 / err.clamp(min=1e-10))).mean()), 2),
              "outside_kept": round(float(kept.double().mean()), 4), "worn_accuracy": worn,
              "tryons_per_second": round(n / seconds, 1)}
    if run.log:
        run.log(f"{run.name}: slot PSNR {result['psnr_slot_db']} dB, worn {worn}, "
                f"outside kept {result['outside_kept']}")
    return result


def _prepare(run) -> None:
    from prodgen.models.latent import require_autoencoder

    if run.resolution != IMAGE_SIZE:
        raise ValueError(f"{run.name} is registered at {run.resolution} px; it dresses {IMAGE_SIZE} px scenes")
    require_autoencoder(run.cfg["autoencoder"], run.name)  # before any photo is loaded: say what to train first


RECIPE = Recipe(CHECKPOINT_CONFIG, _fit, _measure, names=("tryon-64",), what="try-on models", prepare=_prepare,
                fast={"epochs": 1, "minutes": None, "pairs": 256})
"""What ``prodgen train tryon-64`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (ModelSpec("tryon-64", "tryon", build, train_checkpoint, LatentTryOn, lesson=15, resolution=IMAGE_SIZE,
                   recipe=CHECKPOINT_CONFIG,
                   summary="latent inpainting try-on: the slot regenerated from the masked scene, its mask and the "
                           "product photo (stacked as channels), in ae-64's latents; outside the mask kept"),)
