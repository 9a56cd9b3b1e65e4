"""Conditional GANs (lesson 05): one generator, three ways for the discriminator to use the condition.

The **generator** is the DCGAN generator with the condition fed in twice: its vector is
concatenated with the noise at the input (Mirza & Osindero, 2014), and every batch norm is a
*conditional* batch norm whose scale and shift are computed from the condition (de Vries et al.,
2017; the generator of Miyato & Koyama, 2018). The condition vector comes from ``embed``: an
:class:`~prodgen.models.condition.AttributeEmbedding` of the five attributes here, a projected
text embedding in lesson 07.

The three discriminators differ only in how they use the labels ``y``:

- :class:`ConcatDiscriminator`: ``D(x, y)`` sees ``y`` as 34 constant one-hot image planes stacked
  onto the photo (the original cGAN). Non-saturating loss, batch norm.
- :class:`ProjectionDiscriminator` (Miyato & Koyama, 2018): features ``h = phi(x)``, score
  ``psi(h) + sum_a <e_a(y_a), h>``: an inner product between the features and a learned vector for
  each requested value. Spectral norm on every layer, hinge loss.
- :class:`ACGANDiscriminator` (Odena et al., 2017): a real/fake logit plus one classifier head per
  attribute; both players also minimise the classifiers' cross-entropy (:meth:`aux_loss`).

Every network takes the ``schema`` of the attributes it is conditioned on (``prodgen.catalog.schema``; the
course catalog's by default, your own catalog's in lesson 12). ``prodgen.engine.train.train_gan(...,
condition="labels")`` trains any pair. Used by lessons 05, 07, 09 and 12, ``prodgen generate`` and the shipped
``cgan-projection``, ``cgan-concat`` and ``cgan-acgan``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from prodgen.catalog.schema import BUILTIN, Schema, schema_of
from prodgen.models.condition import AttributeEmbedding, check_labels, fill_unspecified, hide_attributes, one_hot
from prodgen.models.protocol import TRUNCATION, UNSPECIFIED, ImageModel, fill_open, noise
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["ConditionalBatchNorm2d", "Generator", "ConcatDiscriminator", "ProjectionDiscriminator",
           "ACGANDiscriminator", "DISCRIMINATORS", "LOSSES", "BETAS", "recalibrate_batch_norm", "random_requests",
           "build_pair", "build", "CGANImageModel", "generate",
           "CHECKPOINT_CONFIG", "DATA_CONFIG", "SELECT_N", "SELECT_SEED", "best_epoch_keeper", "train_checkpoint",
           "evaluate"]


# ----------------------------------------------------------------------------- the generator
class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose per-channel scale and shift are functions of a condition vector ``c``.

    ``y = BN(x) * (1 + gamma(c)) + beta(c)``: ``gamma`` and ``beta`` are linear maps (``1 +`` so a fresh
    layer starts as a plain batch norm). A red request and a blue one shift the same features differently.
    """

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Linear(cond_dim, channels)
        self.beta = nn.Linear(cond_dim, channels)
        for layer in (self.gamma, self.beta):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.gamma(c)[:, :, None, None], self.beta(c)[:, :, None, None]  # N x C x 1 x 1
        return self.bn(x) * (1 + gamma) + beta


