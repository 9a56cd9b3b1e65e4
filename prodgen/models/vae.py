"""The variational autoencoder (lesson 04), readable top to bottom.

An **encoder** maps a 32x32 product photo to a Gaussian over a ``z_dim``-dimensional latent
code, ``q(z|x) = N(mu, diag(exp(logvar)))``; a **decoder** maps a code back to an image, the
mean of ``p(x|z) = N(x_hat, SIGMA^2 I)``. Training maximises the ELBO; ``prodgen.engine.losses.vae_loss`` is its
negative (up to a constant), with a ``beta`` weight on the KL term.

Pieces used elsewhere:

- :class:`Encoder` / :class:`Decoder`: 32x32 conv nets; ``in_channels`` and ``z_dim`` let the
  conditional VAE of lesson 06 feed a condition in beside the image or the code.
- :func:`reparameterize`: the lesson's first exercise, in its reference form. The loss (the other two
  exercises, ``gaussian_kl`` and ``vae_loss``, and the likelihood's ``SIGMA``) lives in
  ``prodgen.engine.losses``, which the training engine owns (``train_vae`` uses ``vae_loss`` by default).
- :func:`build` / :func:`train_checkpoint`: the shipped checkpoint ``vae`` (``prodgen train vae``).
"""
from __future__ import annotations

import torch
from torch import nn

from prodgen.engine.losses import SIGMA, gaussian_kl, vae_loss
from prodgen.models.protocol import TEMPERATURE, ImageModel, noise
from prodgen.models.recipe import Recipe, Trained
from prodgen.models.registry import ModelSpec

__all__ = ["Encoder", "Decoder", "VAE", "reparameterize",
           "evaluate", "kl_per_dim", "traverse", "CodeMixture", "build", "VAEImageModel", "CHECKPOINT_CONFIG",
           "train_checkpoint"]


# --------------------------------------------------------------------------- building blocks
def _down(c_in: int, c_out: int) -> nn.Sequential:
    """Halve the resolution: a 4x4 convolution with stride 2, batch norm, leaky ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False),  # S x S -> S/2 x S/2
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """Double the resolution: a 4x4 transposed convolution with stride 2, batch norm, ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),  # S x S -> 2S x 2S
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """``x`` (N x in_channels x 32 x 32, in [-1, 1]) -> ``(mu, logvar)``, each N x z_dim."""

    def __init__(self, z_dim: int = 16, width: int = 32, in_channels: int = 3):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _down(in_channels, w),  # 32x32 -> 16x16, w channels
            _down(w, 2 * w),  # 16x16 -> 8x8, 2w channels
            _down(2 * w, 4 * w),  # 8x8 -> 4x4, 4w channels
            nn.Flatten(),  # N x (4w * 4 * 4)
        )
        self.mu = nn.Linear(4 * w * 16, z_dim)  # N x z_dim
        self.logvar = nn.Linear(4 * w * 16, z_dim)  # N x z_dim, log sigma^2 (any real number is valid)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)  # N x 16w
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """``z`` (N x z_dim) -> image mean ``x_hat`` (N x out_channels x 32 x 32, in [-1, 1])."""

    def __init__(self, z_dim: int = 16, width: int = 32, out_channels: int = 3):
        super().__init__()
        w = width
        self.w = w
        self.project = nn.Sequential(nn.Linear(z_dim, 4 * w * 16, bias=False), nn.BatchNorm1d(4 * w * 16),
                                     nn.ReLU(inplace=True))  # N x 16w
        self.net = nn.Sequential(
            _up(4 * w, 2 * w),  # 4x4 -> 8x8, 2w channels
            _up(2 * w, w),  # 8x8 -> 16x16, w channels
            nn.ConvTranspose2d(w, out_channels, 4, stride=2, padding=1),  # 16x16 -> 32x32, 3 channels
            nn.Tanh(),  # pixel means in (-1, 1), like the data
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, 4 * self.w, 4, 4)  # N x 4w x 4 x 4
        return self.net(h)  # N x 3 x 32 x 32


