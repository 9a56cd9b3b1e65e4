"""The training objectives: GAN losses (lessons 03, 05, 07, 10) and the VAE's negative ELBO (lessons 04, 06).

The engine (``prodgen.train``) owns them, below the models: a model may import a loss, the engine never
imports a model, so the dependencies point one way (models -> engine -> basics).

GAN losses take the discriminator's **logits** (before the sigmoid) and use ``softplus``, the
numerically safe way to write ``-log(sigmoid(.))``. With ``D(x) = sigmoid(logit)``:

- ``-log D(x)      = softplus(-logit)``
- ``-log(1 - D(x)) = softplus(logit)``

:data:`GAN_LOSSES` names the pairs ``(d_loss, g_loss)`` that ``train_gan(loss=name)`` accepts.
The VAE loss is the negative ELBO with a Gaussian decoder ``p(x|z) = N(x_hat, sigma^2 I)``
(:data:`SIGMA`) and a weight ``beta`` on the KL term.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["d_loss_bce", "g_loss_saturating", "g_loss_non_saturating", "d_loss_hinge", "g_loss_hinge", "GAN_LOSSES",
           "SIGMA", "IMAGE_PIXELS", "gaussian_kl", "vae_loss", "recon_constant"]


# ----------------------------------------------------------------------------- GANs
def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator: maximise E[log D(x)] + E[log(1 - D(G(z)))], i.e. minimise its negative."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator, the min-max form: minimise E[log(1 - D(G(z)))] (weak gradients when D wins)."""
    return -F.softplus(fake_logits).mean()


def g_loss_non_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator, the non-saturating form: minimise -E[log D(G(z))] (strong gradients when D wins)."""
    return F.softplus(-fake_logits).mean()


def d_loss_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] on raw scores."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge generator: -E[D(G(z))] (the Wasserstein-style generator loss)."""
    return -fake_logits.mean()


# name -> (discriminator loss, generator loss); ``prodgen.train.train_gan(loss=name)`` picks one.
GAN_LOSSES = {
    "non-saturating": (d_loss_bce, g_loss_non_saturating),
    "saturating": (d_loss_bce, g_loss_saturating),
    "hinge": (d_loss_hinge, g_loss_hinge),
}


# ----------------------------------------------------------------------------- VAEs
SIGMA = 0.3
"""Standard deviation of the decoder's Gaussian likelihood ``p(x|z) = N(x_hat, SIGMA^2 I)``, in the
units of images scaled to [-1, 1] (0.3 is about 38 of 255 grey levels). Only ``beta * 2 SIGMA^2`` matters
for the optimum, so SIGMA is the same knob as beta. In 40-epoch runs (z_dim 32) the reconstruction error
barely changed from 0.1 to 0.3 (MSE 0.0144 -> 0.0148) while the code got a third cheaper (KL 115 -> 73 nats);
0.5 and 0.7 did not make prior samples visibly better. Hence 0.3."""

IMAGE_PIXELS = 3 * 32 * 32  # D, the number of numbers in one image


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, sigma^2) || N(0, 1))`` for every entry (same shape as ``mu``), in nats.

    Closed form: ``0.5 * (mu^2 + sigma^2 - 1 - log sigma^2)``; sum over the last axis for a diagonal Gaussian.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def vae_loss(x: torch.Tensor, output, beta: float = 1.0, sigma: float = SIGMA) -> dict[str, torch.Tensor]:
    """The negative ELBO with a weight ``beta`` on the KL term, per image (mean over the batch), in nats.

    ``output`` is the model's ``(x_hat, mu, logvar)``. With the likelihood ``p(x|z) = N(x_hat, sigma^2 I)``,
    ``-log p(x|z) = ||x - x_hat||^2 / (2 sigma^2) + D/2 * log(2 pi sigma^2)``; ``recon`` is the first term
    (the constant, :func:`recon_constant`, has no gradient and is left out). Returns
    ``{"loss": recon + beta * kl, "recon": ..., "kl": ...}``.
    """
    x_hat, mu, logvar = output
    x_hat, mu, logvar = x_hat.float(), mu.float(), logvar.float()  # sums in fp32 even under autocast
    n = x.shape[0]
    recon = (x.float() - x_hat).pow(2).reshape(n, -1).sum(1).div(2 * sigma**2).mean()
    kl = gaussian_kl(mu, logvar).reshape(n, -1).sum(1).mean()
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def recon_constant(sigma: float = SIGMA, pixels: int = IMAGE_PIXELS) -> float:
    """The constant ``D/2 * log(2 pi sigma^2)`` that ``recon`` leaves out of ``-log p(x|z)``."""
    return 0.5 * pixels * math.log(2 * math.pi * sigma**2)