class Generator(nn.Module):
    """``G(z, y)``: noise N x z_dim and a condition -> images N x 3 x 32 x 32 in [-1, 1].

    ``embed`` turns the condition input ``y`` (labels N x A of ``schema``, A = 5 for the course catalog, by
    default) into a vector N x cond_dim.
    """

    def __init__(self, z_dim: int = 64, width: int = 64, embed: nn.Module | None = None, cond_dim: int | None = None,
                 schema: Schema = BUILTIN):
        super().__init__()
        if embed is None:  # one learned 16-d vector per attribute, concatenated: N x 5 -> N x 80
            embed = nn.Sequential(AttributeEmbedding(16, unspecified="learned", schema=schema), nn.Flatten())
            cond_dim = len(schema) * 16
        if cond_dim is None:
            raise ValueError("give cond_dim, the size of the vector `embed` returns")
        self.z_dim, self.width, self.cond_dim, self.image_size = z_dim, width, cond_dim, 32
        self.schema = schema
        self.embed = embed
        w = width
        # N x (z_dim + cond_dim) x 1 x 1 -> N x 4w x 4 x 4
        self.input = nn.ConvTranspose2d(z_dim + cond_dim, 4 * w, 4, 1, 0, bias=False)
        self.bn1 = ConditionalBatchNorm2d(4 * w, cond_dim)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False)  # 4x4 -> 8x8
        self.bn2 = ConditionalBatchNorm2d(2 * w, cond_dim)
        self.up3 = nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False)  # 8x8 -> 16x16
        self.bn3 = ConditionalBatchNorm2d(w, cond_dim)
        self.out = nn.ConvTranspose2d(w, 3, 4, 2, 1, bias=False)  # 16x16 -> 32x32, RGB

    def forward(self, z: torch.Tensor, y) -> torch.Tensor:
        c = self.embed(y)  # N x cond_dim
        h = self.input(torch.cat([z, c], dim=1)[:, :, None, None])  # N x 4w x 4 x 4
        h = F.relu(self.bn1(h, c))
        h = F.relu(self.bn2(self.up2(h), c))  # N x 2w x 8 x 8
        h = F.relu(self.bn3(self.up3(h), c))  # N x w x 16 x 16
        return torch.tanh(self.out(h))  # N x 3 x 32 x 32


# ----------------------------------------------------------------------------- the discriminators
def _trunk(in_channels: int, width: int, norm: str, deep: bool = False) -> nn.Sequential:
    """The DCGAN discriminator's body: 32x32 -> 4w x 4 x 4 features.

    ``norm="batch"``: batch norm after the 2nd and 3rd convolution (the DCGAN recipe);
    ``norm="spectral"``: spectral norm on every convolution instead (each layer 1-Lipschitz);
    ``norm="none"``: neither (the critic of WGAN-GP and R1 in lesson 10, whose penalties do that job).
    ``deep=True``: a 3x3 convolution before each downsampling one (the SNGAN "standard CNN" layout):
    more layers looking at fine detail (logos, dots) at each resolution.
    """
    sn = spectral_norm if norm == "spectral" else (lambda m: m)
    bn = (lambda c: nn.BatchNorm2d(c)) if norm == "batch" else (lambda c: nn.Identity())
    w = width
    layers, c_in = [], in_channels
    for i, c in enumerate((w, 2 * w, 4 * w)):  # 32x32 -> 16x16 -> 8x8 -> 4x4
        if deep:  # same resolution, c_in -> c channels
            layers += [sn(nn.Conv2d(c_in, c, 3, 1, 1)), nn.LeakyReLU(0.2, True)]
            c_in = c
        layers += [sn(nn.Conv2d(c_in, c, 4, 2, 1))]  # halve the resolution
        layers += [bn(c)] if i > 0 else []  # no normalisation on the first layer's output (DCGAN)
        layers += [nn.LeakyReLU(0.2, True)]
        c_in = c
    return nn.Sequential(*layers)


class ConcatDiscriminator(nn.Module):
    """``D(x, y)``: the 34-way one-hot of ``y`` as constant planes beside the RGB planes -> N logits."""

    loss = "non-saturating"

    def __init__(self, width: int = 64, schema: Schema = BUILTIN):
        super().__init__()
        self.schema = schema
        self.features = _trunk(3 + schema.condition_dim, width, "batch")
        self.score = nn.Conv2d(4 * width, 1, 4, 1, 0)  # 4w x 4 x 4 -> 1 x 1 x 1

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c = self.schema.condition_dim
        planes = one_hot(y, self.schema).to(x.dtype)[:, :, None, None].expand(n, c, h, w)  # N x 34 x 32 x 32
        return self.score(self.features(torch.cat([x, planes], dim=1))).flatten()  # N


