"""Lesson 04's exercise checks on right, wrong and unfinished answers."""
from __future__ import annotations

import math

import pytest
import torch

from prodgen import checks
from prodgen.engine.losses import SIGMA, gaussian_kl, vae_loss
from prodgen.models.vae import reparameterize

from check_helpers import not_done as _not_done
from check_helpers import run_check as _run


def _loss_with(recon_of, kl_of, beta_on_recon=False):
    """A loss built from the given per-batch recon and kl rules (to make wrong answers)."""

    def loss(x, output, beta=1.0):
        x_hat, mu, logvar = output
        recon, kl = recon_of(x, x_hat), kl_of(mu, logvar)
        return {"loss": beta * recon + kl if beta_on_recon else recon + beta * kl, "recon": recon, "kl": kl}

    return loss


_RIGHT_RECON = lambda x, x_hat: (x - x_hat).pow(2).flatten(1).sum(1).mean() / (2 * SIGMA**2)  # noqa: E731
_RIGHT_KL = lambda mu, logvar: gaussian_kl(mu, logvar).sum(1).mean()  # noqa: E731

CASES = {
    "reparameterize": (
        checks.check_reparameterize,
        reparameterize,
        [
            lambda mu, logvar: mu + torch.exp(logvar) * torch.randn_like(mu),  # variance used as std
            lambda mu, logvar: mu + logvar * torch.randn_like(mu),  # logvar used as std
            lambda mu, logvar: torch.normal(mu, torch.exp(0.5 * logvar)),  # right numbers, no gradient
            lambda mu, logvar: (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).detach(),
            lambda mu, logvar: mu,  # no noise
            lambda mu, logvar: mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape[1]),  # one eps for all rows
        ],
    ),
    "gaussian_kl": (
        checks.check_gaussian_kl,
        gaussian_kl,
        [
            lambda mu, logvar: (mu**2 + logvar.exp() - 1 - logvar),  # no 1/2
            lambda mu, logvar: 0.5 * (mu**2 + logvar**2 - 1 - torch.log(logvar.abs() + 1e-8)),  # logvar as sigma
            lambda mu, logvar: 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1),  # summed
            lambda mu, logvar: 0.5 * (mu**2 + logvar.exp() - logvar),  # no -1
            lambda mu, logvar: 0.5 * (mu + logvar.exp() - 1 - logvar),  # mu not squared
        ],
    ),
    "vae_loss": (
        checks.check_vae_loss,
        vae_loss,
        [
            _loss_with(lambda x, x_hat: (x - x_hat).pow(2).flatten(1).sum(1).sum() / (2 * SIGMA**2), _RIGHT_KL),
            _loss_with(lambda x, x_hat: (x - x_hat).pow(2).mean(), _RIGHT_KL),  # MSE
            _loss_with(lambda x, x_hat: (x - x_hat).pow(2).flatten(1).sum(1).mean() / SIGMA, _RIGHT_KL),
            _loss_with(_RIGHT_RECON, lambda mu, logvar: gaussian_kl(mu, logvar).mean()),  # KL mean over dims
            _loss_with(_RIGHT_RECON, lambda mu, logvar: gaussian_kl(mu, logvar).sum()),  # KL summed over batch
            _loss_with(_RIGHT_RECON, _RIGHT_KL, beta_on_recon=True),  # beta on the wrong term
            lambda x, output, beta=1.0: {"loss": 1.0, "recon": 1.0, "kl": 0.0},  # plain numbers
            lambda x, output, beta=1.0: (x - output[0]).pow(2).sum(),  # not a dict
        ],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_check_passes_the_reference(name, capsys):
    check, right, _ = CASES[name]
    ok, out = _run(check, right, capsys)
    assert ok and out.startswith("[PASS]"), out


@pytest.mark.parametrize("name", CASES)
def test_check_fails_wrong_answers_with_a_hint(name, capsys):
    check, _, wrongs = CASES[name]
    for k, wrong in enumerate(wrongs):
        ok, out = _run(check, wrong, capsys)
        assert not ok and out.startswith("[FAIL]") and "Hint:" in out, f"wrong answer {k}: {out}"


@pytest.mark.parametrize("name", CASES)
def test_check_says_an_unfinished_exercise_is_not_done(name, capsys):
    check, _, _ = CASES[name]
    ok, out = _run(check, _not_done, capsys)
    assert not ok and "not done yet" in out and "Hint:" in out


def test_reparameterize_check_leaves_the_random_stream_alone(capsys):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    checks.check_reparameterize(reparameterize)
    capsys.readouterr()
    assert torch.equal(torch.rand(3), expected)


def test_specific_messages(capsys):
    _, out = _run(checks.check_reparameterize, CASES["reparameterize"][2][0], capsys)
    assert "standard deviation is exp(0.5 * logvar)" in out
    _, out = _run(checks.check_reparameterize, CASES["reparameterize"][2][2], capsys)
    assert "no gradient" in out
    _, out = _run(checks.check_gaussian_kl, CASES["gaussian_kl"][2][2], capsys)
    assert "one KL per entry" in out
    _, out = _run(checks.check_vae_loss, CASES["vae_loss"][2][1], capsys)
    assert "mean squared error" in out
    _, out = _run(checks.check_vae_loss, CASES["vae_loss"][2][5], capsys)
    assert "beta multiplies only the KL" in out
    assert math.isfinite(SIGMA)
