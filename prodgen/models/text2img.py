"""Text to image (lesson 07): a description goes in, the product it describes comes out.

Two parts, trained in two stages:

1. a **description reader** (lesson 02), **frozen**;
2. a **conditional GAN** (lesson 05's generator and projection discriminator) conditioned on what the
   reader makes of the description. Two choices, both shipped, compared in the lesson:

   - ``condition="attributes"`` (``text2img``): the reader's five heads' probabilities, a *soft request*
     N x 34 (each attribute's distribution over its values and "unspecified"), embedded with the lesson-05
     attribute tables (a probability-weighted mix of rows). Any reader that produces soft requests can
     drive the generator: the shipped one was trained on ``text-gru``'s readings and ships with
     ``text-votes`` (``prodgen.models.text.WordVotes``) in front, the reader that reads combinations it never saw.
   - ``condition="embedding"`` (``text2img-embedding``): the GRU's 64-d sentence vector ``e``, through a
     small MLP in the generator and a linear map in the discriminator (score ``psi(h) + <W e, h>``; Reed et
     al., 2016 condition both players on a sentence vector like this). It fails on the held-out
     combinations: the GRU learned that they do not occur, and the generator learned the GRU's geometry.

Why frozen: the encoder already reads the attributes (100 % on test descriptions), the GAN's noisy
gradient would only blur it, and a fixed encoder lets every description be encoded once, before training,
instead of at every step. What we give up: the encoder cannot learn visual nuances its heads never needed
(there are none in this catalog; there would be in real photos).

Training pairs: for each allowed attribute combination (the held-out (category, colour) pairs are
never used), a :class:`DescriptionBank` holds several random English and Chinese descriptions, each
naming a random subset of the attributes (as the catalog's own descriptions do). Every step, each
photo is paired with one of its combination's descriptions at random.

Used by lesson 07, ``prodgen generate --model text2img`` and the shipped ``text2img`` checkpoints.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from prodgen.catalog.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, HELD_OUT_PAIRS, index_of
from prodgen.models.cgan import Generator, ProjectionDiscriminator
from prodgen.models.condition import NUM_CLASSES, fill_unspecified
from prodgen.models.protocol import TRUNCATION, UNSPECIFIED, ImageModel, noise
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["CONDITIONS", "encode_condition", "DescriptionBank", "TextToImage", "text_generator", "text_discriminator",
           "build", "TextImageModel", "NEW_PHRASINGS",
           "CHECKPOINT_CONFIG", "train_checkpoint", "evaluate", "description_accuracy"]

_RADIX = [NUM_CLASSES[a] for a in ATTRIBUTE_NAMES]


def combination_index(labels: torch.Tensor) -> torch.Tensor:
    """Each fully specified label row N x 5 as one number in 0..3839 (mixed radix)."""
    index = torch.zeros(len(labels), dtype=torch.long, device=labels.device)
    for j, k in enumerate(_RADIX):
        index = index * k + labels[:, j]
    return index


def _all_combinations() -> torch.Tensor:
    grids = torch.meshgrid(*[torch.arange(k) for k in _RADIX], indexing="ij")
    return torch.stack([g.flatten() for g in grids], dim=1)  # 3840 x 5, row i has combination_index i


CONDITIONS = ("attributes", "embedding")
DEFAULT_ENCODER = {"attributes": "text-votes", "embedding": "text-gru"}
"""The reader each condition uses by default: the word-vote reader's probabilities (it reads combinations it
never saw, see ``prodgen.models.text.WordVotes``), the GRU's sentence vector (the vote reader has none)."""


