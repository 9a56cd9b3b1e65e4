"""Lesson 10's loss terms on hand-made inputs whose answers are known in closed form: the Wasserstein losses,
the WGAN-GP gradient penalty, the R1 penalty and the mode-seeking term (values and gradients)."""
from __future__ import annotations

import math

import pytest
import torch

from prodgen.engine.losses import (
    d_loss_wasserstein,
    g_loss_wasserstein,
    gradient_penalty,
    mode_seeking_loss,
    r1_penalty,
)


class Linear(torch.nn.Module):
    """D(x) = <w, x> (+ <w_y, x> per request when conditional): its input gradient is w, everywhere."""

    def __init__(self, w, per_request=None):
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.per_request = None if per_request is None else torch.nn.Parameter(per_request.clone())
        self.seen = []

    def forward(self, x, *cond):
        self.seen.append(x.detach().clone())
        score = x.flatten(1) @ self.w.flatten()
        if cond:
            score = score + (x.flatten(1) * self.per_request[cond[0]].flatten(1)).sum(1)
        return score


def _unit(shape, seed):
    v = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


# ----------------------------------------------------------------------------- Wasserstein
def test_wasserstein_losses_values_and_gradients():
    real = torch.tensor([1.0, 3.0], requires_grad=True)
    fake = torch.tensor([0.5, -0.5, 3.0], requires_grad=True)
    loss_d = d_loss_wasserstein(real, fake)
    assert loss_d.item() == pytest.approx(1.0 - 2.0)  # E[D(G(z))] - E[D(x)]
    loss_d.backward()
    assert torch.allclose(real.grad, torch.full((2,), -0.5))  # descent raises the real scores
    assert torch.allclose(fake.grad, torch.full((3,), 1 / 3))  # ... and lowers the fake ones
    fake_g = torch.tensor([0.5, -0.5, 3.0], requires_grad=True)
    loss_g = g_loss_wasserstein(fake_g)
    assert loss_g.item() == pytest.approx(-1.0)
    loss_g.backward()
    assert torch.allclose(fake_g.grad, torch.full((3,), -1 / 3))  # G raises its scores, never saturates
    # unbounded: a critic that scores reals +100 and fakes -100 has loss -200 (hence the Lipschitz constraint)
    assert float(d_loss_wasserstein(torch.full((4,), 100.0), torch.full((4,), -100.0))) == -200.0


# ----------------------------------------------------------------------------- gradient penalty
@pytest.mark.parametrize("norm, want", [(2.0, 1.0), (1.0, 0.0), (0.25, 0.5625)])
def test_gradient_penalty_of_a_linear_critic_is_its_norm_minus_one_squared(norm, want):
    torch.manual_seed(0)
    d = Linear(norm * _unit((3, 4, 4), 1))
    real, fake = torch.randn(16, 3, 4, 4), torch.randn(16, 3, 4, 4)
    gp = gradient_penalty(d, real, fake)
    assert gp.item() == pytest.approx(want, abs=1e-5)  # the gradient is w at every point
    gp.backward()  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(d.w.grad, 2 * (norm - 1) * d.w.detach() / norm, atol=1e-5)


def test_gradient_penalty_sits_on_random_points_between_real_and_fake_images():
    torch.manual_seed(0)
    d = Linear(_unit((3, 4, 4), 2))
    real, fake = torch.randn(256, 3, 4, 4), torch.randn(256, 3, 4, 4)
    gradient_penalty(d, real, fake)
    (x_hat,) = d.seen
    diff = (real - fake).flatten(1)
    e = ((x_hat - fake).flatten(1) * diff).sum(1) / diff.pow(2).sum(1)
    assert torch.allclose(x_hat, e[:, None, None, None] * real + (1 - e[:, None, None, None]) * fake, atol=1e-5)
    assert 0 <= float(e.min()) and float(e.max()) <= 1
    assert float(e.std()) > 0.2 and abs(float(e.mean()) - 0.5) < 0.08  # one e ~ U(0, 1) per image


def test_gradient_penalty_of_a_quadratic_critic_where_real_equals_fake():
    class Quadratic(torch.nn.Module):  # D(x) = a/2 ||x||^2: gradient a x, so the norm depends on where we look
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, x):
            return 0.5 * self.a * x.flatten(1).pow(2).sum(1)

    d = Quadratic()
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    gp = gradient_penalty(d, x, x.clone())  # every interpolate is x itself
    norms = x.flatten(1).norm(dim=1)
    assert gp.item() == pytest.approx(float(((0.5 * norms - 1) ** 2).mean()), rel=1e-5)
    gp.backward()  # d/da mean (a ||x|| - 1)^2 = mean 2 (a ||x|| - 1) ||x||
    assert float(d.a.grad) == pytest.approx(float((2 * (0.5 * norms - 1) * norms).mean()), rel=1e-4)


