"""DCGAN: a generator and a discriminator made of (transposed) convolutions.

Radford, Metz & Chintala, *Unsupervised representation learning with deep convolutional
generative adversarial networks* (2016). The recipe: no pooling (strided convolutions do the
resampling), batch norm in both networks except the generator's output and the
discriminator's input, ReLU in the generator, LeakyReLU(0.2) in the discriminator, a tanh
output in [-1, 1], Adam with lr 2e-4 and beta1 0.5, weights drawn from N(0, 0.02).

At 32x32 each network has four layers; ``image_size=64`` adds one more to each.
The discriminator returns **logits** (before the sigmoid); the GAN losses that read them
(``d_loss_bce``, ``g_loss_non_saturating``, the hinge pair, ...) live in ``prodgen.engine.losses``.

Used by lesson 03 (GANs) and, through ``prodgen.engine.train``, by lessons 05 and 10.
"""
from __future__ import annotations

import torch
from torch import nn

from prodgen.models.protocol import TRUNCATION, ImageModel, noise
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["Generator", "Discriminator", "init_weights", "build", "build_pair", "DCGANImageModel", "CHECKPOINT_CONFIG",
           "train_checkpoint",
           "RECIPE", "compact_history"]


# ----------------------------------------------------------------------------- the networks
class Generator(nn.Module):
    """``z`` (N x z_dim) -> images N x 3 x S x S in [-1, 1], S = 32 or 64."""

    def __init__(self, z_dim: int = 100, width: int = 64, image_size: int = 32):
        super().__init__()
        if image_size not in (32, 64):
            raise ValueError(f"unsupported image size {image_size!r}; valid sizes: 32, 64")
        self.z_dim, self.width, self.image_size = z_dim, width, image_size
        w = width
        c = 8 * w if image_size == 64 else 4 * w  # channels of the first 4x4 feature map
        layers = [
            # N x z_dim x 1 x 1 -> N x c x 4 x 4: a 4x4 kernel "paints" a whole 4x4 map per input number
            nn.ConvTranspose2d(z_dim, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True),
        ]
        while c > w:  # each block doubles the resolution and halves the channels: 4->8->16 (->32 at 64 px)
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        # N x w x S/2 x S/2 -> N x 3 x S x S: the last layer makes RGB, tanh squashes it into [-1, 1]
        layers += [nn.ConvTranspose2d(w, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # N x z_dim -> N x z_dim x 1 x 1 -> N x 3 x S x S


class Discriminator(nn.Module):
    """Images N x 3 x S x S -> one **logit** per image (N,): large = "looks real"."""

    def __init__(self, width: int = 64, image_size: int = 32):
        super().__init__()
        if image_size not in (32, 64):
            raise ValueError(f"unsupported image size {image_size!r}; valid sizes: 32, 64")
        self.width, self.image_size = width, image_size
        w = width
        layers = [  # no batch norm on the input layer (DCGAN recipe)
            nn.Conv2d(3, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),  # S -> S/2
        ]
        c, size = w, image_size // 2
        while size > 4:  # 16 -> 8 -> 4 (32 -> 16 -> 8 -> 4 at 64 px), channels double
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, True)]
            c, size = 2 * c, size // 2
        # N x c x 4 x 4 -> N x 1 x 1 x 1: one 4x4 kernel looks at the whole map
        layers += [nn.Conv2d(c, 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()  # N x 1 x 1 x 1 -> N logits


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: convolutions ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_pair(z_dim: int = 100, width: int = 64, image_size: int = 32, seed: int | None = 0):
    """A freshly initialised ``(generator, discriminator)``; ``seed`` fixes the initial weights."""
    if seed is not None:
        torch.manual_seed(seed)
    g, d = Generator(z_dim, width, image_size), Discriminator(width, image_size)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d


def build(config: dict) -> Generator:
    """Rebuild the shipped generator from its checkpoint config (``prodgen.models.registry``)."""
    return Generator(config.get("z_dim", 100), config.get("width", 64), config.get("image_size", 32))


class DCGANImageModel(ImageModel):
    """The image-model protocol (``prodgen.models.protocol``) for a DCGAN generator: unconditional, so a
    request is a number of images; knob ``truncation``. Registered as ``dcgan`` (``SPECS`` below)."""

    accepts = "nothing"
    blends = True

    def __init__(self, network: Generator, name: str = "dcgan", info: dict | None = None):
        super().__init__(network, name, info)
        self.image_size = network.image_size

    @property
    def knobs(self) -> dict:
        return {"truncation": TRUNCATION}

    def _latents(self, n: int, generator: torch.Generator, truncation=None) -> dict:
        return {"z": noise(n, self.network.z_dim, generator, truncation)}  # n x z_dim

    def _decode(self, latents: dict, noise=None, **knobs) -> torch.Tensor:
        z, device = latents["z"], next(self.network.parameters()).device
        return torch.cat([self.network(z[s:s + 500].to(device)).float().cpu() for s in range(0, len(z), 500)])


# ----------------------------------------------------------------------------- the shipped model
# ``prodgen train dcgan``: the whole training split, the DCGAN recipe, 60 epochs (1.2M images).
# The shipped checkpoint was trained with exactly this on one GPU (75 s on an H200); on a 2-core
# CPU the same run takes hours, so ``minutes`` can cap it (None: no cap).
CHECKPOINT_CONFIG = {
    "z_dim": 100, "width": 64, "image_size": 32, "epochs": 60, "minutes": None, "batch_size": 128,
    "lr": 2e-4, "betas": [0.5, 0.999], "loss": "non-saturating", "seed": 0, "train_split": "train",
}


def train_checkpoint(name: str = "dcgan", fast: bool = False, log=print, config: dict | None = None,
                     device: str = "auto", out=None, checkpoint=None, resume: bool = False, **settings) -> dict:
    """Train the shipped DCGAN with ``CHECKPOINT_CONFIG`` (``prodgen train dcgan``) and save it.

    Runs on any device (``"auto"``: a GPU when there is one), and under torchrun on several.
    ``fast=True`` trains a tiny version (to test the pipeline). ``config`` / ``settings`` replace
    entries of the recipe; ``out``, ``checkpoint``, ``resume``: see ``prodgen.models.registry.train``.
    The manifest gets the training time and, when the judge is shipped, FID on judge features and
    the attribute-histogram distance of 2,000 samples; the checkpoint's ``extra`` holds the run's
    history (per-epoch curves, sample grids). The steps they share: ``prodgen.models.recipe``.
    """
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides={**(config or {}), **settings}, device=device,
                        out=out, checkpoint=checkpoint, resume=resume)


def _fit(run) -> Trained:
    from prodgen.engine.train import GANSettings, train_gan

    cfg = run.cfg
    g, d = build_pair(cfg["z_dim"], cfg["width"], cfg["image_size"], seed=cfg["seed"])
    settings = GANSettings(loss=cfg["loss"], lr=cfg["lr"], betas=tuple(cfg["betas"]))
    history = train_gan(g, d, run.train, epochs=cfg["epochs"], batch_size=cfg["batch_size"], settings=settings,
                        max_minutes=cfg["minutes"], seed=cfg["seed"], device=run.device, callbacks=run.callbacks())
    config = {"z_dim": g.z_dim, "width": g.width, "image_size": g.image_size}
    return Trained(g, config, history, extra=compact_history(history))


def _measure(run, trained) -> dict:
    """The run's numbers and, when the judge is shipped, FID and the attribute-histogram distance of 2,000 samples."""
    from prodgen.models import registry

    history, generator = trained.history, trained.model
    metrics = {"epochs_done": history.epochs_done, "images_seen": history.images_seen,
               "minutes": round(history.seconds / 60, 2), "stopped_early": history.stopped_early}
    for key in ("d_real", "d_fake"):
        if history.epochs.get(key):
            metrics[f"final_{key}"] = round(history.epochs[key][-1], 4)
    if registry.available("judge") and generator.image_size == 32:
        from prodgen.metrics import evaluate_generator

        metrics |= evaluate_generator(generator, registry.load("judge"), n=2000)
    if run.log:
        run.log("metrics: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics


RECIPE = Recipe(CHECKPOINT_CONFIG, _fit, _measure, fast={"epochs": 1, "minutes": 1.0})
"""What ``prodgen train dcgan`` does beyond the shared steps of ``prodgen.models.recipe``."""


def compact_history(history, n_images: int = 16, every: int = 10) -> dict:
    """The parts of a training History worth shipping: per-epoch curves, step curves averaged over
    ``every`` steps, and the first ``n_images`` of each epoch's sample grid."""
    def blocks(values):
        t = torch.tensor(values, dtype=torch.float32)
        t = t[: len(t) - len(t) % every] if len(t) >= every else t
        return t.reshape(-1, every).mean(1) if len(t) >= every else t

    return {
        "epochs": {k: torch.tensor(v, dtype=torch.float32) for k, v in history.epochs.items()},
        "steps": {k: blocks(v) for k, v in history.steps.items()},
        "steps_every": every,
        "sample_epochs": torch.tensor([e for e, _ in history.samples], dtype=torch.long),
        "samples": (torch.stack([s[:n_images] for _, s in history.samples]) if history.samples
                    else torch.zeros(0, n_images, 3, 32, 32, dtype=torch.uint8)),
    }


SPECS = (ModelSpec("dcgan", "gan", build, train_checkpoint, DCGANImageModel, lesson=3, recipe=CHECKPOINT_CONFIG,
              summary="unconditional DCGAN: products, no control"),)