def encode_condition(encoder, texts, condition: str, strict: bool = False) -> torch.Tensor:
    """What the generator is conditioned on: soft requests N x 34 or sentence vectors N x 64."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; valid: {', '.join(CONDITIONS)}")
    if condition == "attributes":
        return encoder.probabilities(texts, strict=strict)
    return encoder.encode(texts, strict=strict).float()


class DescriptionBank:
    """``per_combination`` random descriptions (each in English and Chinese) for every allowed attribute
    combination, encoded once by a frozen text encoder. ``bank(labels)`` -> one random condition per row."""

    def __init__(self, encoder, per_combination: int = 4, seed: int = 0, exclude_pairs=HELD_OUT_PAIRS,
                 condition: str = "attributes"):
        from prodgen.catalog.describe import random_description

        combos = _all_combinations()
        banned = {(index_of("category", c), index_of("color", v)) for c, v in exclude_pairs}
        cat, col = ATTRIBUTE_NAMES.index("category"), ATTRIBUTE_NAMES.index("color")
        self.allowed = torch.tensor([(int(r[cat]), int(r[col])) not in banned for r in combos])
        rng = np.random.default_rng(seed)
        texts = []
        for row in combos[self.allowed].tolist():
            attrs = {a: ATTRIBUTES[a][k].key for a, k in zip(ATTRIBUTE_NAMES, row)}
            for _ in range(per_combination):
                _, en, zh = random_description(attrs, rng)
                texts += [en, zh]
        self.texts = texts
        emb = torch.cat([encode_condition(encoder, texts[s:s + 4096], condition)
                         for s in range(0, len(texts), 4096)])  # (allowed * per * 2) x D
        self.dim, self.per = emb.shape[1], 2 * per_combination
        self.embeddings = torch.zeros(len(combos), self.per, self.dim)  # 3840 x 2per x D (banned rows stay 0)
        self.embeddings[self.allowed] = emb.reshape(-1, self.per, self.dim)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.texts)

    def to(self, device) -> DescriptionBank:
        self.embeddings = self.embeddings.to(device)
        self.allowed = self.allowed.to(device)
        return self

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        """One description embedding per label row (N x D), picked at random among its combination's."""
        combo = combination_index(labels)
        if not bool(self.allowed[combo].all()):
            raise ValueError("a label row is a held-out combination: the bank has no descriptions for it")
        pick = torch.randint(self.per, (len(labels),), generator=self.generator).to(labels.device)
        return self.embeddings[combo, pick]


def bank_requests(bank: DescriptionBank):
    """``conditions(n, generator)`` for ``cgan.recalibrate_batch_norm``: descriptions of random allowed
    combinations, encoded as in training."""
    from prodgen.models.condition import balanced_requests

    def conditions(n, gen):
        labels = balanced_requests(n, int(torch.randint(2**31 - 1, (1,), generator=gen)), exclude_pairs=HELD_OUT_PAIRS)
        return bank(labels.to(bank.embeddings.device))
    return conditions


def text_generator(condition: str = "attributes", text_dim: int = 64, z_dim: int = 64, width: int = 64) -> Generator:
    """The lesson-05 generator for a text condition: soft requests go through its attribute tables as they
    are; a sentence vector through ``embed`` = MLP ``text_dim -> 80``."""
    if condition == "attributes":
        return Generator(z_dim, width)
    embed = nn.Sequential(nn.Linear(text_dim, 128), nn.ReLU(True), nn.Linear(128, 80))  # N x D -> N x 80
    return Generator(z_dim, width, embed=embed, cond_dim=80)


def text_discriminator(condition: str = "attributes", text_dim: int = 64, width: int = 64) -> ProjectionDiscriminator:
    """The projection discriminator for a text condition: soft requests weight its attribute vectors; a
    sentence vector is mapped linearly, ``text_dim -> 4w`` (score ``psi(h) + <W e, h>``)."""
    if condition == "attributes":
        return ProjectionDiscriminator(width)
    return ProjectionDiscriminator(width, embed=nn.Linear(text_dim, 4 * width))


