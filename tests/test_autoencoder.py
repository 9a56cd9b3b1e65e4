"""The latent autoencoder (lesson 14): shapes 64x64x3 <-> 16x16x4, the latent scale, a round trip that training
improves, the perceptual term on a judge's features, bad input refused in one line, and the ``ae-64`` spec."""
from __future__ import annotations

import pytest
import torch

from prodgen.catalog import load_catalog, normalize
from prodgen.models import autoencoder, registry
from prodgen.models.autoencoder import AutoEncoder, AutoencoderLoss, Perceptual, latent_scale, psnr
from prodgen.models.judge import Judge

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


@pytest.fixture(scope="module")
def photos():
    """64 real 64 px photos (the validation split's first products)."""
    return load_catalog("val", n=64, size=64, progress=False)


def test_shapes_64x64x3_to_16x16x4_and_back(photos):
    torch.manual_seed(0)
    model = AutoEncoder(width=8)
    x = normalize(photos.images[:3])
    x_hat, mean, logvar = model(x)
    assert x_hat.shape == (3, 3, 64, 64) and mean.shape == logvar.shape == (3, 4, 16, 16)
    z = model.encode(photos.images[:3])  # uint8 in, fp32 scaled latents out
    assert z.shape == (3, 4, 16, 16) and z.dtype == torch.float32
    assert torch.equal(z, model.encode(x))  # uint8 and [-1, 1] photos are the same photos
    y = model.decode(z)
    assert y.shape == (3, 3, 64, 64) and y.min() >= -1 and y.max() <= 1


def test_scaled_latents_have_unit_std(photos):
    torch.manual_seed(0)
    model = AutoEncoder(width=8)
    with torch.no_grad():
        model.encoder.net[-1].weight[:4].mul_(20)  # means (the first 4 channels) far larger than the noise
    raw = model.encode(photos.images, sample=True, generator=torch.Generator().manual_seed(1))
    decoded = model.decode(raw)
    scale = latent_scale(model, photos.images[:32])  # from half of the batch
    assert float(model.scale) == 1.0  # computing it changes nothing
    model.scale.fill_(scale)
    scaled = model.encode(photos.images, sample=True, generator=torch.Generator().manual_seed(1))
    assert abs(float(raw.std()) - 1.0) > 0.2  # the untouched latents are far from unit variance ...
    assert abs(float(scaled.std()) - 1.0) < 0.1  # ... the scaled ones are not
    assert torch.allclose(scaled, raw * scale) and torch.allclose(model.decode(scaled), decoded, atol=1e-4)


def _psnr(model, photos) -> float:
    from prodgen.catalog import denormalize

    return float(psnr(denormalize(model.reconstruct(photos.images)), photos.images).mean())


@pytest.mark.slow  # trains a tiny autoencoder: about 5 s on one thread
def test_training_improves_the_round_trip_and_the_perceptual_term_runs(photos):
    torch.manual_seed(0)
    model = AutoEncoder(width=8, norm="none")  # tiny and without group norm: a few seconds on one thread
    few = photos.subset(range(32))
    before = _psnr(model, few)
    judge = Judge(width=4, resolution=64).eval()  # a tiny untrained judge: exercises the perceptual path
    history = autoencoder.train_autoencoder(model, few, judge=judge, perceptual_weight=0.1, lr=3e-3,
                                            epochs=12, batch_size=16, progress=False, device="cpu")
    assert set(history.epochs) == {"loss", "recon", "kl", "perceptual"}
    assert history.epochs["perceptual"][-1] > 0 and history.epochs["recon"][-1] < history.epochs["recon"][0]
    after = _psnr(model, few)
    assert after > before + 2, (before, after)  # measured: 8.2 -> 11.0 dB
    assert all(p.grad is None and p.requires_grad for p in judge.parameters())  # the judge itself is untouched


def test_the_loss_adds_its_terms():
    x = torch.zeros(2, 3, 64, 64)
    out = (torch.full_like(x, 0.5), torch.ones(2, 4, 16, 16), torch.zeros(2, 4, 16, 16))
    terms = AutoencoderLoss()(x, out, 12288.0)  # a KL weight of 12,288 = the pixels: the KL counts fully
    assert terms["recon"] == pytest.approx(0.5) and terms["kl"] == pytest.approx(0.5 * 1024)
    assert terms["loss"] == pytest.approx(0.5 + 0.5 * 1024) and terms["perceptual"] == 0
    judge = Judge(width=4, resolution=64).eval()
    same = Perceptual(judge)(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert same > 0 and Perceptual(judge)(x + 0.3, x + 0.3) == pytest.approx(0.0, abs=1e-6)


def test_bad_input_is_one_clear_error(photos):
    model = AutoEncoder(width=8)
    with pytest.raises(ValueError, match=r"reads photos N x 3 x 64 x 64 .*got \(2, 3, 32, 32\)"):
        model.encode(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"reads photos N x 3 x 64 x 64"):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match=r"decode reads scaled latents N x 4 x 16 x 16, got \(1, 3, 16, 16\)"):
        model.decode(torch.zeros(1, 3, 16, 16))
    small = load_catalog("val", n=32, progress=False)  # 32 px
    with pytest.raises(ValueError, match="trains on 64 px photos, got a 32 px catalog"):
        autoencoder.train_autoencoder(model, small, perceptual_weight=0.0, epochs=1, batch_size=16, progress=False)
    with pytest.raises(ValueError, match="perceptual_weight > 0 needs the 64 px judge"):
        autoencoder.train_autoencoder(model, photos, perceptual_weight=1.0, epochs=1, batch_size=16, progress=False)


def test_the_spec_says_64_px_and_rebuilds_from_its_config():
    spec = registry.spec("ae-64")
    assert spec.resolution == 64 and spec.family == "autoencoder" and not spec.is_generator
    model = spec.build({"width": 8, "channels": 4})
    assert isinstance(model, AutoEncoder) and model.width == 8 and "scale" in model.state_dict()
