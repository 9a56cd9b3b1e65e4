"""Checks for lesson 04 (VAEs): the reparameterisation trick, the Gaussian KL, the loss."""
from __future__ import annotations

import math

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_reparameterize", "check_gaussian_kl", "check_vae_loss"]


def _close(a, b, tol: float = 1e-4) -> bool:
    a = a.detach() if hasattr(a, "detach") else a
    return abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))


# ------------------------------------------------------------------ lesson 04
@_check("reparameterise", "sigma = torch.exp(0.5 * logvar); eps = torch.randn_like(mu); return mu + sigma * eps")
def check_reparameterize(reparameterize) -> None:
    """Lesson 04: ``reparameterize(mu, logvar) -> z`` with ``z ~ N(mu, exp(logvar))``, differentiable."""
    torch = _torch()
    n = 20_000
    mu = torch.tensor([2.0, -1.0, 0.0]).repeat(n, 1).requires_grad_()
    logvar = torch.tensor([math.log(0.25), math.log(4.0), 0.0]).repeat(n, 1).requires_grad_()
    with torch.random.fork_rng():  # the check draws its own numbers; the lesson's random stream is untouched
        torch.manual_seed(1234)
        z = reparameterize(mu, logvar)
        z2 = reparameterize(mu, logvar)
    _expect(isinstance(z, torch.Tensor), f"expected a tensor, got {type(z).__name__}")
    _expect(tuple(z.shape) == (n, 3), f"z must have the shape of mu, {(n, 3)}; got {tuple(z.shape)}")
    _expect(not torch.equal(z, z2), "two calls gave the same z: draw fresh noise eps every call")
    mean, std = z.detach().mean(0), z.detach().std(0)
    _expect(bool(torch.allclose(mean, torch.tensor([2.0, -1.0, 0.0]), atol=0.06)),
            f"the samples should average to mu = [2, -1, 0], got {[round(float(v), 2) for v in mean]}")
    if _close(std[0], 0.25, 0.15) and _close(std[1], 4.0, 0.15):
        _expect(False, "the spread is exp(logvar), the variance: the standard deviation is exp(0.5 * logvar)")
    _expect(bool(torch.allclose(std, torch.tensor([0.5, 2.0, 1.0]), rtol=0.05)),
            f"for variances [0.25, 4, 1] the standard deviations should be [0.5, 2, 1], "
            f"got {[round(float(v), 2) for v in std]}")
    _expect(z.requires_grad, "z carries no gradient: compute it from mu and logvar with tensor operations "
            "(torch.normal or .detach() cut the gradient; that is what the trick avoids)")
    dmu, dlogvar = torch.autograd.grad(z[:, :2].sum(), (mu, logvar), allow_unused=True)
    _expect(dmu is not None and float(dmu.abs().sum()) > 0, "no gradient reaches mu: torch.normal and "
            ".detach() cut the gradient; build z = mu + sigma * eps from tensor operations")
    _expect(bool(torch.allclose(dmu[:, :2], torch.ones(n, 2))), "dz/dmu should be 1: z = mu + sigma * eps")
    _expect(dlogvar is not None and float(dlogvar[:, :2].abs().sum()) > 0, "no gradient reaches logvar")


@_check("Gaussian KL", "0.5 * (mu**2 + logvar.exp() - 1 - logvar), one value per entry (no sum)")
def check_gaussian_kl(gaussian_kl) -> None:
    """Lesson 04: ``gaussian_kl(mu, logvar)`` = KL(N(mu, exp(logvar)) || N(0, 1)) per entry."""
    torch = _torch()
    from torch.distributions import Normal, kl_divergence

    zero = gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3))
    _expect(isinstance(zero, torch.Tensor), f"expected a tensor, got {type(zero).__name__}")
    _expect(tuple(zero.shape) == (2, 3), f"return one KL per entry, the shape of mu (2, 3); got {tuple(zero.shape)} "
            "(the loss sums over the latent dimensions later)")
    _expect(bool(torch.allclose(zero, torch.zeros(2, 3), atol=1e-6)),
            "KL(N(0, 1) || N(0, 1)) must be 0; check the -1 and the -log sigma^2 terms")
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 8, generator=gen) * 2
    logvar = torch.randn(64, 8, generator=gen) * 1.5
    ours = gaussian_kl(mu, logvar)
    truth = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    _expect(tuple(ours.shape) == tuple(truth.shape),
            f"expected the shape {tuple(truth.shape)}, got {tuple(ours.shape)}")
    only_mu = gaussian_kl(torch.tensor([2.0]), torch.tensor([0.0]))
    _expect(_close(only_mu, 2.0), f"mu = 2, sigma = 1 should give mu^2 / 2 = 2, got {float(only_mu):.3f}")
    wide = gaussian_kl(torch.tensor([0.0]), torch.tensor([math.log(4.0)]))
    _expect(_close(wide, 0.5 * (4.0 - 1 - math.log(4.0))),
            f"mu = 0, sigma^2 = 4 should give 0.5 * (4 - 1 - log 4) = 0.807, got {float(wide):.3f} "
            "(logvar is log sigma^2: sigma^2 = logvar.exp())")
    err = float((ours - truth).abs().max())
    _expect(err < 1e-4 * max(1.0, float(truth.abs().max())),
            f"differs from torch.distributions.kl_divergence by up to {err:.3g} on random inputs")


