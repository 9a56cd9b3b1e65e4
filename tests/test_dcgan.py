"""The DCGAN: shapes, initialisation, the losses on hand-computed values, the shipped checkpoint."""
from __future__ import annotations

import math

import pytest
import torch

from prodgen.engine.losses import (
    GAN_LOSSES,
    d_loss_bce,
    d_loss_hinge,
    g_loss_hinge,
    g_loss_non_saturating,
    g_loss_saturating,
)
from prodgen.models import dcgan, registry
from prodgen.models.dcgan import Discriminator, Generator, build, build_pair

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


@pytest.mark.parametrize("size", [32, 64])
def test_shapes(size):
    g, d = build_pair(z_dim=20, width=8, image_size=size)
    x = g(torch.randn(5, 20))
    assert x.shape == (5, 3, size, size) and x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (5,)
    assert g.z_dim == 20


def test_layer_plan_at_32_px():
    g, d = Generator(width=64), Discriminator(width=64)
    convs_g = [m for m in g.net if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in convs_g] == [(100, 256), (256, 128), (128, 64), (64, 3)]
    convs_d = [m for m in d.net if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs_d] == [(3, 64), (64, 128), (128, 256), (256, 1)]
    assert not isinstance(d.net[1], torch.nn.BatchNorm2d)  # no batch norm on the discriminator's input layer


def test_unsupported_size_is_a_clear_error():
    with pytest.raises(ValueError, match="unsupported image size 48; valid sizes: 32, 64"):
        Generator(image_size=48)


def test_dcgan_initialisation():
    g, _ = build_pair(width=32, seed=0)
    w = g.net[3].weight
    assert abs(float(w.detach().mean())) < 2e-3 and abs(float(w.detach().std()) - 0.02) < 2e-3
    bn = g.net[1]
    assert abs(float(bn.weight.detach().mean()) - 1) < 0.01 and float(bn.bias.detach().abs().max()) == 0
    g2, _ = build_pair(width=32, seed=0)
    assert torch.equal(g.net[0].weight, g2.net[0].weight)


def test_losses_on_hand_computed_values():
    zero = torch.zeros(3)
    assert float(d_loss_bce(zero, zero)) == pytest.approx(2 * math.log(2))  # -log 0.5 - log 0.5
    assert float(g_loss_non_saturating(zero)) == pytest.approx(math.log(2))
    assert float(g_loss_saturating(zero)) == pytest.approx(-math.log(2))
    ln3 = torch.tensor([math.log(3.0)])  # D = sigmoid(ln 3) = 0.75
    assert float(d_loss_bce(ln3, -ln3)) == pytest.approx(-2 * math.log(0.75))
    assert float(g_loss_non_saturating(-ln3)) == pytest.approx(-math.log(0.25))
    assert float(d_loss_hinge(torch.tensor([0.5, 2.0]), torch.tensor([-0.25, -3.0]))) == pytest.approx(0.25 + 0.375)
    assert float(g_loss_hinge(torch.tensor([1.0, -3.0]))) == pytest.approx(1.0)
    assert set(GAN_LOSSES) >= {"non-saturating", "hinge"}


def test_losses_stay_finite_and_non_saturating_keeps_its_gradient():
    sure = torch.tensor([-80.0, -300.0], requires_grad=True)  # D is sure these fakes are fake
    assert math.isfinite(float(d_loss_bce(-sure.detach(), sure.detach())))
    g_loss_non_saturating(sure).backward()
    assert torch.allclose(sure.grad, torch.tensor([-0.5, -0.5]))  # still pushes the fakes
    sure.grad = None
    g_loss_saturating(sure).backward()
    assert float(sure.grad.abs().max()) < 1e-20  # the min-max loss has nothing left to say


def test_build_from_config():
    g = build({"z_dim": 12, "width": 8, "image_size": 64})
    assert isinstance(g, Generator) and g.z_dim == 12 and g(torch.randn(2, 12)).shape == (2, 3, 64, 64)


def test_train_checkpoint_fast_saves_through_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(tmp_path))
    metrics = dcgan.train_checkpoint("dcgan", fast=True, log=None, config={"width": 8})
    entry = registry.manifest()["dcgan"]
    assert entry["config"] == {"z_dim": 100, "width": 8, "image_size": 32}
    assert entry["training"]["fast"] is True and metrics["epochs_done"] == 1
    model, info = registry.load_entry("dcgan")
    assert isinstance(model, Generator) and info["extra"]["samples"].shape[1:] == (16, 3, 32, 32)


def test_the_shipped_checkpoint_loads():
    assert registry.available("dcgan"), "data/checkpoints/dcgan.pt is missing or corrupt"
    g, info = registry.load_entry("dcgan")
    assert isinstance(g, Generator) and not g.training
    with torch.no_grad():
        x = g(torch.randn(4, g.z_dim, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (4, 3, 32, 32) and float(x.std()) > 0.1  # pictures, not a constant
    assert info["training"]["epochs"] == info["metrics"]["epochs_done"]
    assert len(info["extra"]["sample_epochs"]) == info["metrics"]["epochs_done"]