class ProjectionDiscriminator(nn.Module):
    """``D(x, y) = psi(h) + sum_a <e_a(y_a), h>`` with ``h = phi(x)`` (N x 4w), spectral norm throughout
    (``norm="batch"`` or ``"none"`` swap it for batch norm or nothing: lesson 10's comparisons).

    ``embed`` maps the condition to vectors the size of ``h``: per-attribute embeddings with a zero
    vector for "unspecified" (N x 5 x 4w) by default, a projected text embedding in lesson 07.
    """

    loss = "hinge"

    def __init__(self, width: int = 64, embed: nn.Module | None = None, deep: bool = False, norm: str = "spectral",
                 schema: Schema = BUILTIN):
        super().__init__()
        if norm not in ("spectral", "batch", "none"):
            raise ValueError(f"unknown normalisation {norm!r}; valid: spectral, batch, none")
        self.features = _trunk(3, width, norm, deep)
        psi = nn.Linear(4 * width, 1)  # the unconditional "looks real" score
        self.psi = spectral_norm(psi) if norm == "spectral" else psi
        self.embed = embed if embed is not None else AttributeEmbedding(4 * width, unspecified="zero", schema=schema)

    def forward(self, x: torch.Tensor, y) -> torch.Tensor:
        h = F.leaky_relu(self.features(x), 0.2).sum(dim=(2, 3))  # N x 4w x 4 x 4 -> N x 4w (sum pooling)
        e = self.embed(y)  # N x 5 x 4w (or N x 4w)
        if e.ndim == 3:
            e = e.sum(dim=1)  # sum_a e_a(y_a): N x 4w
        return self.psi(h).flatten() + (e * h).sum(dim=1)  # N: psi(h) + <e, h>


class ACGANDiscriminator(nn.Module):
    """``D(x) -> (logits N, {attribute: class logits N x K})``: real/fake plus one classifier per attribute."""

    loss = "non-saturating"

    def __init__(self, width: int = 64, schema: Schema = BUILTIN):
        super().__init__()
        self.features = _trunk(3, width, "batch")
        self.score = nn.Conv2d(4 * width, 1, 4, 1, 0)
        self.heads = nn.ModuleDict({a: nn.Linear(4 * width * 16, k) for a, k in schema.num_classes.items()})

    def forward(self, x: torch.Tensor, y=None):
        h = self.features(x)  # N x 4w x 4 x 4 (y is not looked at: D must *say* what it sees)
        flat = h.flatten(1)  # N x 16 * 4w
        return self.score(h).flatten(), {a: head(flat) for a, head in self.heads.items()}

    @staticmethod
    def aux_loss(class_logits: dict, labels: torch.Tensor) -> torch.Tensor:
        """Sum over attributes of the cross-entropy for the requested values (unspecified ones skipped)."""
        loss = 0.0
        for j, logits in enumerate(class_logits.values()):
            target = labels[:, j]
            asked = (target >= 0).sum().clamp(min=1)  # a tensor: no GPU sync, no NaN if nothing was asked
            loss = loss + F.cross_entropy(logits.float(), target, ignore_index=-1, reduction="sum") / asked
        return loss


DISCRIMINATORS = {"concat": ConcatDiscriminator, "projection": ProjectionDiscriminator, "acgan": ACGANDiscriminator}
"""name -> discriminator class; each class says which GAN loss it is trained with (``.loss``)."""
LOSSES = {name: cls.loss for name, cls in DISCRIMINATORS.items()}
BETAS = {"concat": [0.5, 0.999], "projection": [0.0, 0.9], "acgan": [0.5, 0.999]}
"""Adam's betas per discriminator: the DCGAN recipe for the batch-norm ones, (0, 0.9) for spectral norm + hinge
(Miyato et al., 2018)."""


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and not hasattr(module, "parametrizations"):
        nn.init.normal_(module.weight, 0.0, 0.02)


