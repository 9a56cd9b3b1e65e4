"""The training objectives: GAN losses and regularisers (lessons 03, 05, 07, 10) and the VAE's negative ELBO (lessons
04, 06).

The engine (``prodgen.engine.train``) owns them, below the models: a model may import a loss, the engine never
imports a model, so the dependencies point one way (models -> engine -> basics).

GAN losses take the discriminator's **logits** (before the sigmoid) and use ``softplus``, the
numerically safe way to write ``-log(sigmoid(.))``. With ``D(x) = sigmoid(logit)``:

- ``-log D(x)      = softplus(-logit)``
- ``-log(1 - D(x)) = softplus(logit)``

:data:`GAN_LOSSES` names the pairs ``(d_loss, g_loss)`` that ``GANSettings(loss=name)`` (``train_gan``) accepts. Lesson
10's
regularisers: :func:`gradient_penalty` (WGAN-GP), :func:`r1_penalty` and :func:`mode_seeking_loss`.
The diffusion loss (lesson 11) is :func:`diffusion_loss` with the closed-form noising :func:`q_sample`; the
flow-matching loss (lesson 13) is :func:`flow_loss` on the straight path :func:`flow_interpolate`.
Lesson 13's equal-budget comparison adds the other ways to train the same network: :func:`eps_loss`
(noise prediction, optionally min-SNR weighted, :func:`min_snr_weight`) and :func:`edm_loss` (EDM's
preconditioning, :func:`edm_precondition`); its few-step distillation trains on :func:`reflow_loss`.
The VAE loss is the negative ELBO with a Gaussian decoder ``p(x|z) = N(x_hat, sigma^2 I)``
(:data:`SIGMA`) and a weight ``beta`` on the KL term.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["d_loss_bce", "g_loss_saturating", "g_loss_non_saturating", "d_loss_hinge", "g_loss_hinge",
           "d_loss_wasserstein", "g_loss_wasserstein", "GAN_LOSSES", "gradient_penalty", "r1_penalty",
           "mode_seeking_loss",
           "SIGMA", "IMAGE_PIXELS", "gaussian_kl", "vae_loss", "recon_constant", "q_sample", "v_target",
           "diffusion_loss",
           "TIME_SAMPLINGS", "flow_interpolate", "flow_velocity", "flow_time", "flow_loss", "reflow_loss",
           "snr", "min_snr_weight", "eps_loss", "EDM_SIGMA_DATA", "edm_precondition", "edm_sigma", "edm_denoise",
           "edm_loss"]


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


def d_loss_wasserstein(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic: maximise E[D(x)] - E[D(G(z))], i.e. minimise E[D(G(z))] - E[D(x)] (raw scores).

    Only meaningful when D is kept (about) 1-Lipschitz: with :func:`gradient_penalty` (WGAN-GP, lesson 10).
    """
    return fake_logits.mean() - real_logits.mean()


def g_loss_wasserstein(fake_logits: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator: -E[D(G(z))]."""
    return -fake_logits.mean()


# name -> (discriminator loss, generator loss); ``prodgen.engine.train.GANSettings(loss=name)`` picks one.
GAN_LOSSES = {
    "non-saturating": (d_loss_bce, g_loss_non_saturating),
    "saturating": (d_loss_bce, g_loss_saturating),
    "hinge": (d_loss_hinge, g_loss_hinge),
    "wasserstein": (d_loss_wasserstein, g_loss_wasserstein),
}


# ----------------------------------------------------------------------------- GAN regularisers (lesson 10)
def _input_gradient(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d(sum of logits)/d(inputs), kept in the graph (``create_graph``) so a penalty on it can be trained."""
    (grad,) = torch.autograd.grad(logits.float().sum(), inputs, create_graph=True)
    return grad.flatten(1)  # N x (3*32*32): one gradient per image (each logit depends on its own image only)


def gradient_penalty(discriminator, real: torch.Tensor, fake: torch.Tensor, *cond) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al., 2017): ``E[(||grad_x D(x_hat)|| - 1)^2]`` at random points
    ``x_hat = e x + (1 - e) G(z)``, ``e ~ U(0, 1)`` per image.

    A 1-Lipschitz critic has gradient norm at most 1 everywhere, and the optimal one has norm exactly 1
    on the lines between real and generated samples, so the penalty pulls the norm towards 1 there.
    ``cond``: the labels, for a conditional discriminator. Costs one more forward and a double backward.
    """
    e = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    logits = discriminator(x_hat, *cond)
    logits = logits[0] if isinstance(logits, tuple) else logits
    return (_input_gradient(logits, x_hat).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): ``E[||grad_x D(x)||^2]`` on **real** images only.

    ``real`` must have ``requires_grad`` set before ``real_logits = D(real)`` was computed. Flattening D
    around the data stops it from pushing generated samples away from (or past) the real ones, which
    is what makes the plain GAN game oscillate; the weight is ``gamma / 2``.
    """
    return _input_gradient(real_logits, real).pow(2).sum(dim=1).mean()


