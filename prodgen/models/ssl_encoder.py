"""A second feature space for FID: a small CNN encoder trained on the catalog's photos without their labels.

FID compares two Gaussians fitted to the *features* of real and generated images, so every FID is a statement
about some feature space. The leaderboard's first space is the judge's: a classifier trained on the five
attributes, so it sees what the attributes need and is blind to much else. This encoder is the second,
independent space (issue 24): trained on the same training photos, but never shown a label.

**Objective: SimCLR-style contrastive learning (NT-Xent loss).** Two randomly shifted / flipped views of each
photo go through the encoder and a small projection head; the loss asks each view to pick out its partner among
the ``2B - 1`` other views in the batch (a softmax over cosine similarities at temperature ``tau``). Why this,
not a reconstruction objective (an autoencoder): to tell one photo from 511 others of the same catalog, the
features must keep what distinguishes near-identical products (colour, shape, pattern, the logo, the size),
while a pixel loss spends its capacity on the background and smooth shading. It needs no labels, no decoder
and no second network, so it is the cheapest label-free objective per CPU-minute (``benchmarks/ssl_encoder.py``
measured the shipped recipe against shorter / wider ones: ``data/results/ssl-encoder.json``).

**Augmentations decide what the features ignore.** A contrastive encoder becomes invariant to whatever differs
between the two views. FID features must stay sensitive to what makes an image look right, so the views differ
only by a shift of up to ``shift`` pixels (edges repeated) and a horizontal flip: no colour jitter, no blur, no
noise, no grayscale and no rescaling crops (the colour and the product's size are attributes; blur and noise
are exactly what a bad generator adds). SimCLR's ImageNet recipe uses all of those, because it wants labels of
objects, not a judge of image quality.

The FID features are the 256-d output of the trunk (before the projection head, as in SimCLR: the head's
output is tuned to the contrastive task and throws information away). Shipped as ``ssl-encoder``; used by the
leaderboard (``prodgen.evaluation.leaderboard``: the ``FID (SSL)`` column) and lessons 08 and 13.
"""
from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["SSLEncoder", "build", "views", "nt_xent", "fit_encoder", "probe", "CHECKPOINT_CONFIG"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SSLEncoder(nn.Module):
    """A CNN trunk (``N x 3 x S x S`` in [-1, 1] -> ``N x dim``) plus the projection head used only in training."""

    def __init__(self, width: int = 16, dim: int = 256, proj_dim: int = 64):
        super().__init__()
        w = width
        self.dim = dim
        self.trunk = nn.Sequential(
            _block(3, w),  # S x S
            nn.MaxPool2d(2),  # S/2
            _block(w, 2 * w),
            nn.MaxPool2d(2),  # S/4
            _block(2 * w, 4 * w),
            _block(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(2),  # 2 x 2: where things are survives (top / bottom, left / right)
            nn.Flatten(),  # 16w
            nn.Linear(16 * w, dim),
            nn.BatchNorm1d(dim),
            nn.ReLU(inplace=True),  # N x dim: the FID features
        )
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The projections ``N x proj_dim`` the contrastive loss compares (training only)."""
        return self.head(self.trunk(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """The trunk's features ``N x dim`` of images in [-1, 1] (eval mode): what FID (SSL) compares."""
        was_training = self.training
        self.eval()
        x = x.contiguous(memory_format=torch.channels_last)
        out = torch.cat([self.trunk(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])
        self.train(was_training)
        return out

    def features(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Features ``N x dim`` (float32) of uint8 images (``N x 3 x S x S``) or of floats in [-1, 1]."""
        from prodgen.catalog.dataset import normalize

        x = normalize(images) if images.dtype == torch.uint8 else images.float()
        return self.embed(x, batch_size).float()


def build(config: dict) -> SSLEncoder:
    """Rebuild an encoder from its checkpoint config (``prodgen.models.registry``)."""
    return SSLEncoder(config.get("width", 16), config.get("dim", 256), config.get("proj_dim", 64))


def views(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """One random view of each image of ``x`` (``N x C x H x W``): shifted by up to ``shift`` pixels along each
    axis (the edge pixels repeated into the gap) and flipped left-right with probability 1/2. Nothing else:
    colour, sharpness and noise stay as they are (see the module docstring)."""
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * shift + 1, (n, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (n, 1, 1), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    padded = F.pad(x, (shift,) * 4, mode="replicate")  # N x C x (H + 2 shift) x (W + 2 shift)
    rows = torch.arange(h)[None, :, None] + dy  # N x H x 1: source rows in the padded image
    cols = torch.arange(w)[None, None, :] + dx  # N x 1 x W
    cols = torch.where(flip[:, None, None], 2 * dx + w - 1 - cols, cols)  # read the columns backwards
    out = padded.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols]  # N x H x W x C
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The NT-Xent loss (SimCLR): ``z1[i]`` and ``z2[i]`` (``B x d`` each) are two views of photo ``i``; each of the
    ``2B`` views must find its partner among the other ``2B - 1`` by cosine similarity / ``temperature``."""
    b = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # 2B x d, unit length
    sim = z @ z.T / temperature  # 2B x 2B
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool), float("-inf"))  # a view is not its own partner
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])  # view i <-> view i + B
    return F.cross_entropy(sim, partner)