def build_pair(kind: str = "projection", z_dim: int = 64, width: int = 64, seed: int | None = 0, deep: bool = False,
               schema: Schema = BUILTIN):
    """A fresh ``(generator, discriminator)`` for ``kind`` in ``DISCRIMINATORS`` (seeded initial weights);
    ``deep``: the projection discriminator's deeper trunk (see ``_trunk``); ``schema``: the attributes."""
    if kind not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {kind!r}; valid kinds: {', '.join(DISCRIMINATORS)}")
    if seed is not None:
        torch.manual_seed(seed)
    if kind == "projection":
        d = ProjectionDiscriminator(width, deep=deep, schema=schema)
    else:
        d = DISCRIMINATORS[kind](width, schema=schema)
    g = Generator(z_dim, width, schema=schema)
    g.apply(_init)
    d.apply(_init)
    return g, d


def build(config: dict) -> Generator:
    """Rebuild a shipped conditional generator from its checkpoint config (``prodgen.models.registry``)."""
    return Generator(config.get("z_dim", 64), config.get("width", 64), schema=schema_of(config))


class CGANImageModel(ImageModel):
    """The image-model protocol (``prodgen.models.protocol``) for a conditional GAN generator: attribute
    requests; knobs ``truncation`` and ``unspecified`` (open attributes drawn at random, or left to the
    generator's learned "unspecified"). Registered as ``cgan-*`` (``SPECS`` below)."""

    accepts = "attributes"
    blends = True

    @property
    def knobs(self) -> dict:
        return {"truncation": TRUNCATION, "unspecified": UNSPECIFIED}

    def _latents(self, labels: torch.Tensor, generator: torch.Generator, truncation=None,
                 unspecified: str = "random") -> dict:
        """``z`` and the condition as :func:`generate` draws them (noise first, then the open attributes, from
        one generator); the condition as labels N x A here, and as their one-hot N x 34 in :meth:`latents`
        (``_for_blending``), which the generator reads exactly as the labels and which blends (a mix of two
        requests is a soft request)."""
        z = noise(len(labels), self.network.z_dim, generator, truncation)
        if unspecified == "random":
            labels = fill_open(labels, generator, self.schema)
        return {"z": z, "condition": labels}  # the generator reads labels and their one-hot alike (same bytes)

    def _for_blending(self, latents: dict) -> dict:
        return {"z": latents["z"], "condition": one_hot(latents["condition"], self.schema)}

    def _decode(self, latents: dict, noise=None, **knobs) -> torch.Tensor:
        z, condition, device = latents["z"], latents["condition"], next(self.network.parameters()).device
        return torch.cat([self.network(z[s:s + 500].to(device), condition[s:s + 500].to(device)).float().cpu()
                          for s in range(0, len(z), 500)])