def mode_seeking_loss(fake_a: torch.Tensor, fake_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                      eps: float = 1e-5) -> torch.Tensor:
    """Mode seeking (Mao et al., 2019): ``1 / (d(G(z_a), G(z_b)) / d(z_a, z_b) + eps)`` with mean absolute
    differences, for pairs generated from the **same** request.

    Minimising it makes two noise vectors give different images: a generator that draws one look per
    request (mode collapse within a condition) pays for it. Returns the mean over the pairs.
    """
    image_dist = (fake_a.float() - fake_b.float()).abs().flatten(1).mean(dim=1)
    noise_dist = (z_a.float() - z_b.float()).abs().flatten(1).mean(dim=1)
    return (1.0 / (image_dist / noise_dist + eps)).mean()


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


# ----------------------------------------------------------------------------- diffusion (lesson 11)
def _per_image(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped N x 1 x 1 x 1 to scale a batch of images, in the images' dtype and device."""
    return values.to(like.device)[t].to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """The forward process in closed form: ``x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise`` for images
    ``x0`` (N x C x H x W), step numbers ``t`` (N,), ``noise ~ N(0, I)`` like ``x0`` and the schedule ``abar``
    (T values). Equal in distribution to applying ``x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps`` t times."""
    a = _per_image(abar, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def v_target(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """What a v-prediction network learns to output: ``v = sqrt(abar_t) * noise - sqrt(1 - abar_t) * x0``."""
    a = _per_image(abar, t, x0)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def diffusion_loss(model, x0: torch.Tensor, labels: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The training loss of a v-prediction diffusion model (``prodgen.models.diffusion.UNet``): draw a step
    ``t`` uniformly and noise ``eps`` per image, noise ``x0`` to ``x_t`` (:func:`q_sample`), and return
    ``mean |v - model(x_t, t, labels)|^2``. The ELBO's "predict the noise" loss ``|eps - eps_hat|^2``
    weighted by ``1 + 1/SNR_t`` (equivalently ``|x0 - x0_hat|^2`` weighted by ``1 + SNR_t``, with
    ``SNR_t = abar_t / (1 - abar_t)``; lesson 11 derives it). ``model.abar`` is the noise schedule."""
    network = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model  # DDP wraps it
    abar = network.abar
    t = torch.randint(0, len(abar), (len(x0),), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_t = q_sample(x0, t, noise, abar)  # keeps x0's memory layout (channels_last on the CPU)
    v_hat = model(x_t, t, labels)
    return (v_hat.float() - v_target(x0, t, noise, abar).float()).pow(2).mean()


# ----------------------------------------------------------------------------- flow matching (lesson 13)
TIME_SAMPLINGS = ("logit-normal", "uniform")
"""How :func:`flow_time` draws the training times ``t`` (``prodgen.models.flow`` says why logit-normal)."""


def _per_row(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Times ``t`` (N,) shaped N x 1 x 1 x 1 to scale a batch of images, in the images' dtype and device."""
    return t.to(like.device, like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def flow_interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight path from a photo to noise: ``x_t = (1 - t) * x0 + t * eps`` for images ``x0`` and noise
    ``eps`` (N x C x H x W) at times ``t`` (N,) in [0, 1]: ``t = 0`` is the photo, ``t = 1`` pure noise."""
    t = _per_row(t, x0)
    return (1 - t) * x0 + t * eps


def flow_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """What a flow network learns to output: the path's velocity ``d x_t / dt = eps - x0`` (the same at every t)."""
    return eps - x0


def flow_time(n: int, sampling: str = "logit-normal", generator: torch.Generator | None = None,
              device=None, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """``n`` training times in (0, 1): ``"logit-normal"``: ``sigmoid(mean + std * z)``, ``z ~ N(0, 1)``
    (most of them near ``sigmoid(mean)``, few at the ends); ``"uniform"``: ``U(0, 1)``."""
    if sampling not in TIME_SAMPLINGS:
        raise ValueError(f"unknown time sampling {sampling!r}; valid: {', '.join(TIME_SAMPLINGS)}")
    if sampling == "uniform":
        return torch.rand(n, generator=generator, device=device)
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device))


def flow_loss(model, x0: torch.Tensor, labels: torch.Tensor, sampling: str = "logit-normal",
              generator: torch.Generator | None = None) -> torch.Tensor:
    """The conditional flow-matching loss (``prodgen.models.flow.FlowUNet``): draw a time ``t``
    (:func:`flow_time`) and noise ``eps`` per image, put the photo on its straight path
    (:func:`flow_interpolate`) and return ``mean |(eps - x0) - model(x_t, t, labels)|^2``."""
    t = flow_time(len(x0), sampling, generator, x0.device)
    eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_t = flow_interpolate(x0, eps, t)  # keeps x0's memory layout (channels_last on the CPU)
    v_hat = model(x_t, t, labels)
    return (v_hat.float() - flow_velocity(x0, eps).float()).pow(2).mean()


def reflow_loss(model, pairs: torch.Tensor, labels: torch.Tensor, sampling: str = "uniform",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Reflow (Liu et al., 2022; lesson 13's few-step model): :func:`flow_loss` on *given* couplings. ``pairs``:
    N x 6 x H x W, a teacher's image (channels 0-2) and the noise its ODE started from (3-5), so each straight
    path is one the teacher already takes and the learned field can be walked in a few large steps. Times drawn
    ``"uniform"`` by default: a 1-4-step sampler evaluates the field at t = 1, 3/4, 1/2, 1/4, so every t matters."""
    x0, eps = pairs[:, :3], pairs[:, 3:]
    t = flow_time(len(x0), sampling, generator, x0.device)
    v_hat = model(flow_interpolate(x0, eps, t), t, labels)
    return (v_hat.float() - flow_velocity(x0, eps).float()).pow(2).mean()


# ----------------------------------------------------------------------------- the equal-budget comparison (lesson 13)
def snr(abar_t: torch.Tensor) -> torch.Tensor:
    """The signal-to-noise ratio ``abar_t / (1 - abar_t)`` of noise level ``abar_t``."""
    return abar_t / (1 - abar_t)


def min_snr_weight(abar_t: torch.Tensor, gamma: float = 5.0) -> torch.Tensor:
    """Min-SNR-gamma weights for the noise-prediction loss (Hang et al., 2023): ``min(SNR_t, gamma) / SNR_t``.

    ``|eps - eps_hat|^2`` equals ``SNR_t |x0 - x0_hat|^2``: at low noise (high SNR) the easy steps dominate the
    gradient. Capping the weight on ``|x0 - x0_hat|^2`` at ``gamma`` turns the tasks of different noise levels
    into less of a tug of war; written as ``min(1, gamma / SNR)`` so that SNR = 0 gives 1, not 0/0."""
    return (gamma / snr(abar_t.double())).clamp(max=1.0).to(abar_t.dtype)


def eps_loss(model, x0: torch.Tensor, labels: torch.Tensor, min_snr_gamma: float | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise prediction (Ho et al., 2020) on ``model.abar``'s schedule: draw a step and noise per image, noise
    ``x0`` (:func:`q_sample`) and return the mean of ``w_t |eps - model(x_t, t, labels)|^2`` per image, with
    ``w_t = 1`` or, given ``min_snr_gamma``, :func:`min_snr_weight`. For lesson 13's comparison; the shipped
    diffusion model trains on :func:`diffusion_loss`."""
    network = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    abar = network.abar
    t = torch.randint(0, len(abar), (len(x0),), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    eps_hat = model(q_sample(x0, t, noise, abar), t, labels)
    per_image = (eps_hat.float() - noise.float()).pow(2).flatten(1).mean(1)  # N
    if min_snr_gamma is not None:
        per_image = per_image * min_snr_weight(abar.to(x0.device)[t].float(), min_snr_gamma)
    return per_image.mean()


EDM_SIGMA_DATA = 0.5
"""EDM's assumed standard deviation of the photos (Karras et al., 2022), in [-1, 1] units."""


def edm_precondition(sigma: torch.Tensor, sigma_data: float = EDM_SIGMA_DATA):
    """EDM's preconditioning at noise levels ``sigma`` (any shape): ``(c_skip, c_out, c_in, c_noise)`` with
    ``c_skip = sd^2 / (sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``, ``c_in = 1 / sqrt(sigma^2 +
    sd^2)``, ``c_noise = ln(sigma) / 4``. The denoiser is ``D(x) = c_skip x + c_out F(c_in x, c_noise)``: the
    network ``F`` sees a unit-variance input and, for photos of standard deviation ``sd``, learns a unit-variance
    target at every noise level (:func:`edm_loss`)."""
    s2 = sigma**2 + sigma_data**2
    return sigma_data**2 / s2, sigma * sigma_data / s2.sqrt(), 1 / s2.sqrt(), sigma.log() / 4


def edm_sigma(n: int, p_mean: float = -1.2, p_std: float = 1.2, generator: torch.Generator | None = None,
              device=None) -> torch.Tensor:
    """``n`` training noise levels, log-normal: ``sigma = exp(p_mean + p_std z)``, ``z ~ N(0, 1)`` (EDM's defaults)."""
    return (p_mean + p_std * torch.randn(n, generator=generator, device=device)).exp()


def edm_denoise(model, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor,
                sigma_data: float = EDM_SIGMA_DATA) -> torch.Tensor:
    """The preconditioned denoiser ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise, labels)`` for noisy images
    ``x = x0 + sigma n`` (N x C x H x W) at levels ``sigma`` (N,): the predicted photo."""
    c_skip, c_out, c_in, c_noise = edm_precondition(sigma.float(), sigma_data)
    r = lambda c: _per_row(c, x)  # noqa: E731
    return r(c_skip) * x + r(c_out) * model(r(c_in) * x, c_noise, labels).float()


def edm_loss(model, x0: torch.Tensor, labels: torch.Tensor, sigma_data: float = EDM_SIGMA_DATA,
             p_mean: float = -1.2, p_std: float = 1.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """EDM's training loss (Karras et al., 2022): log-normal ``sigma`` (:func:`edm_sigma`), ``x = x0 + sigma n``,
    and ``|F(c_in x, c_noise) - (x0 - c_skip x) / c_out|^2``: the same as ``lambda(sigma) |D(x) - x0|^2`` with
    EDM's weight ``lambda = 1 / c_out^2``, written on the network's own (unit-variance) target."""
    sigma = edm_sigma(len(x0), p_mean, p_std, generator, x0.device)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    c_skip, c_out, c_in, c_noise = edm_precondition(sigma, sigma_data)  # N each
    r = lambda c: _per_row(c, x0)  # noqa: E731  (N -> N x 1 x 1 x 1)
    x = x0 + r(sigma) * noise
    f = model(r(c_in) * x, c_noise, labels)
    return (f.float() - ((x0 - r(c_skip) * x) / r(c_out)).float()).pow(2).mean()