def fit_encoder(images: torch.Tensor, epochs: int = 16, batch_size: int = 256, lr: float = 2e-3,
                temperature: float = 0.1, shift: int = 4, width: int = 16, dim: int = 256, proj_dim: int = 64,
                seed: int = 0, max_steps: int | None = None, log=None) -> tuple[SSLEncoder, list[float]]:
    """Train an encoder on uint8 ``images`` (``N x 3 x S x S``, no labels) with :func:`nt_xent` on two
    :func:`views` of each photo (AdamW, one-cycle schedule); ``max_steps`` stops early (a smoke test).
    Returns the encoder (eval mode) and the loss of every step. Same seed and thread count -> same weights."""
    from prodgen.catalog.dataset import normalize

    per_epoch = len(images) // batch_size
    if per_epoch < 1:
        raise ValueError(f"the encoder needs at least one batch of {batch_size} photos, got {len(images)}")
    torch.manual_seed(seed)
    model = SSLEncoder(width, dim, proj_dim).to(memory_format=torch.channels_last)
    steps = epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    losses, start = [], time.perf_counter()
    model.train()
    while len(losses) < steps:
        order = torch.randperm(len(images), generator=gen)
        for s in range(per_epoch):
            x = normalize(images[order[s * batch_size:(s + 1) * batch_size]])  # B x 3 x S x S
            loss = nt_xent(model(views(x, shift, gen)), model(views(x, shift, gen)), temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if len(losses) == steps:
                break
        if log:
            log(f"step {len(losses)}/{steps}: NT-Xent {sum(losses[-per_epoch:]) / min(per_epoch, len(losses)):.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    return model.eval(), losses


def probe(encoder, train, test, n_train: int = 5000) -> dict[str, float]:
    """A linear probe of the frozen features: one linear layer per attribute, fitted on the features of the first
    ``n_train`` photos of catalog ``train``, scored on catalog ``test`` (accuracy per attribute, and the mean).
    High accuracy although the encoder never saw a label: its features carry the attributes
    (``metrics.linear_probe``)."""
    from prodgen import metrics

    train = train.subset(range(min(n_train, len(train))))
    return metrics.linear_probe(encoder.features(train.images), train.labels, encoder.features(test.images),
                                test.labels, train.schema.num_classes)


# The shipped encoder (``prodgen train ssl-encoder``): 16 epochs, 5.7 CPU-minutes on one thread. Chosen by
# ``benchmarks/ssl_encoder.py --part recipes`` (data/results/ssl-encoder.json, 2.5 CPU-minutes a run): width 16
# probes as well as width 32 (0.85 vs 0.84 mean) at a quarter of the cost per image; temperature 0.1 beats 0.2 and
# 0.5 (the brand probe 0.71 / 0.61 / 0.39; FID at noise 0.05 is 2.8 / 1.8 / 1.1 times the floor); batch 512 adds
# nothing over 256. 16 epochs instead of the short run's 6.7: the loss is nearly flat by then (0.13 -> 0.09) and the
# space grows more sensitive to noise (3.3 times the floor at sigma 0.05, n = 1,000) but less to a 3 x 3 blur
# (28 vs 36 times) and its probe drops (0.84 vs 0.86, brand and size): a trade, not a clear win ("usefulness").
CHECKPOINT_CONFIG = {"width": 16, "dim": 256, "proj_dim": 64, "epochs": 16, "batch_size": 256, "lr": 2e-3,
                     "temperature": 0.1, "shift": 4, "seed": 0, "train_split": "train"}


def train_checkpoint(name: str = "ssl-encoder", fast: bool = False, log=print, out=None, **overrides) -> dict:
    """Train the shipped encoder (``prodgen train ssl-encoder``) and save it with its measurements (to ``out`` if
    given). ``overrides`` replace entries of :data:`CHECKPOINT_CONFIG`. Its loop is :func:`fit_encoder`, one
    process on the CPU (no device, time budget, resume or torchrun). It trains on the course catalog only: the
    leaderboard's second space is the course's, also for a catalog of your own (``prodgen.evaluation.own_catalog``).
    The shared steps: ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, out=out)


def _fit(run) -> Trained:
    cfg = run.cfg
    start, cpu = time.perf_counter(), time.process_time()
    settings = {k: cfg[k] for k in ("epochs", "batch_size", "lr", "temperature", "shift", "width", "dim", "proj_dim",
                                    "seed")}
    model, losses = fit_encoder(run.train.images, log=run.log, **settings)
    per_epoch = len(run.train) // cfg["batch_size"]
    curve = [round(sum(losses[i:i + per_epoch]) / len(losses[i:i + per_epoch]), 4)
             for i in range(0, len(losses), per_epoch)]
    training = {"seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
                "threads": torch.get_num_threads(), "command": "OMP_NUM_THREADS=1 prodgen train ssl-encoder",
                "steps": len(losses), "loss_per_epoch": curve}
    return Trained(model, {"width": cfg["width"], "dim": cfg["dim"], "proj_dim": cfg["proj_dim"]}, training=training)


def _measure(run, trained) -> dict:
    """The linear probe's accuracy on the test photos (probe fitted on 5,000 training photos) and the real-vs-real
    FID floor at n = 2,000 in this space (a smoke test: 500 photos)."""
    from prodgen import metrics
    from prodgen.catalog import load_catalog

    n = 500 if run.fast else 2000
    train, test = load_catalog("train", progress=False), load_catalog("test", progress=False)
    found = {f"probe_{a}": round(v, 4) for a, v in probe(trained.model, train, test.subset(range(n))).items()}
    found["fid_floor"] = round(metrics.fid(trained.model.features(train.images[:n]),
                                           trained.model.features(test.images[:n])), 3)
    found["floor_n"] = n
    if run.log:
        run.log("metrics: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    return found


RECIPE = Recipe(CHECKPOINT_CONFIG, _fit, _measure, fast={"epochs": 1}, fast_products=1024)
"""What ``prodgen train ssl-encoder`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (ModelSpec("ssl-encoder", "ssl_encoder", build, train_checkpoint, lesson=8, recipe=CHECKPOINT_CONFIG,
                   summary="a label-free (contrastive) image encoder: the leaderboard's second FID feature space"),)