@torch.no_grad()
def generate(generator: Generator, labels, seed: int = 0, batch_size: int = 500, fill: bool = True,
             truncation: float | None = None) -> torch.Tensor:
    """Images in [-1, 1] for a batch of requests (N x 5, -1 = unspecified; or soft N x 34), one per row.

    ``fill=True``: unspecified attributes are drawn at random first (:func:`fill_unspecified`); ``False``
    leaves them to the generator's learned "unspecified". The noise and the draws come from a CPU generator
    seeded with ``seed``, so the same seed gives the same images. ``truncation`` t: noise entries with
    |z| > t are re-drawn (``protocol.noise``; lesson 09).
    """
    schema = generator.schema
    labels = labels if torch.as_tensor(labels).is_floating_point() else check_labels(labels, schema)
    device = next(generator.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    z = noise(len(labels), generator.z_dim, gen, truncation)
    if fill:
        labels = fill_unspecified(labels, gen, schema)
    generator.eval()
    out = [generator(z[s:s + batch_size].to(device), labels[s:s + batch_size].to(device)).float().cpu()
           for s in range(0, len(labels), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 3, 32, 32)


@torch.no_grad()
def recalibrate_batch_norm(generator: Generator, conditions, batches: int = 20, batch_size: int = 256,
                           seed: int = 0) -> Generator:
    """Re-estimate the generator's batch-norm statistics from its own outputs (BigGAN's "standing statistics").

    An averaged (EMA) generator has weights no single training step had, so the running means and variances
    the training generator collected do not fit it. This runs ``batches`` batches of fresh noise with
    ``conditions(n, generator) -> n conditions`` in training mode, averaging the statistics exactly
    (``momentum=None``), and leaves the generator in eval mode.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    device = next(generator.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    generator.train()
    for _ in range(batches):
        z = torch.randn(batch_size, generator.z_dim, generator=gen)
        generator(z.to(device), conditions(batch_size, gen).to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return generator.eval()


def random_requests(hide_p: float = 0.1, schema: Schema = BUILTIN):
    """``conditions(n, generator)`` for :func:`recalibrate_batch_norm`: uniformly random label rows of
    ``schema``, each attribute hidden with probability ``hide_p`` (what the generator saw in training)."""
    def conditions(n, gen):
        labels = torch.stack([torch.randint(k, (n,), generator=gen) for k in schema.num_classes.values()], dim=1)
        return hide_attributes(labels, hide_p, gen)
    return conditions


# ----------------------------------------------------------------------------- shipped checkpoints
CHECKPOINT_CONFIG = {
    "z_dim": 64, "width": 64, "epochs": 60, "minutes": None, "batch_size": 128, "lr": 2e-4, "lr_d": None,
    "betas": None, "hide_p": 0.1, "ema_decay": 0.999, "deep": None, "seed": 0, "train_split": "train",
    "keep": "last",
}
"""How ``prodgen train cgan-projection`` (and ``cgan-concat``, ``cgan-acgan``) trains: the whole training
split, Adam (lr 2e-4, ``BETAS`` of the discriminator unless ``betas`` is given), each attribute hidden with
probability ``hide_p`` so partial requests work, and the shipped generator is the moving average of the
generator's weights (``ema_decay``) with batch-norm statistics re-estimated on fully specified requests.
``keep="best"`` (with ``--data``): ship the epoch :func:`best_epoch_keeper` picks instead of the last one.
``deep=None``: the deeper trunk for the projection discriminator, the DCGAN one for the others. The loss is the
discriminator's (``LOSSES``): hinge for projection,
non-saturating for the others."""

DATA_CONFIG = {"width": 32, "deep": False, "batch_size": 128, "lr": 5e-4, "lr_d": 2e-3, "epochs": 100,
               "ema_decay": None, "keep": "best"}
"""What ``prodgen train cgan-* --data DIR`` (lesson 12) changes in :data:`CHECKPOINT_CONFIG` (settings given
explicitly still win): networks sized for a CPU (width 32, the DCGAN trunk: about 7 steps of 128 photos a
second on 2 cores, so ``--minutes 10`` was 4,117 steps in the benchmark), lesson 10's two time scales (Adam 5e-4 for G,
2e-3 for D), and the generator shipped as trained, without the weight average (``ema_decay=None``), from
its best epoch as the catalog's judge reads it (``keep="best"``, :func:`best_epoch_keeper`; the last epoch when
the folder has no judge yet).
Trials on the drawn shapes catalog of ``tests/drawn_catalog.py`` (one thread each, 500 requests): with one
rate of 1e-3, shape control ended at 0.85-0.95 and colour wobbled (0.92-1.0); with the two time scales colour
stayed at 1.0 and shape rose to 0.91-0.92 by 2,500 steps of 128; the averaged generator (EMA decay 0.99 or
0.999) read worse on shape every time (0.20-0.84), since averaging generators whose rotations drift apart
blurs the outlines; and the last epoch is a random draw from an oscillation (colour 0.88 after 3,780 steps of
a run that had read 1.0 for 2,000 steps), hence the pick of the best epoch. ``benchmarks/own_catalog.py``
measures the 10-minute run."""

SELECT_N, SELECT_SEED = 250, 1
"""How :func:`best_epoch_keeper` scores an epoch: ``SELECT_N`` balanced requests drawn with ``SELECT_SEED``
(``evaluate`` and ``prodgen evaluate`` draw theirs with seed 0, so the pick is measured afresh)."""


def best_epoch_keeper(generator: Generator, judge, n: int = SELECT_N, seed: int = SELECT_SEED, log=None):
    """``(on_epoch, best)`` for ``train_gan(callbacks=[OnEpoch(on_epoch)])``: after every epoch the judge reads ``n``
    images of
    ``generator`` made for balanced requests (seed ``seed``); ``best`` (a dict) keeps ``epoch``, ``control`` and
    the ``weights`` of the epoch whose weakest attribute scored highest (ties: the higher mean). Model selection on
    generated images with a judge trained on the training photos, as GAN papers pick their best snapshot by FID;
    ``prodgen evaluate`` then measures the pick on other requests and noise. Used by ``prodgen train cgan-*
    --data`` (lesson 12)."""
    from prodgen.metrics import control_accuracy
    from prodgen.models.condition import balanced_requests

    requests = balanced_requests(n, seed, schema=generator.schema)
    best = {"epoch": None, "control": None, "score": None, "weights": None}

    def on_epoch(epoch, history):
        control = control_accuracy(judge, generate(generator, requests, seed), requests)
        score = (min(v for k, v in control.items() if k != "mean"), control["mean"])
        if best["score"] is None or score > best["score"]:
            best.update(epoch=epoch, control=control, score=score,
                        weights={k: v.detach().clone() for k, v in generator.state_dict().items()})
            if log:
                log(f"epoch {epoch}: the judge reads {', '.join(f'{k} {v:.3f}' for k, v in control.items())} "
                    "- the best so far, kept")
    return on_epoch, best


def train_checkpoint(name: str = "cgan-projection", fast: bool = False, log=print, device: str = "auto",
                     out=None, checkpoint=None, resume: bool = False, data=None, **overrides) -> dict:
    """Train a shipped conditional GAN (``prodgen train cgan-projection``); the discriminator kind is the
    part of ``name`` after ``cgan-``. Saves the generator with :func:`evaluate`'s metrics.
    ``out``, ``checkpoint``, ``resume``: see ``prodgen.models.registry.train``. ``data``: a catalog folder of your
    own (lesson 12): trained on its training split and schema, measured with its judge if it has one
    (``prodgen.evaluation.own_catalog``). The shared steps: ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume, data=data)


