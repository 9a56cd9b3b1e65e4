"""The diffusion model of lesson 11 (prodgen.models.diffusion, losses.q_sample / diffusion_loss, train_diffusion):
the schedule (closed form vs iterated noising), v <-> (x0, eps), DDIM steps and determinism, guidance (w = 0 is
the unconditional pass, w = 1 the conditional one, both passes batched), inpainting (pixels outside the mask
kept), the protocol's knobs, training on the engine, and `prodgen generate --guidance/--steps` bad input."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from prodgen.engine.losses import diffusion_loss, q_sample, v_target
from prodgen.models import diffusion as dm
from prodgen.models.protocol import Knob

from cli_helpers import in_this_process


@pytest.fixture(scope="module")
def net():
    """A small randomly initialised U-Net (width 8); its zero-initialised output layer is perturbed so the
    predictions depend on the input and the condition."""
    torch.manual_seed(0)
    model = dm.UNet(width=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


# ----------------------------------------------------------------------------- the schedule
def test_cosine_schedule_falls_from_one_to_zero():
    abar = dm.cosine_schedule()
    assert abar.shape == (dm.T,) and abar.dtype == torch.float64
    assert 0.999 < float(abar[0]) <= 1.0 and float(abar[-1]) < 1e-3
    assert bool((abar[1:] < abar[:-1]).all())  # strictly less signal at every step
    betas = 1 - abar[1:] / abar[:-1]
    assert float(betas.max()) <= 0.999 + 1e-12
    lin = dm.linear_schedule()
    assert float(lin[dm.T // 2]) < float(abar[dm.T // 2])  # the linear schedule destroys the image sooner


def test_closed_form_matches_iterated_noising():
    """q(x_t | x0) = N(sqrt(abar_t) x0, (1 - abar_t) I): t single steps x_t = sqrt(1 - beta) x_{t-1} + sqrt(beta) eps
    give the same mean and variance (200,000 samples of one pixel)."""
    abar = dm.cosine_schedule()
    betas = torch.cat([1 - abar[:1], 1 - abar[1:] / abar[:-1]])
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    x = x0.clone()
    for t in range(300):
        x = (1 - betas[t]).sqrt() * x + betas[t].sqrt() * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        if t in (0, 49, 299):
            noise = torch.randn(x.shape, generator=gen, dtype=torch.float64)
            closed = q_sample(x0, torch.full((len(x0),), t), noise, abar)
            assert float(x.mean()) == pytest.approx(math.sqrt(abar[t]) * 0.7, abs=0.01)
            assert float(x.var()) == pytest.approx(float(1 - abar[t]), abs=0.01)
            assert float(closed.mean()) == pytest.approx(float(x.mean()), abs=0.01)
            assert float(closed.var()) == pytest.approx(float(x.var()), abs=0.01)


def test_v_splits_back_into_x0_and_eps():
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1, torch.randn(4, 3, 8, 8, generator=gen)
    abar = dm.cosine_schedule().float()
    for t in (0, 500, 999):
        tt = torch.full((4,), t)
        x_t, v = q_sample(x0, tt, eps, abar), v_target(x0, tt, eps, abar)
        x0_hat, eps_hat = dm.split_v(x_t, v, float(abar[t]))
        assert torch.allclose(x0_hat, x0, atol=1e-4) and torch.allclose(eps_hat, eps, atol=1e-4)


def test_ddim_step_with_the_true_noise_lands_on_the_closed_form():
    """Given the true x0 and eps, a DDIM step (eta = 0) to a lower level is exactly q_sample at that level."""
    abar = dm.cosine_schedule()
    gen = torch.Generator().manual_seed(2)
    x0 = torch.rand(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    eps = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    s = 300
    x_s = dm.ddim_step(x0, eps, float(abar[s]))
    assert torch.allclose(x_s, q_sample(x0, torch.full((2,), s), eps, abar), atol=1e-12)
    with pytest.raises(ValueError, match="eta > 0 needs"):
        dm.ddim_step(x0, eps, float(abar[s]), eta=1.0)


def test_sample_timesteps_are_evenly_spaced_and_checked():
    assert dm.sample_timesteps(1).tolist() == [999]
    ts = dm.sample_timesteps(10)
    assert ts[0] == 999 and ts[-1] == 0 and len(set(ts.tolist())) == 10
    assert len(set(dm.sample_timesteps(1000).tolist())) == 1000
    for bad in (0, 1001, 2.5, True):
        with pytest.raises(ValueError, match="steps must be a whole number"):
            dm.sample_timesteps(bad)


# ----------------------------------------------------------------------------- sampling
def test_same_seed_same_bytes_and_seeds_differ(net):
    model = dm.DiffusionImageModel(net, "tiny")
    requests = [{"category": "mug", "color": "red"}, {"color": "blue"}]
    a = model.generate(requests, seed=3, steps=4)
    b = model.generate(requests, seed=3, steps=4)
    assert a.dtype == torch.uint8 and a.shape == (2, 3, 32, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, model.generate(requests, seed=4, steps=4))
    ddpm = model.generate(requests, seed=3, steps=4, eta=1.0)  # ancestral: its fresh noise is seeded too
    assert torch.equal(ddpm, model.generate(requests, seed=3, steps=4, eta=1.0))
    assert not torch.equal(ddpm, a)


def test_guidance_zero_is_the_unconditional_pass_and_one_the_conditional(net):
    labels = torch.tensor([[0, 1, 2, 3, 0], [5, -1, 0, -1, 2]])
    x_T = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    empty = torch.full_like(labels, -1)
    w0 = dm.sample(net, labels, steps=3, guidance=0.0, x_T=x_T)
    assert torch.equal(w0, dm.sample(net, empty, steps=3, guidance=1.0, x_T=x_T))
    w1 = dm.sample(net, labels, steps=3, guidance=1.0, x_T=x_T)
    assert not torch.equal(w0, w1)  # the condition matters
    # the batched conditional + unconditional pass equals the two passes made separately, mixed by hand
    x, t = x_T, 700
    tt = torch.full((2,), t)
    with torch.no_grad():
        by_hand = dm.guided(net(x, tt, labels), net(x, tt, empty), 3.0)
        batched = dm._predict_v(net, x, t, labels, empty, 3.0)
    assert torch.allclose(batched, by_hand, atol=1e-5)
    assert torch.allclose(dm.guided(torch.ones(2), torch.zeros(2), 0.0), torch.zeros(2))


def test_soft_requests_have_a_soft_unconditional(net):
    from prodgen.models.condition import one_hot

    soft = one_hot(torch.tensor([[1, 2, 0, 1, 3]]))
    uncond = dm._unconditional_like(soft)
    assert uncond.shape == (1, 34) and torch.equal(uncond, one_hot(torch.full((1, 5), -1)))
    out = dm.sample(net, soft, steps=2, guidance=2.0, generator=torch.Generator().manual_seed(0))
    hard = dm.sample(net, torch.tensor([[1, 2, 0, 1, 3]]), steps=2, guidance=2.0,
                     generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, hard, atol=1e-5)  # a one-hot soft request is the hard request


def test_knobs_are_checked(net):
    model = dm.DiffusionImageModel(net, "tiny")
    assert set(model.knobs) == {"guidance", "steps", "eta", "unspecified"}
    assert all(isinstance(k, Knob) for k in model.knobs.values())
    for bad, match in (({"steps": 0}, "steps must be in"), ({"steps": 2.5}, "whole number"),
                       ({"guidance": -1.0}, "guidance must be in"), ({"eta": 2.0}, "eta must be in"),
                       ({"truncation": 1.0}, "has no knob truncation")):
        with pytest.raises(ValueError, match=match):
            model.generate([{"color": "red"}], **bad)
    with pytest.raises(ValueError, match="controlled by attributes"):
        model.generate(["a red mug"])


# ----------------------------------------------------------------------------- editing
def _photos():
    """Two synthetic photos: a coloured square on a light background."""
    images = torch.full((2, 3, 32, 32), 235, dtype=torch.uint8)
    images[0, :, 8:24, 10:22] = torch.tensor([200, 30, 30])[:, None, None]
    images[1, :, 6:26, 6:26] = torch.tensor([20, 40, 160])[:, None, None]
    return images


def test_product_mask_finds_the_product():
    images = _photos()
    mask = dm.product_mask(images, grow=0)
    assert mask.shape == (2, 1, 32, 32)
    assert bool(mask[0, 0, 8:24, 10:22].eq(1).all()) and float(mask[0].sum()) == 16 * 12
    grown = dm.product_mask(images, grow=1)
    assert float(grown[0].sum()) == 18 * 14


def test_inpainting_keeps_every_pixel_outside_the_mask(net):
    from prodgen.catalog import denormalize, normalize

    images = _photos()
    mask = dm.product_mask(images, grow=1)
    labels = torch.tensor([[1, 2, 0, 1, 3], [0, 0, 0, 0, 0]])
    for resample, eta in ((1, 0.0), (2, 1.0)):
        out = dm.inpaint(net, images, labels, mask, steps=4, guidance=2.0, resample=resample, eta=eta, seed=0)
        keep = (1 - mask).bool().expand_as(out)
        assert torch.equal(out[keep], normalize(images)[keep])
        assert torch.equal(denormalize(out)[keep], images[keep])  # byte-identical after conversion to uint8
        assert not torch.equal(out[~keep], normalize(images)[~keep])  # the product region was regenerated
    edited = dm.edit(net, images, labels, {"color": "teal"}, seed=0, steps=3)
    assert edited.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="mask must be"):
        dm.inpaint(net, images, labels, mask[:1], steps=2)
    with pytest.raises(ValueError, match="unknown attribute"):
        dm.edit(net, images, labels, {"colour": "teal"})


# ----------------------------------------------------------------------------- training
def test_diffusion_loss_is_the_v_regression(net):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    labels = torch.zeros(4, 5, dtype=torch.long)
    loss = diffusion_loss(net, x0, labels, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the same draws, by hand
    t = torch.randint(0, dm.T, (4,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        by_hand = (net(q_sample(x0, t, noise, net.abar), t, labels) - v_target(x0, t, noise, net.abar)).pow(2).mean()
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)


@pytest.mark.slow(seconds=15)
def test_train_diffusion_learns_and_resumes(squares_catalog, tmp_path):
    from prodgen.engine.train import train_diffusion

    torch.manual_seed(0)
    model = dm.UNet(width=8)
    ema = copy.deepcopy(model)
    ckpt = tmp_path / "state.pt"
    history = train_diffusion(model, squares_catalog, epochs=3, batch_size=32, lr=2e-3, ema=ema, ema_decay=0.9,
                              progress=False, n_samples=4, sample_steps=2, checkpoint=ckpt, device="cpu")
    losses = history.steps["loss"]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) < sum(losses[:4])  # it learns (zero-initialised head: the first loss is E|v|^2 ~ 1)
    assert len(history.samples) == 3 and history.samples[-1][1].shape == (4, 3, 32, 32)
    assert not torch.equal(next(ema.parameters()), next(model.parameters()))
    more = train_diffusion(model, squares_catalog, epochs=4, batch_size=32, lr=2e-3, ema=ema, progress=False,
                           n_samples=0, checkpoint=ckpt, resume=True, device="cpu")
    assert len(more.steps["loss"]) == 16  # one more epoch after the saved three
    for bad, match in (({"drop_p": 1.0}, "drop_p must be"), ({"lr": 0}, "lr must be"),
                       ({"ema": dm.UNet(width=16)}, "ema must be a copy")):
        with pytest.raises(ValueError, match=match):
            train_diffusion(model, squares_catalog, epochs=1, batch_size=32, progress=False, **bad)
    with pytest.raises(ValueError, match="noise schedule"):
        train_diffusion(torch.nn.Linear(2, 2), squares_catalog, epochs=1, batch_size=32, progress=False)


# ----------------------------------------------------------------------------- the command line
def test_generate_knob_flags_bad_input(monkeypatch, capsys, tmp_path):
    run = in_this_process(monkeypatch, capsys)
    cases = [
        (["--model", "cgan-projection", "--attrs", "category=mug", "--guidance", "3"], "has no knob guidance"),
        (["--model", "cgan-projection", "--attrs", "category=mug", "--guidance", "x"], "--guidance must be a number"),
        (["--model", "cgan-projection", "--attrs", "category=mug", "--steps", "ten"], "--steps must be a whole number"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        code, _, err = run(["generate", *args, "--out", out])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