class TextToImage(nn.Module):
    """A frozen description encoder (``prodgen.models.text.TextEncoder``) and a generator conditioned on its vectors.

    ``model.generate(["a red striped t-shirt by Acme", "大号黑色马克杯"], seed=0)`` -> images in [-1, 1].
    Only the generator's weights are this model's parameters; the encoder is loaded by name.
    """

    def __init__(self, encoder, generator: Generator, condition: str = "attributes"):
        super().__init__()
        self.generator = generator
        self.encoder = encoder  # a TextEncoder: not an nn.Module, so not part of state_dict()
        self.condition = condition

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    def forward(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.generator(z, e)

    @torch.no_grad()
    def generate(self, texts, seed: int = 0, strict: bool = True, batch_size: int = 500, fill: bool = True,
                 truncation: float | None = None) -> torch.Tensor:
        """One image per description. ``strict``: refuse blank descriptions or ones that name no known
        product word (a ``ValueError`` saying which). ``fill`` (soft requests only): attributes the
        description leaves open are drawn at random (``condition.fill_unspecified``). The same seed gives
        the same images. ``truncation`` t: noise entries with |z| > t are re-drawn (``protocol.noise``)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        e = encode_condition(self.encoder, texts, self.condition, strict)  # N x 34 or N x 64
        gen = torch.Generator().manual_seed(seed)
        z = noise(len(texts), self.z_dim, gen, truncation)
        if fill and self.condition == "attributes":
            e = fill_unspecified(e, gen)
        dev = next(self.generator.parameters()).device
        self.generator.eval()
        out = [self.generator(z[s:s + batch_size].to(dev), e[s:s + batch_size].to(dev)).float().cpu()
               for s in range(0, len(texts), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, 3, 32, 32)


def build(config: dict) -> TextToImage:
    """Rebuild the shipped model: load its encoder by name, a fresh generator for the weights."""
    from prodgen.models.text import load_encoder

    condition = config.get("condition", "attributes")
    encoder = load_encoder(config.get("encoder") or DEFAULT_ENCODER[condition])
    g = text_generator(condition, encoder.dim, config.get("z_dim", 64), config.get("width", 64))
    return TextToImage(encoder, g, condition)


class TextImageModel(ImageModel):
    """The image-model protocol (``prodgen.models.protocol``) for a text-to-image model: descriptions in,
    checked strictly (blank, or no known product word -> ``ValueError``); knobs ``truncation`` and, for the
    soft-request condition, ``unspecified``. Registered as ``text2img*`` (``SPECS`` below)."""

    accepts = "text"
    blends = True

    @property
    def knobs(self) -> dict:
        if self.network.condition == "attributes":
            return {"truncation": TRUNCATION, "unspecified": UNSPECIFIED}
        return {"truncation": TRUNCATION}  # a sentence vector has no "unspecified" to fill

    def _latents(self, texts: list, generator: torch.Generator, truncation=None, unspecified: str = "random") -> dict:
        """``z`` and the condition (soft requests N x 34 after the open attributes were drawn, or sentence
        vectors N x 64), drawn as :meth:`TextToImage.generate` draws them."""
        net = self.network
        e = encode_condition(net.encoder, texts, net.condition, strict=True)
        z = noise(len(texts), net.z_dim, generator, truncation)
        if unspecified == "random" and net.condition == "attributes":
            e = fill_unspecified(e, generator)
        return {"z": z, "condition": e}

    def _decode(self, latents: dict, noise=None, **knobs) -> torch.Tensor:
        z, condition, device = latents["z"], latents["condition"], next(self.network.parameters()).device
        return torch.cat([self.network(z[s:s + 500].to(device), condition[s:s + 500].to(device)).float().cpu()
                          for s in range(0, len(z), 500)])

    def understood(self, requests) -> list[dict]:
        """What the model's description reader heard in each description (attributes it did not hear left out)."""
        return [{a: v for a,
                 v in heard.items() if v is not None} for heard in self.network.encoder.read(self.prepare(requests))]


# --------------------------------------------------------------------------- measuring it
NEW_PHRASINGS: tuple[tuple[str, dict], ...] = (
    ("I would love a green t-shirt with stripes, please", {"category": "t-shirt", "color": "green",
                                                           "pattern": "striped"}),
    ("do you sell blue sneakers from Nova?", {"category": "sneaker", "color": "blue", "brand": "nova"}),
    ("show me an oversized backpack, black, checked", {"category": "backpack", "color": "black", "size": "large",
                                                       "pattern": "checked"}),
    ("need a tiny pink mug asap", {"category": "mug", "color": "pink"}),
    ("Orbit makes this yellow polka-dot cap", {"category": "cap", "color": "yellow", "brand": "orbit",
                                               "pattern": "dotted"}),
    ("what about a purple lamp? plaid would be nice", {"category": "lamp", "color": "purple", "pattern": "checked"}),
    ("my kid wants a small red rucksack by Zenith", {"category": "backpack", "color": "red", "size": "small",
                                                     "brand": "zenith"}),
    ("teal water bottle, big one, plain", {"category": "bottle", "color": "teal", "size": "large", "pattern": "plain"}),
    ("gift idea: an orange handbag with polka dots", {"category": "handbag", "color": "orange", "pattern": "dotted"}),
    ("brown sneaker, Acme, little", {"category": "sneaker", "color": "brown", "brand": "acme", "size": "small"}),
    ("请给我一件绿色的T恤，要条纹的", {"category": "t-shirt", "color": "green", "pattern": "striped"}),
    ("我想买Nova的蓝色运动鞋", {"category": "sneaker", "color": "blue", "brand": "nova"}),
    ("有没有黑色格子的大号背包", {"category": "backpack", "color": "black", "size": "large", "pattern": "checked"}),
    ("送朋友一个粉色马克杯", {"category": "mug", "color": "pink"}),
    ("Orbit家的黄色波点帽子", {"category": "cap", "color": "yellow", "brand": "orbit", "pattern": "dotted"}),
    ("紫色台灯，最好是格纹", {"category": "lamp", "color": "purple", "pattern": "checked"}),
    ("two red caps for the twins", {"category": "cap", "color": "red"}),
    ("a set of checked mugs by Nova", {"category": "mug", "pattern": "checked", "brand": "nova"}),
    ("两个红色杯子", {"category": "mug", "color": "red"}),
    ("三双黑色运动鞋，Acme的", {"category": "sneaker", "color": "black", "brand": "acme"}),
)
"""Requests phrased in ways no template uses (fillers the encoder never saw, other word orders, plurals and
Chinese measure words), with the attributes they name. Several are held-out pairs (green t-shirt, purple lamp)."""


def description_accuracy(model: TextToImage, judge, texts, labels: torch.Tensor, seed: int = 0) -> dict:
    """Generate one image per description; how often the judge sees each *mentioned* attribute
    (``labels`` N x 5, -1 where the description says nothing)."""
    from prodgen.metrics import control_accuracy

    images = model.generate(list(texts), seed=seed, strict=False)
    return {k: round(v, 4) for k, v in control_accuracy(judge, images, labels).items()}


def _requested(catalog) -> torch.Tensor:
    return catalog.labels.masked_fill(~catalog.mentioned, -1)


def evaluate(model: TextToImage, n: int = 2000, seed: int = 0, judge=None) -> dict:
    """What ``prodgen evaluate text2img`` reports: accuracy on the mentioned attributes of ``n`` English and
    ``n`` Chinese test descriptions, of the ``unseen`` split's (held-out combinations) in both languages,
    and of :data:`NEW_PHRASINGS` (8 images each); FID (with floor), precision, recall of the EN test images."""
    from prodgen.catalog import load_catalog
    from prodgen.metrics import image_quality
    from prodgen.models import registry
    from prodgen.models.condition import parse_request

    judge = judge if judge is not None else registry.load("judge")
    test, unseen = load_catalog("test", progress=False), load_catalog("unseen", progress=False)
    test, unseen = test.subset(range(min(n, len(test)))), unseen.subset(range(min(n, len(unseen))))
    result = {"n": len(test)}
    for name, cat in (("test", test), ("unseen", unseen)):
        for lang in ("en", "zh"):
            texts = cat.descriptions_en if lang == "en" else cat.descriptions_zh
            result[f"{name}_{lang}"] = description_accuracy(model, judge, texts, _requested(cat), seed)
    texts = [t for t, _ in NEW_PHRASINGS for _ in range(8)]
    labels = torch.cat([parse_request(a) for _, a in NEW_PHRASINGS for _ in range(8)])
    result["new_phrasings"] = description_accuracy(model, judge, texts, labels, seed)
    images = model.generate(test.descriptions_en, seed=seed, strict=False)
    result |= image_quality(judge, images, len(test))
    return result


# --------------------------------------------------------------------------- the shipped checkpoint
CHECKPOINT_CONFIG = {"encoder": None, "condition": "attributes", "z_dim": 64, "width": 64,
                     "per_combination": 4, "epochs": 60, "minutes": None, "batch_size": 128, "lr": 2e-4,
                     "betas": [0.0, 0.9], "ema_decay": 0.999, "seed": 0, "train_split": "train"}
"""How ``prodgen train text2img`` trains: the frozen ``text-gru`` encoder, a :class:`DescriptionBank` with
``per_combination`` EN + ZH descriptions per allowed combination, the projection discriminator, hinge loss,
the moving average of the generator's weights shipped (as for ``cgan-projection``). ``text2img-embedding``:
the same with ``condition="embedding"``."""


def train_checkpoint(name: str = "text2img", fast: bool = False, log=print, device: str = "auto", out=None,
                     checkpoint=None, resume: bool = False, **overrides) -> dict:
    """Train a shipped text-to-image model (``prodgen train text2img`` or ``text2img-embedding``) and save its
    generator with :func:`evaluate`'s metrics. ``fast=True``: 1,024 products, one epoch (a smoke test).
    ``out``, ``checkpoint``, ``resume``: see ``prodgen.models.registry.train``; the shared steps:
    ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume)


def _prepare(run) -> None:
    cfg = run.cfg
    if run.name == "text2img-embedding" and "condition" not in run.overrides:
        cfg["condition"] = "embedding"
    cfg["loss"] = "hinge"
    cfg["encoder"] = cfg["encoder"] or DEFAULT_ENCODER[cfg["condition"]]


def _fit(run) -> Trained:
    import copy

    from prodgen.engine.callbacks import SampleGrid
    from prodgen.engine.runtime import pick_device
    from prodgen.engine.train import GANSettings, train_gan
    from prodgen.models.cgan import _init
    from prodgen.models.dcgan import compact_history
    from prodgen.models.text import load_encoder

    cfg, cond = run.cfg, run.cfg["condition"]
    encoder = load_encoder(cfg["encoder"])
    bank = DescriptionBank(encoder, cfg["per_combination"], seed=cfg["seed"], condition=cond)
    bank = bank.to(pick_device(run.device))
    torch.manual_seed(cfg["seed"])
    g = text_generator(cond, encoder.dim, cfg["z_dim"], cfg["width"])
    d = text_discriminator(cond, encoder.dim, cfg["width"])
    g.apply(_init)
    d.apply(_init)
    g_ema = copy.deepcopy(g)
    grid = SampleGrid(64, requests=encode_condition(encoder, run.train.descriptions_en[:64], cond))
    settings = GANSettings(loss="hinge", lr=cfg["lr"], betas=tuple(cfg["betas"]), ema_decay=cfg["ema_decay"])
    history = train_gan(g, d, run.train, epochs=cfg["epochs"], batch_size=cfg["batch_size"], settings=settings,
                        condition=bank, ema=g_ema, max_minutes=cfg["minutes"], seed=cfg["seed"], device=run.device,
                        callbacks=run.callbacks(grid))
    config = {"encoder": cfg["encoder"], "condition": cond, "z_dim": g.z_dim, "width": g.width}
    return Trained(TextToImage(encoder, g_ema, cond), config, history, network=g_ema,
                   extra=compact_history(history), notes={"bank": bank})


def _finish(run, trained) -> Trained:
    from prodgen.models.cgan import recalibrate_batch_norm

    recalibrate_batch_norm(trained.network, bank_requests(trained.notes["bank"]), batches=40)
    return trained


def _measure(run, trained) -> dict:
    return evaluate(trained.model, n=500 if run.fast else 2000)


RECIPE = Recipe(CHECKPOINT_CONFIG, _fit, _measure, names=("text2img", "text2img-embedding"),
                what="text-to-image models", fast={"epochs": 1, "minutes": None, "per_combination": 1},
                prepare=_prepare, finish=_finish,
                report=lambda m: ", ".join(f"{k} {v['mean']}" for k, v in m.items() if isinstance(v, dict)))
"""What ``prodgen train text2img`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (
    ModelSpec("text2img", "text2img", build, train_checkpoint, TextImageModel, lesson=7, recipe=CHECKPOINT_CONFIG,
              summary="text to image: a description (EN/ZH) read by the text reader, then a conditional GAN"),
    ModelSpec("text2img-embedding", "text2img", build, train_checkpoint, TextImageModel, lesson=7,
              recipe=CHECKPOINT_CONFIG, summary="text to image with the reader's embedding as the condition"),
)