def _prepare(run) -> None:
    """The discriminator kind from the name, its loss and betas; :data:`DATA_CONFIG` with ``data=``."""
    kind = run.name.removeprefix("cgan-")
    cfg = run.cfg
    cfg |= {"discriminator": kind, "loss": LOSSES[kind]}
    cfg["betas"] = cfg["betas"] or BETAS[kind]
    if run.data is not None:
        cfg |= {k: v for k, v in DATA_CONFIG.items() if k not in run.overrides}
    cfg["deep"] = kind == "projection" if cfg["deep"] is None else cfg["deep"]
    if cfg["deep"] and kind != "projection":
        raise ValueError("deep=True is an option of the projection discriminator only")
    if cfg["keep"] not in ("last", "best"):
        raise ValueError(f"keep must be 'last' or 'best', got {cfg['keep']!r}")
    if cfg["keep"] == "best" and (run.data is None or cfg["ema_decay"] is not None):
        raise ValueError("keep='best' picks an epoch of the generator as trained (ema_decay=None) with the "
                         "judge of a catalog folder (--data)")


def _keeper(run, generator):
    """``(callback, best)`` keeping the epoch the folder's judge reads best, or ``(None, None)``."""
    from prodgen.models import registry

    if run.cfg["keep"] != "best":
        return None, None
    from prodgen.catalog.own import check_same_schema, default_out

    judge_path = default_out(run.data, "judge")
    if not judge_path.is_file():
        if run.log:
            run.log(f"no judge at {judge_path} (prodgen train judge --data {run.data}): the last epoch is kept")
        return None, None
    from prodgen.engine.callbacks import OnEpoch

    judge = registry.load_file(judge_path, "cpu")[0]
    check_same_schema(judge.schema, generator.schema, "the judge", judge_path)
    on_epoch, best = best_epoch_keeper(generator, judge, log=run.log)
    return OnEpoch(on_epoch), best


