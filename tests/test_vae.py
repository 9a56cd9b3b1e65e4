"""The VAE of lesson 04: shapes, the three formulas, beta, and the shipped checkpoint."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from prodgen.engine.losses import SIGMA, gaussian_kl, recon_constant, vae_loss
from prodgen.models import registry
from prodgen.models.vae import VAE, CodeMixture, Decoder, Encoder, build, evaluate, kl_per_dim, reparameterize, traverse


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return VAE(z_dim=6, width=8)


# --------------------------------------------------------------------------- shapes
def test_forward_shapes_and_range(tiny):
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    x_hat, mu, logvar = tiny(x)
    assert x_hat.shape == (4, 3, 32, 32) and mu.shape == (4, 6) and logvar.shape == (4, 6)
    assert x_hat.min() >= -1 and x_hat.max() <= 1
    x_hat_cl, _, _ = tiny(x.contiguous(memory_format=torch.channels_last))
    assert x_hat_cl.shape == (4, 3, 32, 32)


def test_encoder_and_decoder_take_extra_channels_and_codes():
    # lesson 06 feeds a condition beside the image (extra channels) or the code (a longer z)
    mu, logvar = Encoder(z_dim=5, width=8, in_channels=7)(torch.zeros(2, 7, 32, 32))
    assert mu.shape == logvar.shape == (2, 5)
    assert Decoder(z_dim=5 + 9, width=8)(torch.zeros(2, 14)).shape == (2, 3, 32, 32)


def test_sample_is_repeatable_and_keeps_the_mode(tiny):
    tiny.train()
    a = tiny.sample(5, generator=torch.Generator().manual_seed(3))
    b = tiny.sample(5, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, 3, 32, 32) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1 and not a.requires_grad
    assert tiny.training, "sample() must restore training mode"
    assert tiny.reconstruct(torch.zeros(3, 3, 32, 32)).shape == (3, 3, 32, 32)


def test_traverse_and_diagnostics(tiny):
    z = torch.zeros(6)
    strip = traverse(tiny, z, dims=[0, 4], values=torch.linspace(-2, 2, 5))
    assert strip.shape == (10, 3, 32, 32)

    class _Catalog:  # the two fields evaluate / kl_per_dim read
        images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)

    kl = kl_per_dim(tiny, _Catalog(), n=None)
    assert kl.shape == (6,) and (kl >= 0).all()
    metrics = evaluate(tiny, _Catalog(), n=10)
    assert set(metrics) == {"loss", "recon", "kl", "mse"}
    assert metrics["loss"] == pytest.approx(metrics["recon"] + metrics["kl"], rel=1e-5)


def test_build_rebuilds_the_architecture(tiny):
    clone = build({"z_dim": 6, "width": 8})
    clone.load_state_dict(tiny.state_dict())
    assert clone.z_dim == 6


# --------------------------------------------------------------------------- reparameterisation
def test_reparameterize_statistics_and_gradient():
    n = 50_000
    mu = torch.tensor([3.0, -1.0, 0.0]).repeat(n, 1).requires_grad_()
    logvar = torch.tensor([math.log(0.01), math.log(9.0), 0.0]).repeat(n, 1).requires_grad_()
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), torch.tensor([3.0, -1.0, 0.0]), atol=0.04)
    assert torch.allclose(z.std(0), torch.tensor([0.1, 3.0, 1.0]), rtol=0.02)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))  # dz/dmu = 1
    eps = (z - mu) / torch.exp(0.5 * logvar)  # dz/dlogvar = 0.5 * sigma * eps
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar) * eps, atol=1e-5)


def test_reparameterize_is_repeatable_with_a_generator():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    a = reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    b = reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, reparameterize(mu, logvar))


# --------------------------------------------------------------------------- KL
@pytest.mark.parametrize("shape", [(1,), (7,), (4, 5), (2, 3, 8)])
def test_gaussian_kl_matches_torch_distributions(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    mu = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    logvar = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    truth = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    ours = gaussian_kl(mu, logvar)
    assert ours.shape == truth.shape
    assert torch.allclose(ours, truth, rtol=1e-10, atol=1e-10)
    assert (ours >= 0).all()


def test_gaussian_kl_is_zero_only_at_the_prior():
    assert gaussian_kl(torch.zeros(3), torch.zeros(3)).abs().max() == 0
    assert gaussian_kl(torch.tensor([2.0]), torch.tensor([0.0])).item() == pytest.approx(2.0)
    wide = gaussian_kl(torch.tensor([0.0]), torch.tensor([math.log(4.0)])).item()
    assert wide == pytest.approx(0.5 * (3 - math.log(4)))


# --------------------------------------------------------------------------- the loss
def _hand_case():
    x = torch.zeros(2, 3, 32, 32)
    x_hat = torch.cat([torch.full((1, 3, 32, 32), 0.1), torch.full((1, 3, 32, 32), -0.2)]).requires_grad_()
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).requires_grad_()
    logvar = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]]).requires_grad_()
    return x, (x_hat, mu, logvar)


def test_vae_loss_on_hand_computed_values():
    x, out = _hand_case()
    terms = vae_loss(x, out)
    d = 3 * 32 * 32
    recon = (d * 0.01 + d * 0.04) / (2 * SIGMA**2) / 2  # squared errors 0.01 and 0.04 per number
    kl = (0.5 * 1.0 + 0.5 * (4 - 1 - math.log(4))) / 2
    assert terms["recon"].item() == pytest.approx(recon, rel=1e-5)
    assert terms["kl"].item() == pytest.approx(kl, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(recon + kl, rel=1e-5)
    assert all(t.dim() == 0 for t in terms.values())
    assert recon_constant() == pytest.approx(0.5 * d * math.log(2 * math.pi * SIGMA**2))


def test_beta_weights_only_the_kl():
    x, out = _hand_case()
    base = vae_loss(x, out, beta=1.0)
    for beta in (0.0, 0.25, 4.0):
        terms = vae_loss(x, out, beta=beta)
        assert terms["recon"] == base["recon"] and terms["kl"] == base["kl"]
        assert terms["loss"].item() == pytest.approx(base["recon"].item() + beta * base["kl"].item(), rel=1e-6)
    # the gradient reaching mu is beta times the KL's gradient, mu itself
    (grad,) = torch.autograd.grad(vae_loss(x, out, beta=4.0)["loss"], out[1])
    assert torch.allclose(grad, 4.0 * out[1].detach() / 2)  # d(mean over 2 images of mu^2/2)/dmu = mu / 2


def test_vae_loss_is_fp32_under_bf16():
    x, (x_hat, mu, logvar) = _hand_case()
    terms = vae_loss(x, (x_hat.bfloat16(), mu.bfloat16(), logvar.bfloat16()))
    assert all(t.dtype == torch.float32 for t in terms.values())


def test_a_larger_beta_trades_reconstruction_for_a_smaller_kl():
    # a toy VAE: 2-d codes, a fixed linear decoder, and each example's posterior (mu, logvar) as free parameters
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(2, 10, generator=gen) * 0.1
    x = torch.randn(16, 2, generator=gen) @ w
    terms = {}
    for beta in (0.1, 10.0):
        mu, logvar = torch.zeros(16, 2, requires_grad=True), torch.zeros(16, 2, requires_grad=True)
        opt = torch.optim.Adam([mu, logvar], 0.05)
        for _ in range(200):
            terms[beta] = vae_loss(x, (reparameterize(mu, logvar, gen) @ w, mu, logvar), beta=beta)
            opt.zero_grad()
            terms[beta]["loss"].backward()
            opt.step()
    assert terms[10.0]["kl"] < terms[0.1]["kl"] / 2
    assert terms[10.0]["recon"] > terms[0.1]["recon"]


# --------------------------------------------------------------------------- sampling where the codes are
def test_code_mixture_finds_clumps_and_samples_from_them():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    codes = centres[torch.arange(600) % 3] + 0.1 * torch.randn(600, 2, generator=gen)
    mixture = CodeMixture.fit(codes, k=3, steps=50, seed=1)
    found = sorted(mixture.means.tolist())
    assert torch.allclose(torch.tensor(found), torch.tensor(sorted(centres.tolist())), atol=0.1)
    assert torch.allclose(mixture.weights, torch.full((3,), 1 / 3), atol=0.02)
    z = mixture.sample(300, generator=torch.Generator().manual_seed(2))
    assert z.shape == (300, 2)
    assert (z[:, None] - centres).norm(dim=-1).min(1).values.max() < 1.0  # every sample near a clump
    assert torch.equal(z, mixture.sample(300, generator=torch.Generator().manual_seed(2)))
    with pytest.raises(ValueError, match="at least k"):
        CodeMixture.fit(codes[:2], k=3)


# --------------------------------------------------------------------------- the shipped checkpoint
def test_shipped_checkpoint_reconstructs_better_than_a_constant_image():
    from prodgen.catalog import load_catalog, normalize

    assert registry.available("vae"), "data/checkpoints/vae.pt is missing or does not match the manifest"
    model = registry.load("vae")
    assert isinstance(model, VAE) and not model.training
    x = normalize(load_catalog("test", n=256, progress=False).images)
    best_constant = (x - x.mean(0, keepdim=True)).pow(2).mean()  # the best single image for all of them
    mse = (model.reconstruct(x) - x).pow(2).mean()
    assert mse < 0.25 * best_constant, f"reconstruction MSE {mse:.4f} vs a constant image's {best_constant:.4f}"
    samples = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (8, 3, 32, 32) and samples.std() > 0.05
