"""Lesson 13's comparison objectives (prodgen.engine.losses): eps prediction, min-SNR weighting, EDM's
preconditioning, each against its formula; the shipped v-prediction loss is untouched."""
from __future__ import annotations

import math

import pytest
import torch

from prodgen.engine import losses
from prodgen.models.diffusion import UNet, cosine_schedule

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_min_snr_weight_is_min_snr_gamma_over_snr():
    abar = cosine_schedule().float()
    w = losses.min_snr_weight(abar, gamma=5.0)
    snr = abar.double() / (1 - abar.double())
    assert torch.allclose(w.double(), torch.minimum(snr, torch.tensor(5.0)) / snr, atol=1e-6)
    assert float(w.max()) <= 1.0 and float(w[0]) < 1e-3 and float(w[-1]) == 1.0  # low noise down-weighted
    assert float(losses.min_snr_weight(torch.tensor([0.0]))[0]) == 1.0  # SNR = 0: weight 1, not 0/0


class Echo(torch.nn.Module):
    """A 'network' that returns a fixed multiple of its input, with the diffusion schedule as a buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("abar", cosine_schedule().float())

    def forward(self, x, t, labels):
        return 0.5 * x


def test_eps_loss_by_hand_plain_and_min_snr():
    x0 = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = torch.zeros(6, 5, dtype=torch.long)
    model = Echo()
    for gamma in (None, 5.0):
        got = losses.eps_loss(model, x0, labels, min_snr_gamma=gamma, generator=torch.Generator().manual_seed(3))
        gen = torch.Generator().manual_seed(3)  # the same draws by hand
        t = torch.randint(0, 1000, (6,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = model.abar[t][:, None, None, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        per = (0.5 * x_t - noise).pow(2).flatten(1).mean(1)
        snr = model.abar[t] / (1 - model.abar[t])
        weight = torch.ones(6) if gamma is None else torch.minimum(snr, torch.tensor(gamma)) / snr
        assert float(got) == pytest.approx(float((weight * per).mean()), rel=1e-4)


def test_edm_preconditioning_gives_unit_variance_input_and_target():
    """For photos of standard deviation sigma_data the network's input c_in x and its target (x0 - c_skip x) / c_out
    have unit variance at every noise level: what EDM's preconditioning is for."""
    sd = losses.EDM_SIGMA_DATA
    gen = torch.Generator().manual_seed(0)
    x0, n = sd * torch.randn(200_000, generator=gen), torch.randn(200_000, generator=gen)
    for s in (0.01, 0.3, 1.0, 10.0, 80.0):
        sigma = torch.tensor(s)
        c_skip, c_out, c_in, c_noise = losses.edm_precondition(sigma, sd)
        x = x0 + sigma * n
        assert float((c_in * x).std()) == pytest.approx(1.0, abs=0.01)
        assert float(((x0 - c_skip * x) / c_out).std()) == pytest.approx(1.0, abs=0.01)
        assert float(c_skip) == pytest.approx(sd**2 / (s**2 + sd**2))
        assert float(c_noise) == pytest.approx(math.log(s) / 4)
    sigmas = losses.edm_sigma(50_000, generator=gen)
    assert float(sigmas.log().mean()) == pytest.approx(-1.2, abs=0.03) and float(sigmas.log().std()) == pytest.approx(
        1.2, abs=0.03)


def test_edm_loss_at_init_and_the_denoiser():
    """A zero network (as the U-Net's zero-initialised head) gives D(x) = c_skip x and an EDM loss of E[target^2],
    which is 1 for photos of standard deviation sigma_data; by hand with the same draws."""
    sd = losses.EDM_SIGMA_DATA
    zero = lambda x, c, labels: torch.zeros_like(x)  # noqa: E731
    x0 = sd * torch.randn(512, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(512, 5, dtype=torch.long)
    assert float(losses.edm_loss(zero, x0, labels, generator=torch.Generator().manual_seed(2))) == pytest.approx(
        1.0, abs=0.03)
    net = UNet(width=8)  # its head starts at zero
    with torch.no_grad():
        assert float(losses.edm_loss(net, x0[:16], labels[:16])) == pytest.approx(1.0, abs=0.3)
    x, sigma = x0[:4] + 2.0 * torch.randn(4, 3, 8, 8), torch.full((4,), 2.0)
    assert torch.allclose(losses.edm_denoise(zero, x, sigma, labels[:4]), sd**2 / (4 + sd**2) * x)
    gen = torch.Generator().manual_seed(2)
    s = (-1.2 + 1.2 * torch.randn(4, generator=gen)).exp()
    noise = torch.randn(4, 3, 8, 8, generator=gen)
    half = lambda x, c, labels: 0.5 * x  # noqa: E731
    c_skip, c_out, c_in, _ = (c[:, None, None, None] for c in losses.edm_precondition(s))
    xs = x0[:4] + s[:, None, None, None] * noise
    by_hand = (0.5 * c_in * xs - (x0[:4] - c_skip * xs) / c_out).pow(2).mean()
    got = losses.edm_loss(half, x0[:4], labels[:4], generator=torch.Generator().manual_seed(2))
    assert float(got) == pytest.approx(float(by_hand), rel=1e-5)