@_check("VAE loss", "recon = ((x - x_hat)**2).sum over pixels / (2 * SIGMA**2), kl = gaussian_kl(...).sum over "
        "latent dims; average both over the batch; loss = recon + beta * kl")
def check_vae_loss(vae_loss, sigma: float | None = None) -> None:
    """Lesson 04: ``vae_loss(x, (x_hat, mu, logvar), beta) -> {"loss", "recon", "kl"}``, per-image means,
    with the likelihood's ``sigma`` (default: ``prodgen.engine.losses.SIGMA``)."""
    torch = _torch()
    if sigma is None:
        from prodgen.engine.losses import SIGMA as sigma
    d = 3 * 32 * 32
    x = torch.zeros(2, 3, 32, 32)
    x_hat = torch.cat([torch.full((1, 3, 32, 32), 0.1), torch.full((1, 3, 32, 32), -0.2)]).requires_grad_()
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).requires_grad_()
    logvar = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]]).requires_grad_()
    # by hand: image 0 has squared error 0.01 per number, image 1 has 0.04
    recon = (d * 0.01 + d * 0.04) / (2 * sigma**2) / 2
    kl = (0.5 * 1.0 + 0.5 * (4.0 - 1 - math.log(4.0))) / 2
    out = vae_loss(x, (x_hat, mu, logvar), beta=1.0)
    _expect(isinstance(out, dict), f"return a dict with the keys loss, recon and kl; got {type(out).__name__}")
    missing = {"loss", "recon", "kl"} - set(out)
    _expect(not missing, f"the dict lacks {', '.join(sorted(missing))}")
    for key in ("loss", "recon", "kl"):
        _expect(isinstance(out[key], torch.Tensor) and out[key].numel() == 1,
                f"{key} must be a one-number tensor (a mean over the batch), got "
                f"{tuple(out[key].shape) if isinstance(out[key], torch.Tensor) else type(out[key]).__name__}")
    r, k = float(out["recon"].detach()), float(out["kl"].detach())
    if _close(r, 2 * recon, 1e-3):
        _expect(False, "recon is twice the expected value: average over the batch (don't just sum), and divide by "
                "2 * SIGMA**2, not SIGMA**2")
    if _close(r, recon * 2 * sigma**2 / d, 1e-3):
        _expect(False, "recon looks like the mean squared error; the log-likelihood sums the squared errors over "
                "pixels and divides by 2 * SIGMA**2")
    _expect(_close(r, recon, 1e-3), f"recon should be {recon:.1f} here (squared errors 0.01 and 0.04 per number, "
            f"3072 numbers per image, sigma = {sigma}, averaged over 2 images), got {r:.4g}")
    if _close(k, 2 * kl, 1e-3):
        _expect(False, "kl is twice the expected value: average over the batch, sum over the latent dimensions")
    _expect(_close(k, kl, 1e-3), f"kl should be {kl:.4f} here (per image: sum over latent dims, then average over "
            f"the batch), got {k:.4g}")
    _expect(_close(out["loss"], recon + kl, 1e-3), f"with beta = 1 the loss should be recon + kl = {recon + kl:.2f}, "
            f"got {float(out['loss'].detach()):.4g}")
    out4 = vae_loss(x, (x_hat, mu, logvar), beta=4.0)
    _expect(_close(out4["loss"], recon + 4 * kl, 1e-3),
            f"with beta = 4 the loss should be recon + 4 * kl = {recon + 4 * kl:.2f}, "
            f"got {float(out4['loss'].detach()):.4g} "
            "(beta multiplies only the KL term)")
    _expect(out["loss"].requires_grad, "the loss carries no gradient: don't detach or convert to Python numbers")
    out["loss"].backward()
    _expect(x_hat.grad is not None and mu.grad is not None and logvar.grad is not None,
            "the loss must depend on x_hat, mu and logvar")