# --------------------------------------------------------------------------- the reparameterisation
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``, differentiable in ``mu`` and ``logvar``."""
    device = generator.device if generator is not None else mu.device  # a generator draws on its own device
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=device).to(mu.device)  # N x z_dim
    return mu + torch.exp(0.5 * logvar) * eps


# --------------------------------------------------------------------------- the model
class VAE(nn.Module):
    """Encoder + reparameterisation + decoder for 32x32 product photos.

    ``model(x) -> (x_hat, mu, logvar)``; ``model.sample(n)`` draws new images from the prior.
    """

    def __init__(self, z_dim: int = 16, width: int = 32):
        super().__init__()
        self.z_dim, self.width = z_dim, width
        self.encoder = Encoder(z_dim, width)
        self.decoder = Decoder(z_dim, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)  # N x z_dim each
        z = reparameterize(mu, logvar)  # N x z_dim, one sample per image
        return self.decoder(z), mu, logvar  # N x 3 x 32 x 32, N x z_dim, N x z_dim

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z|x)`` for a batch of images in [-1, 1] (eval mode)."""
        with _eval(self):
            parts = [self.encoder(x[s:s + batch_size].to(self._device())) for s in range(0, len(x), batch_size)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Image means for latent codes ``z`` (N x z_dim) -> N x 3 x 32 x 32 in [-1, 1] (eval mode)."""
        with _eval(self):
            parts = [self.decoder(z[s:s + batch_size].to(self._device())) for s in range(0, len(z), batch_size)]
        return torch.cat(parts)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: the model's best guess of ``x`` (no sampling noise)."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new images in [-1, 1]: ``z ~ N(0, I)``, decoded (a seeded ``generator`` makes them repeatable)."""
        device = generator.device if generator is not None else self._device()
        z = torch.randn(n, self.z_dim, generator=generator, device=device)  # n x z_dim
        return self.decode(z.to(self._device()))


class _eval:
    """Context manager: eval mode inside, the previous mode restored after."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


# --------------------------------------------------------------------------- measuring a VAE
@torch.no_grad()
def evaluate(model: VAE, catalog, n: int | None = 1000, beta: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Loss terms on (the first ``n`` products of) a catalog, eval mode, plus the per-pixel MSE of
    reconstructions from the posterior mean (``mse``, in [-1, 1] units)."""
    from prodgen.catalog import normalize

    images = catalog.images if n is None else catalog.images[:n]
    x = normalize(images)
    gen = torch.Generator().manual_seed(seed)
    totals = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "mse": 0.0}
    device = model._device()
    with _eval(model):
        for s in range(0, len(x), 500):
            xb = x[s:s + 500].to(device)
            mu, logvar = model.encoder(xb)
            x_hat = model.decoder(reparameterize(mu, logvar, gen))
            terms = vae_loss(xb, (x_hat, mu, logvar), beta)
            for k in ("loss", "recon", "kl"):
                totals[k] += float(terms[k]) * len(xb)
            totals["mse"] += float((model.decoder(mu) - xb).pow(2).mean()) * len(xb)
    return {k: v / len(x) for k, v in totals.items()}


@torch.no_grad()
def kl_per_dim(model: VAE, catalog, n: int | None = 1000) -> torch.Tensor:
    """Average KL of each latent dimension over the products (``z_dim`` values, nats).

    A dimension whose KL is ~0 carries no information about the image: its posterior equals the
    prior for every input (it has *collapsed*).
    """
    from prodgen.catalog import normalize

    images = catalog.images if n is None else catalog.images[:n]
    mu, logvar = model.encode(normalize(images))
    return gaussian_kl(mu, logvar).mean(0).cpu()


@torch.no_grad()
def traverse(model: VAE, z: torch.Tensor, dims, values) -> torch.Tensor:
    """Decode copies of one code ``z`` (z_dim) with dimension ``d`` set to each of ``values``, for each
    ``d`` in ``dims``: a ``len(dims) * len(values)`` x 3 x 32 x 32 batch, one row per dimension."""
    values = torch.as_tensor(values, dtype=torch.float32)
    codes = z.detach().float().cpu().reshape(1, 1, -1).repeat(len(dims), len(values), 1)  # dims x values x z_dim
    for row, d in enumerate(dims):
        codes[row, :, d] = values
    return model.decode(codes.reshape(-1, z.numel()))


class CodeMixture:
    """A mixture of ``k`` diagonal Gaussians fitted to the codes of real photos (*ex-post density estimation*).

    Prior samples ``z ~ N(0, I)`` can land between the clumps that real photos' codes form, and decode to
    blends of products. Sampling codes from a density fitted to where the codes really are avoids those gaps
    (Ghosh et al., *From Variational to Deterministic Autoencoders*, 2020). Fitted with a few EM steps.
    """

    def __init__(self, means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor):
        self.means, self.variances, self.weights = means, variances, weights  # k x z_dim, k x z_dim, k

    @classmethod
    @torch.no_grad()
    def fit(cls, codes: torch.Tensor, k: int = 64, steps: int = 30, seed: int = 0,
            min_variance: float = 1e-3) -> CodeMixture:
        """Fit to ``codes`` (N x z_dim, e.g. the posterior means of training photos) with ``steps`` EM steps."""
        codes = codes.detach().float().cpu()
        if codes.ndim != 2 or len(codes) < k:
            raise ValueError(f"need at least k={k} codes as an N x z_dim tensor, got shape {tuple(codes.shape)}")
        gen = torch.Generator().manual_seed(seed)
        # k-means++ start: each new mean is a code drawn with probability ~ squared distance to the nearest mean
        first = torch.randint(len(codes), (1,), generator=gen)
        means = codes[first]  # 1 x z_dim, growing to k x z_dim
        nearest = (codes - means[0]).pow(2).sum(1)  # N
        for _ in range(k - 1):
            pick = torch.multinomial(nearest + 1e-12, 1, generator=gen)
            means = torch.cat([means, codes[pick]])
            nearest = torch.minimum(nearest, (codes - codes[pick]).pow(2).sum(1))
        variances = codes.var(0).expand(k, -1).clone()  # k x z_dim
        weights = torch.full((k,), 1.0 / k)
        for _ in range(steps):
            # E step: responsibility of each component for each code, N x k
            log_p = -0.5 * ((codes[:, None] - means) ** 2 / variances + variances.log()).sum(-1) + weights.log()
            resp = torch.softmax(log_p, dim=1)
            # M step: weighted means and variances
            n_k = resp.sum(0) + 1e-8  # k
            means = resp.T @ codes / n_k[:, None]
            variances = (resp.T @ codes.pow(2) / n_k[:, None] - means.pow(2)).clamp(min=min_variance)
            weights = n_k / n_k.sum()
        return cls(means, variances, weights)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes (n x z_dim, on the CPU): pick a component by weight, then draw from its Gaussian."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # n
        noise = torch.randn(n, self.means.shape[1], generator=generator)  # n x z_dim
        return self.means[component] + self.variances[component].sqrt() * noise


