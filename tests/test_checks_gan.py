"""Lesson 03's exercise checks on right, wrong and unfinished answers: one line, never an exception."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from prodgen import checks
from prodgen.engine.losses import d_loss_bce, g_loss_non_saturating

from check_helpers import verdict_tests

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


def _step_right(g, d, opt_g, opt_d, real, z):
    fake = g(z)
    loss_d = d_loss_bce(d(real), d(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = g_loss_non_saturating(d(fake))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g


def _step_mixed_batch(g, d, opt_g, opt_d, real, z):  # one D call on real + fake: batch norm mixes them
    fake = g(z)
    logits = d(torch.cat([real, fake.detach()]))
    loss_d = d_loss_bce(logits[: len(real)], logits[len(real):])
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = g_loss_non_saturating(d(fake))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g


def _step_no_zero_grad(g, d, opt_g, opt_d, real, z):  # D's gradients pile up from the G step
    fake = g(z)
    loss_d = d_loss_bce(d(real), d(fake.detach()))
    loss_d.backward()
    opt_d.step()
    loss_g = g_loss_non_saturating(d(fake))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g


def _step_saturating(g, d, opt_g, opt_d, real, z):
    fake = g(z)
    loss_d = d_loss_bce(d(real), d(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = -F.softplus(d(fake)).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g


def _step_no_g_update(g, d, opt_g, opt_d, real, z):
    fake = g(z)
    loss_d = d_loss_bce(d(real), d(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    return loss_d, g_loss_non_saturating(d(fake))


CASES = {
    "discriminator_loss": (
        checks.check_discriminator_loss,
        lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(),
        [
            ("sign", lambda r, f: -(F.softplus(-r).mean() + F.softplus(f).mean())),
            ("source formula", lambda r, f: torch.sigmoid(r).mean() + torch.sigmoid(f).mean()),
            ("swapped", lambda r, f: F.softplus(-f).mean() + F.softplus(r).mean()),
            ("sum", lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum()),
            ("underflow", lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())),
            ("per item", lambda r, f: F.softplus(-r) + F.softplus(f)),
            ("float", lambda r, f: 1.386),
        ],
    ),
    "generator_loss": (
        checks.check_generator_loss,
        lambda f: F.softplus(-f).mean(),
        [
            ("saturating", lambda f: -F.softplus(f).mean()),
            ("sign", lambda f: -F.softplus(-f).mean()),
            ("underflow", lambda f: -torch.log(torch.sigmoid(f)).mean()),
            ("wasserstein", lambda f: -f.mean()),
        ],
    ),
    "train_step": (
        checks.check_train_step,
        _step_right,
        [("mixed batch", _step_mixed_batch), ("no zero_grad", _step_no_zero_grad),
         ("saturating", _step_saturating), ("no G update", _step_no_g_update), ("crashes", lambda *a: 1 / 0)],
    ),
}


test_right_answers_pass, test_wrong_answers_fail_with_a_hint, test_unfinished_answer_says_not_done = \
    verdict_tests(CASES)  # tests/check_helpers.py


def test_the_messages_name_the_mistake(capsys):
    assert not checks.check_discriminator_loss(CASES["discriminator_loss"][2][0][1])
    assert "sign is flipped" in capsys.readouterr().out
    assert not checks.check_discriminator_loss(dict(CASES["discriminator_loss"][2])["underflow"])
    assert "softplus" in capsys.readouterr().out
    assert not checks.check_generator_loss(dict(CASES["generator_loss"][2])["saturating"])
    assert "saturating" in capsys.readouterr().out
    assert not checks.check_train_step(_step_mixed_batch)
    assert "batch norm" in capsys.readouterr().out
