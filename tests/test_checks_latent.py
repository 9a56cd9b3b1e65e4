"""Lesson 09's exercise checks on right, wrong and unfinished answers: one line, never an exception."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from prodgen.checks import latent as checks
from prodgen.models.protocol import noise

from check_helpers import not_done as _not_done
from check_helpers import run_check as _run

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py: small fits, fast on a busy machine


def slerp(z0, z1, t):
    omega = torch.arccos((z0 @ z1) / (z0.norm() * z1.norm()))
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def lerp(z0, z1, t):
    return (1 - t)[:, None] * z0 + t[:, None] * z1


def slerp_unit(z0, z1, t):  # normalises the ends: right arc, wrong norms
    return slerp(z0 / z0.norm(), z1 / z1.norm(), t)


def logistic(z, has):
    w = torch.zeros(z.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(300):
        loss = F.binary_cross_entropy_with_logits(z @ w + b, has.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (w / w.norm()).detach()


@pytest.mark.parametrize("answer, ok, says", [
    (slerp, True, "[PASS]"), (lerp, False, "straight line"), (slerp_unit, False, "t = 0 should give z0"),
    (_not_done, False, "not done yet"), (lambda z0, z1, t: z0, False, "shape"),
])
def test_check_slerp(answer, ok, says, capsys):
    got, out = _run(checks.check_slerp, answer, capsys)
    assert got is ok and says in out


@pytest.mark.parametrize("answer, ok, says", [
    (lambda n, d, t, g: noise(n, d, g, t), True, "[PASS]"),
    (lambda n, d, t, g: torch.randn(n, d, generator=g).clamp(-t, t), False, "clamping"),
    (lambda n, d, t, g: (torch.rand(n, d, generator=g) * 2 - 1) * t, False, "uniform noise"),
    (lambda n, d, t, g: torch.randn(n, d, generator=g), False, "|z| <= 1.5"),
    (lambda n, d, t, g: noise(n, d, torch.Generator().manual_seed(int(torch.randint(0, 99, (1,)))), t), False,
     "same seed"),
    (_not_done, False, "not done yet"),
])
def test_check_truncated_noise(answer, ok, says, capsys):
    got, out = _run(checks.check_truncated_noise, answer, capsys)
    assert got is ok and says in out


@pytest.mark.parametrize("answer, ok, says", [
    (logistic, True, "[PASS]"),
    (lambda z, has: (z[has].mean(0) - z[~has].mean(0)) / (z[has].mean(0) - z[~has].mean(0)).norm(), True, "[PASS]"),
    (lambda z, has: -logistic(z, has), False, "points away"),
    (lambda z, has: z[has].mean(0) - z[~has].mean(0), False, "unit vector"),
    (lambda z, has: F.normalize(torch.randn(z.shape[1]), dim=0), False, "cosine"),
    (_not_done, False, "not done yet"),
])
def test_check_attribute_direction(answer, ok, says, capsys):
    got, out = _run(checks.check_attribute_direction, answer, capsys)
    assert got is ok and says in out