# --------------------------------------------------------------------------- the shipped checkpoint
def build(config: dict) -> VAE:
    """Rebuild a VAE from its checkpoint config (``prodgen.models.registry``)."""
    return VAE(config.get("z_dim", 16), config.get("width", 32))


class VAEImageModel(ImageModel):
    """The image-model protocol (``prodgen.models.protocol``) for a VAE: unconditional (a request is a
    number of images), codes drawn from the prior ``N(0, t^2 I)`` with the knob ``temperature`` t and
    decoded. Registered as ``vae`` (``SPECS`` below)."""

    accepts = "nothing"

    @property
    def knobs(self) -> dict:
        return {"temperature": TEMPERATURE}

    def _latents(self, n: int, generator: torch.Generator, temperature: float = 1.0) -> dict:
        return {"z": noise(n, self.network.z_dim, generator) * temperature}  # n x z_dim

    def _decode(self, latents: dict, noise=None, **knobs) -> torch.Tensor:
        return self.network.decode(latents["z"]).float().cpu()


CHECKPOINT_CONFIG = {"z_dim": 16, "width": 32, "beta": 1.0, "sigma": SIGMA, "epochs": 40, "minutes": None,
                     "batch_size": 128, "lr": 2e-3, "seed": 0, "train_split": "train"}
"""How the shipped ``vae`` checkpoint is trained: the whole training split for ``epochs`` epochs (stopping
early after ``minutes`` if set). The shipped model: 40 epochs in 50 s on an H200 GPU. On 2 CPU cores the
loop runs at about 2,000 images/s when nothing else competes for them, so about 7 min (800k images)."""


def train_checkpoint(name: str = "vae", fast: bool = False, log=print, device: str = "auto", out=None,
                     checkpoint=None, resume: bool = False, **overrides) -> dict:
    """Train the shipped VAE (``prodgen train vae``) with ``prodgen.engine.train.train_vae`` and save it with its
    test metrics. ``overrides`` replace entries of :data:`CHECKPOINT_CONFIG` (e.g. ``minutes=10``).
    ``fast=True``: 2,000 products, one epoch (a smoke test; it still overwrites the checkpoint ``name``
    unless ``out`` is given). ``out``, ``checkpoint``, ``resume``: see ``prodgen.models.registry.train``;
    the steps all trainers share: ``prodgen.models.recipe``."""
    from prodgen.models import recipe

    return recipe.train(RECIPE, name, fast=fast, log=log, overrides=overrides, device=device, out=out,
                        checkpoint=checkpoint, resume=resume)


def _check(run) -> None:
    if run.cfg["sigma"] != SIGMA:
        raise ValueError(f"sigma is fixed at {SIGMA} (vae_loss's default); change SIGMA to train with another")


def _fit(run) -> Trained:
    from prodgen.engine.train import train_vae

    cfg = run.cfg
    torch.manual_seed(cfg["seed"])  # the initial weights
    model = VAE(cfg["z_dim"], cfg["width"])
    history = train_vae(model, run.train, lr=cfg["lr"], beta=cfg["beta"], **run.engine())
    return Trained(model, {"z_dim": model.z_dim, "width": model.width, "sigma": SIGMA}, history)


def _measure(run, trained) -> dict:
    """The test split's loss terms and the number of active dimensions (KL above 0.1 nats)."""
    from prodgen.catalog import load_catalog

    model = trained.model
    test = load_catalog("test", progress=False)
    metrics = {f"test_{k}": round(v, 4) for k, v in evaluate(model, test, n=None, beta=run.cfg["beta"]).items()}
    metrics["active_dims"] = int((kl_per_dim(model, test, n=None) > 0.1).sum())  # dimensions above 0.1 nats
    if run.log:
        run.log("metrics: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics


RECIPE = Recipe(CHECKPOINT_CONFIG, _fit, _measure, fast_products=2000, prepare=_check)
"""What ``prodgen train vae`` does beyond the shared steps of ``prodgen.models.recipe``."""


SPECS = (ModelSpec("vae", "vae", build, train_checkpoint, VAEImageModel, lesson=4, recipe=CHECKPOINT_CONFIG,
              summary="unconditional VAE: blurry products, a smooth latent space"),)