def _fit(run) -> Trained:
    from prodgen.engine.train import GANSettings, train_gan
    from prodgen.models.dcgan import compact_history

    cfg, schema = run.cfg, run.train.schema
    g, d = build_pair(cfg["discriminator"], cfg["z_dim"], cfg["width"], seed=cfg["seed"], deep=cfg["deep"],
                      schema=schema)
    g_ema = copy.deepcopy(g) if cfg["ema_decay"] is not None else None
    keeper, best = _keeper(run, g)
    settings = GANSettings(loss=cfg["loss"], lr=cfg["lr"], lr_d=cfg["lr_d"], betas=tuple(cfg["betas"]),
                           ema_decay=cfg["ema_decay"] or 0.0)
    history = train_gan(g, d, run.train, epochs=cfg["epochs"], batch_size=cfg["batch_size"], settings=settings,
                        condition=lambda y: hide_attributes(y, cfg["hide_p"]), ema=g_ema, max_minutes=cfg["minutes"],
                        seed=cfg["seed"], device=run.device, callbacks=run.callbacks(*[keeper] if keeper else []))
    config = {"z_dim": g.z_dim, "width": g.width, **({"schema": schema.to_config()} if schema != BUILTIN else {})}
    return Trained(g, config, history, extra=compact_history(history), notes={"ema": g_ema, "best": best})


def _finish(run, trained) -> Trained:
    """Ship the averaged generator (batch-norm statistics re-estimated), or the epoch the judge picked."""
    g_ema, best = trained.notes["ema"], trained.notes["best"]
    if g_ema is not None:
        trained.model = recalibrate_batch_norm(g_ema, random_requests(0.0, g_ema.schema), batches=40)
    if best is not None and best["weights"] is not None:
        trained.model.load_state_dict(best["weights"])
        run.cfg |= {"kept_epoch": best["epoch"], "kept_control": {k: round(v, 4) for k, v in best["control"].items()}}
        if run.log:
            run.log(f"kept epoch {best['epoch']} of {trained.history.epochs_done}")
    return trained


def _measure(run, trained) -> dict:
    return evaluate(trained.model, n=500 if run.fast else 2000)


def _report(metrics: dict) -> str:
    return f"control accuracy {metrics['control']}, FID {metrics['fid']} (floor {metrics['fid_floor']})"


RECIPE = Recipe(CHECKPOINT_CONFIG, _fit, _measure, names=tuple(f"cgan-{k}" for k in DISCRIMINATORS),
                what="conditional GANs", prepare=_prepare, finish=_finish, report=_report)
"""What ``prodgen train cgan-*`` does beyond the shared steps of ``prodgen.models.recipe``."""


def evaluate(generator: Generator, n: int = 2000, seed: int = 0, judge=None) -> dict:
    """What ``prodgen evaluate cgan-*`` reports: control accuracy on ``n`` balanced requests (every value
    of every attribute equally often), on the held-out (category, colour) pairs, and on partial requests;
    FID on judge features with its floor, precision and recall."""
    from prodgen.catalog import HELD_OUT_PAIRS
    from prodgen.metrics import control_accuracy, image_quality
    from prodgen.models import registry
    from prodgen.models.condition import balanced_requests

    judge = judge if judge is not None else registry.load("judge")
    requests = balanced_requests(n, seed)
    images = generate(generator, requests, seed)
    unseen = balanced_requests(max(n // 4, 8), seed + 1, only_pairs=HELD_OUT_PAIRS)
    partial = hide_attributes(balanced_requests(max(n // 4, 8), seed + 2), 0.5,
                              torch.Generator().manual_seed(seed))
    return {
        "n": n,
        "control": _rounded(control_accuracy(judge, images, requests)),
        "control_unseen_pairs": _rounded(control_accuracy(judge, generate(generator, unseen, seed + 1), unseen)),
        "control_partial_requests": _rounded(control_accuracy(judge, generate(generator, partial, seed + 2), partial)),
        **image_quality(judge, images, n),
    }


def _rounded(d: dict) -> dict:
    return {k: round(v, 4) for k, v in d.items()}


SPECS = tuple(
    ModelSpec(f"cgan-{kind}", "cgan", build, train_checkpoint, CGANImageModel, lesson=5, recipe=CHECKPOINT_CONFIG,
              summary=f"conditional GAN, {kind} discriminator: attribute requests")
    for kind in ("projection", "concat", "acgan")
)