def test_gradient_penalty_with_a_condition_and_a_tuple_output_trains_d_only():
    w = 0.5 * _unit((3, 4, 4), 4)
    per_request = torch.stack([torch.zeros(3, 4, 4), 1.5 * _unit((3, 4, 4), 5) - w])  # request 1: gradient norm 1.5
    d = Linear(w, per_request)
    labels = torch.tensor([0, 0, 1, 1])
    g_param = torch.nn.Parameter(torch.tensor(1.0))
    fake = g_param * torch.randn(4, 3, 4, 4)
    gp = gradient_penalty(lambda x, y: (d(x, y), None), torch.randn(4, 3, 4, 4), fake, labels)  # AC-GAN style
    assert gp.item() == pytest.approx((0.25 + 0.25) / 2, abs=1e-5)  # (0.5 - 1)^2 and (1.5 - 1)^2
    gp.backward()
    assert g_param.grad is None  # the images are detached: the penalty does not train G
    assert d.w.grad is not None and d.per_request.grad is not None


# ----------------------------------------------------------------------------- R1
def test_r1_penalty_of_a_quadratic_discriminator_values_and_gradients():
    a = torch.nn.Parameter(torch.tensor(0.3))
    b = torch.nn.Parameter(0.2 * _unit((3, 4, 4), 6))
    real = torch.randn(10, 3, 4, 4, generator=torch.Generator().manual_seed(7)).requires_grad_(True)
    logits = 0.5 * a * real.flatten(1).pow(2).sum(1) + real.flatten(1) @ b.flatten()  # gradient a x + b
    r1 = r1_penalty(logits, real)
    grad = a.detach() * real.detach().flatten(1) + b.detach().flatten()
    assert r1.item() == pytest.approx(float(grad.pow(2).sum(1).mean()), rel=1e-5)  # squared norm, not norm
    r1.backward()
    # d/da mean ||a x + b||^2 = mean 2 <a x + b, x>;  d/db = mean 2 (a x + b)
    assert float(a.grad) == pytest.approx(float((2 * (grad * real.detach().flatten(1)).sum(1)).mean()), rel=1e-4)
    assert torch.allclose(b.grad.flatten(), (2 * grad).mean(0), atol=1e-5)


def test_r1_penalty_is_zero_centred():
    real = torch.randn(6, 3, 4, 4).requires_grad_(True)
    flat = 0.0 * real.flatten(1).sum(1) + 2.0  # a discriminator flat around the data
    assert float(r1_penalty(flat, real)) == 0.0
    unit = real.flatten(1) @ _unit((3, 4, 4), 8).flatten()  # gradient norm exactly 1: WGAN-GP's target, not R1's
    assert float(r1_penalty(unit, real)) == pytest.approx(1.0, abs=1e-5)


# ----------------------------------------------------------------------------- mode seeking
def test_mode_seeking_on_hand_made_pairs():
    fake_a = torch.zeros(2, 3, 2, 2)
    fake_b = torch.stack([torch.full((3, 2, 2), 0.5), torch.full((3, 2, 2), 0.1)])  # mean |diff| 0.5 and 0.1
    z_a, z_b = torch.zeros(2, 4), torch.full((2, 4), 2.0)  # mean |diff| 2 for both pairs
    got = mode_seeking_loss(fake_a, fake_b, z_a, z_b)
    want = (1 / (0.5 / 2 + 1e-5) + 1 / (0.1 / 2 + 1e-5)) / 2  # 1 / (0.25 + eps) and 1 / (0.05 + eps)
    assert got.item() == pytest.approx(want, rel=1e-6)
    same = mode_seeking_loss(fake_a, fake_a.clone(), z_a, z_b)  # one look for two noise vectors: the worst
    assert same.item() == pytest.approx(1e5, rel=1e-6)
    assert same.item() > got.item()


def test_mode_seeking_gradient_pushes_the_two_images_apart():
    fake_a = torch.zeros(1, 3, 2, 2, requires_grad=True)
    fake_b = torch.full((1, 3, 2, 2), 0.3, requires_grad=True)
    z_a, z_b = torch.zeros(1, 8), torch.ones(1, 8)
    loss = mode_seeking_loss(fake_a, fake_b, z_a, z_b)
    loss.backward()
    # loss = 1 / (r + eps) with r = mean|b - a| / 1: dloss/db = -1 / (r + eps)^2 / 12 per entry
    expected = -1 / (0.3 + 1e-5) ** 2 / 12
    assert torch.allclose(fake_b.grad, torch.full_like(fake_b, expected), rtol=1e-4)
    assert torch.allclose(fake_a.grad, -fake_b.grad)  # descent moves b up and a down: further apart
    twice_the_noise = mode_seeking_loss(fake_a, fake_b, z_a, 2 * z_b)
    assert twice_the_noise.item() == pytest.approx(2 * loss.item(), rel=1e-3)  # distances relative to the noise's
    assert math.isfinite(loss.item())
