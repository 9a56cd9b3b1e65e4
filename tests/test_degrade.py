"""prodgen/apps/degrade.py: each degradation's operator, and that its projection is the closest consistent photo."""
from __future__ import annotations

import pytest
import torch

from prodgen.apps import degrade


def photos(n=4, size=32, seed=0):
    """Smooth random images in [-1, 1] (the operators know nothing of products)."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size, size, generator=gen) * 2 - 1
    return torch.nn.functional.avg_pool2d(base, 3, 1, 1)  # smooth, photo-like values in [-1, 1]


@pytest.mark.parametrize("task", degrade.TASKS)
def test_each_task_is_deterministic_per_seed_and_damages_the_photo(task):
    x = photos()
    y1, op = degrade.degrade(task, x, seed=3)
    y2, _ = degrade.degrade(task, x, seed=3)
    assert torch.equal(y1, y2) and op.task == task
    assert not torch.allclose(y1 if task != "upscale" else op.enlarge(y1), x, atol=1e-3)


@pytest.mark.parametrize("task", ["deblur", "inpaint", "deblock", "upscale"])
def test_the_clean_photo_is_consistent_and_the_projection_is_idempotent(task):
    x = photos()
    y, op = degrade.degrade(task, x, seed=1)
    assert torch.allclose(op.project(x, y), x, atol=1e-4)  # the truth satisfies its own observation
    z = torch.randn_like(x)
    p = op.project(z, y)
    assert torch.allclose(op.project(p, y), p, atol=1e-4)  # a projection: twice = once
    if task != "deblur":  # exact constraints: the projected photo reproduces the observation
        assert torch.allclose(op.forward(p), y, atol=1e-4)


@pytest.mark.parametrize("task", ["inpaint", "deblock", "upscale"])
def test_the_projection_is_the_closest_consistent_photo(task):
    """Any other consistent photo (the truth, or the truth plus a change the operator cannot see) is farther."""
    x = photos()
    y, op = degrade.degrade(task, x, seed=2)
    z = torch.randn_like(x)
    p = op.project(z, y)
    for other in (x, op.project(x + 0.3 * torch.randn_like(x), y)):
        assert (z - p).pow(2).sum() <= (z - other).pow(2).sum() + 1e-3


def test_operators_do_what_their_names_say():
    x = photos(2)
    noisy = degrade.Noise(0.5).forward(x, torch.Generator().manual_seed(0))
    assert abs(float((noisy - x).std()) - 0.5) < 0.02
    blurred = degrade.Blur(1.5).forward(x)
    assert blurred.std() < x.std() and torch.allclose(blurred.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-5)
    small = degrade.Downsample(4).forward(x)
    assert small.shape == (2, 3, 8, 8) and torch.allclose(small[0, 0, 0, 0], x[0, 0, :4, :4].mean())
    mask = degrade.damage_mask(2, 32, scratches=0, blocks=1, seed=0)
    assert mask.shape == (2, 1, 32, 32) and float(mask[0].sum()) == 64  # one 8 x 8 block
    y = degrade.Mask(mask).forward(x)
    lost = mask.expand_as(x) > 0
    assert torch.all(y[lost] == 1) and torch.equal(y[~lost], x[~lost])
    jpeg = degrade.Blocking(10)
    coef = jpeg.coefficients(jpeg.forward(x))
    assert torch.allclose(coef / jpeg.step, torch.round(coef / jpeg.step), atol=1e-3)  # on the rounding grid
    assert torch.allclose(jpeg.photo(jpeg.coefficients(x)), x, atol=1e-5)  # the DCT is orthonormal
    d = degrade._dct_matrix(8)
    assert torch.allclose(d @ d.T, torch.eye(8), atol=1e-6)


def test_bad_input_says_what_is_valid():
    x = photos(1)
    with pytest.raises(ValueError, match="unknown task 'sharpen'; valid: denoise, deblur, inpaint, deblock, upscale"):
        degrade.degrade("sharpen", x)
    with pytest.raises(ValueError, match="deblur has no setting 'quality'; valid: sigma"):
        degrade.degrade("deblur", x, quality=3)
    with pytest.raises(ValueError, match="factor must be 2, 4 or 8, got 3"):
        degrade.degrade("upscale", x, factor=3)
    with pytest.raises(ValueError, match="quality must be a whole number from 1 to 100"):
        degrade.Blocking(0)
    with pytest.raises(ValueError, match="multiples of 8"):
        degrade.degrade("deblock", torch.zeros(1, 3, 30, 30))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        degrade.degrade("denoise", torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="the mask is"):
        degrade.Mask(torch.zeros(1, 1, 16, 16)).forward(x)


def test_the_flow_restores_consistently_and_deterministically():
    """The shipped flow as the prior: the result satisfies the observation (exact damage), one seed one result."""
    from prodgen.catalog import load_catalog, normalize
    from prodgen.models import registry

    model = registry.load_generator("flow")
    assert model.can_restore and not registry.load_generator("cgan-projection").can_restore
    x = normalize(load_catalog("test", n=4, progress=False).images)
    for task in ("inpaint", "deblock", "upscale", "denoise"):
        y, op = degrade.degrade(task, x, seed=0)
        a = model.restore(y, op, seed=1, steps=4)
        assert a.shape == x.shape and torch.equal(a, model.restore(y, op, seed=1, steps=4))
        if task != "denoise":
            assert float((op.project(a, y) - a).abs().mean()) < 2e-3  # consistent, up to the final clamp to [-1, 1]
            assert not torch.equal(a, model.restore(y, op, seed=2, steps=4))  # another seed, another answer
    with pytest.raises(ValueError, match="cgan-projection cannot restore photos"):
        registry.load_generator("cgan-projection").restore(y, op)
