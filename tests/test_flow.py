"""Flow matching (lesson 13; prodgen.models.flow, engine.losses.flow_*, engine.train.train_flow): the straight path
and its velocity, logit-normal times, the ODE solvers on toy fields with known solutions, determinism, guidance
(w = 0 is the unconditional pass), inpainting, the protocol (knobs, groups batched together, edit variants),
training with resume, `prodgen train flow` and the registry (the not-shipped message, on a folder without flow)."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from prodgen.engine.losses import flow_interpolate, flow_loss, flow_time, flow_velocity
from prodgen.models import flow as fm
from prodgen.models.diffusion import guided
from prodgen.models.protocol import Knob

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def net():
    """A small randomly initialised flow U-Net (width 8); its zero-initialised output layer is perturbed so the
    velocities depend on the input, the time and the condition."""
    torch.manual_seed(0)
    model = fm.FlowUNet(width=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


# ----------------------------------------------------------------------------- the path and its velocity
def test_straight_path_ends_and_velocity():
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(3, 3, 8, 8, generator=gen) * 2 - 1, torch.randn(3, 3, 8, 8, generator=gen)
    ones = torch.ones(3)
    assert torch.equal(flow_interpolate(x0, eps, 0 * ones), x0)  # t = 0: the photo
    assert torch.equal(flow_interpolate(x0, eps, ones), eps)  # t = 1: the noise
    t = torch.tensor([0.2, 0.5, 0.9])
    x_t = flow_interpolate(x0, eps, t)
    assert torch.allclose(x_t[1], (x0[1] + eps[1]) / 2)
    h = 1e-3  # the path's derivative in t is the velocity target, the same at every t
    slope = (flow_interpolate(x0, eps, t + h) - flow_interpolate(x0, eps, t - h)) / (2 * h)
    assert torch.allclose(slope, flow_velocity(x0, eps), atol=1e-3)
    assert torch.equal(flow_velocity(x0, eps), eps - x0)
    # walking back from x_t with the true velocity lands on the photo: x0 = x_t - t v
    assert torch.allclose(x_t - t[:, None, None, None] * flow_velocity(x0, eps), x0, atol=1e-6)


def test_logit_normal_times_crowd_the_middle():
    gen = torch.Generator().manual_seed(0)
    ln, uni = flow_time(20_000, "logit-normal", gen), flow_time(20_000, "uniform", gen)
    assert ln.shape == (20_000,) and bool(((ln > 0) & (ln < 1)).all())
    middle = lambda t: float(((t > 0.25) & (t < 0.75)).float().mean())  # noqa: E731
    # P(|z| < logit(0.75) = 1.0986) = 0.728 for z ~ N(0, 1); uniform: 0.5
    assert middle(ln) == pytest.approx(0.728, abs=0.015) and middle(uni) == pytest.approx(0.5, abs=0.015)
    assert float(ln.mean()) == pytest.approx(0.5, abs=0.01)
    shifted = flow_time(20_000, "logit-normal", gen, mean=1.0)
    assert float(shifted.median()) == pytest.approx(1 / (1 + math.exp(-1)), abs=0.01)
    with pytest.raises(ValueError, match="unknown time sampling"):
        flow_time(4, "cosine")


def test_flow_loss_is_the_velocity_regression(net):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1
    labels = torch.zeros(4, 5, dtype=torch.long)
    with torch.no_grad():
        loss = flow_loss(net, x0, labels, "logit-normal", generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the same draws, by hand
    t = torch.sigmoid(torch.randn(4, generator=gen))
    eps = torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        x_t = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * eps
        by_hand = (net(x_t, t, labels) - (eps - x0)).pow(2).mean()
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)


# ----------------------------------------------------------------------------- the solvers
def test_euler_with_many_steps_and_heun_agree_on_a_toy_field():
    """dx/dt = cos(t) x from t = 1 to 0 has the solution x(0) = x(1) exp(-sin 1): Euler needs many steps, the
    second-order solvers few; their errors shrink as h (Euler) and h^2 (Heun, AB2)."""
    x1 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    field = lambda x, t: math.cos(t) * x  # noqa: E731
    exact = x1 * math.exp(-math.sin(1.0))
    err = lambda sampler, steps: float((fm.integrate(field, x1, steps, sampler) - exact).abs().max())  # noqa: E731
    euler_many, heun = fm.integrate(field, x1, 1000, "euler"), fm.integrate(field, x1, 20, "heun")
    assert torch.allclose(euler_many, heun, atol=1e-3) and torch.allclose(heun, exact, atol=1e-3)
    assert err("euler", 20) / err("euler", 40) == pytest.approx(2, rel=0.1)  # first order
    assert err("heun", 20) / err("heun", 40) == pytest.approx(4, rel=0.1)  # second order
    assert err("ab2", 20) / err("ab2", 40) == pytest.approx(4, rel=0.2)
    assert err("heun", 20) < err("euler", 40) / 5  # much better at the same 40 evaluations
    assert fm.evaluations("heun", 10) == 20 and fm.evaluations("ab2", 10) == 10


def test_one_euler_step_is_exact_on_a_straight_path():
    """The velocity field of a single photo x0 is (x - x0) / t: straight lines, so one Euler step from any noise
    lands on the photo exactly (what flow matching hopes for, and why few steps can suffice)."""
    x0 = torch.tensor([0.3, -0.7], dtype=torch.float64)
    noise = torch.tensor([1.5, 0.2], dtype=torch.float64)
    out = fm.integrate(lambda x, t: (x - x0) / t, noise, 1, "euler")
    assert torch.allclose(out, x0, atol=1e-12)
    with pytest.raises(ValueError, match="unknown sampler"):
        fm.integrate(lambda x, t: x, noise, 2, "rk4")
    with pytest.raises(ValueError, match="steps must be a whole number"):
        fm.time_grid(0)


# ----------------------------------------------------------------------------- sampling through the protocol
def test_same_seed_same_bytes_for_every_sampler(net):
    model = fm.FlowImageModel(net, "tiny")
    requests = [{"category": "mug", "color": "red"}, {"color": "blue"}]
    for sampler in fm.SAMPLERS:
        a = model.generate(requests, seed=3, steps=3, sampler=sampler)
        assert a.dtype == torch.uint8 and a.shape == (2, 3, 32, 32)
        assert torch.equal(a, model.generate(requests, seed=3, steps=3, sampler=sampler))
        assert not torch.equal(a, model.generate(requests, seed=4, steps=3, sampler=sampler))
    assert not torch.equal(model.generate(requests, seed=3, steps=3, sampler="euler"),
                           model.generate(requests, seed=3, steps=3, sampler="heun"))
    assert model.generate([], seed=0).shape == (0, 3, 32, 32)


def test_guidance_zero_is_the_unconditional_pass(net):
    labels = torch.tensor([[0, 1, 2, 3, 0], [5, -1, 0, -1, 2]])
    x_1 = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    empty = torch.full_like(labels, -1)
    for precision in ("fp32", "auto"):
        w0 = fm.sample(net, labels, steps=3, guidance=0.0, sampler="heun", x_1=x_1, precision=precision)
        assert torch.equal(w0, fm.sample(net, empty, steps=3, guidance=1.0, sampler="heun", x_1=x_1,
                                         precision=precision))
    assert not torch.equal(w0, fm.sample(net, labels, steps=3, guidance=1.0, x_1=x_1))  # the condition matters
    t = torch.full((2,), 0.6)
    with torch.no_grad():  # the batched conditional + unconditional pass is the two passes mixed by hand
        by_hand = guided(net(x_1, t, labels), net(x_1, t, empty), 3.0)
        batched = fm._predict_v(net, x_1, 0.6, labels, empty, 3.0)
    assert torch.allclose(batched, by_hand, atol=1e-5)


def test_knobs_are_checked(net):
    model = fm.FlowImageModel(net, "tiny")
    assert set(model.knobs) == {"guidance", "steps", "sampler", "unspecified"}
    assert all(isinstance(k, Knob) for k in model.knobs.values())
    assert model.check_knobs({})["sampler"] in fm.SAMPLERS
    for bad, match in (({"steps": 0}, "steps must be in"), ({"steps": 2.5}, "whole number"),
                       ({"guidance": -1.0}, "guidance must be in"), ({"sampler": "rk4"}, "sampler must be one of"),
                       ({"eta": 1.0}, "has no knob eta")):
        with pytest.raises(ValueError, match=match):
            model.generate([{"color": "red"}], **bad)
    with pytest.raises(ValueError, match="controlled by attributes"):
        model.generate(["a red mug"])
    with pytest.raises(ValueError, match="guidance must be a number"):
        fm.sample(net, torch.zeros(1, 5, dtype=torch.long), guidance=-2.0)


def test_text_model_reads_descriptions(net):
    model = fm.FlowTextModel(net, "tiny-text")
    assert model.accepts == "text" and set(model.knobs) == {"guidance", "steps", "sampler", "unspecified"}
    images = model.generate(["a red mug", "一个蓝色的杯子"], seed=0, steps=2, sampler="euler")
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8
    assert model.understood(["a red mug"])[0].get("color") == "red"


def test_inpainting_keeps_every_pixel_outside_the_mask(net):
    from prodgen.catalog import denormalize, normalize
    from prodgen.models.diffusion import product_mask

    images = torch.full((2, 3, 32, 32), 235, dtype=torch.uint8)
    images[0, :, 8:24, 10:22] = torch.tensor([200, 30, 30])[:, None, None]
    images[1, :, 6:26, 6:26] = torch.tensor([20, 40, 160])[:, None, None]
    mask = product_mask(images, grow=1)
    labels = torch.tensor([[1, 2, 0, 1, 3], [0, 0, 0, 0, 0]])
    for sampler in fm.SAMPLERS:
        out = fm.inpaint(net, images, labels, mask, steps=3, guidance=2.0, sampler=sampler, seed=0)
        keep = (1 - mask).bool().expand_as(out)
        assert torch.equal(out[keep], normalize(images)[keep])
        assert torch.equal(denormalize(out)[keep], images[keep])  # byte-identical as uint8
        assert not torch.equal(out[~keep], normalize(images)[~keep])  # the product region was regenerated
    edited = fm.FlowImageModel(net).edit(images, labels, {"color": "teal"}, seed=0, steps=2)
    assert edited.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="mask must be"):
        fm.inpaint(net, images, labels, mask[:1], steps=2)
    with pytest.raises(ValueError, match="unknown attribute"):
        fm.edit(net, images, labels, {"colour": "teal"})


# ----------------------------------------------------------------------------- the protocol's shared checks
def _close(a, b):
    """Within one grey level everywhere (a network's kernels may round differently in a batch of another size)."""
    return a.shape == b.shape and int((a.int() - b.int()).abs().max()) <= 1


@pytest.mark.parametrize("text", [False, True], ids=["flow", "flow-text"])
def test_groups_batched_together_keep_their_own_noise(net, text):
    """``generate_groups`` (``prodgen generate --batch``), as tests/test_protocol.py checks every shipped
    generator: the same bytes run to run, each group as it comes alone (within one grey level), groups differ."""
    model = fm.FlowTextModel(net, "tiny-text") if text else fm.FlowImageModel(net, "tiny")
    raw = (["a large red striped t-shirt by Acme", "黑色运动鞋", "a mug", "a blue dotted cap by Nova"] if text else
           [{"category": "mug"}, {}, {"color": "red", "size": "large"}, {"category": "cap", "pattern": "dotted"}])
    groups = [(raw[i % 4:i % 4 + 1] * (1 + i % 3), 100 + i) for i in range(9)]
    knobs = {"steps": 2}
    first, second = model.generate_groups(groups, **knobs), model.generate_groups(groups, **knobs)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    for (requests, seed), images in zip(groups, first):
        assert _close(images, model.generate(requests, seed=seed, **knobs)), (requests, seed)
    assert not torch.equal(first[0][0], first[4][0])  # the same request, another seed
    assert model.latents(raw, seed=0) is None and not model.blends  # its latents are not blended


def test_requests_give_the_bytes_of_the_raw_forms(net):
    from prodgen.models.protocol import Request

    attrs = [{"category": "mug", "color": "red"}, {}, {"size": "large", "pattern": "dotted"}]
    model, text_model = fm.FlowImageModel(net, "tiny"), fm.FlowTextModel(net, "tiny-text")
    assert torch.equal(model.generate([Request(a) for a in attrs], seed=4, steps=2),
                       model.generate(attrs, seed=4, steps=2))
    texts = ["a red mug", "一个蓝色的杯子"]
    assert torch.equal(text_model.generate([Request(text=t) for t in texts], seed=4, steps=2),
                       text_model.generate(texts, seed=4, steps=2))
    a = model.generate(attrs[:2], seed=3, steps=2)
    for key, knob in model.knobs.items():  # a knob away from its default changes the images
        other = next(c for c in knob.choices if c != knob.default) if knob.choices \
            else 5 if isinstance(knob.default, int) else 0.3
        assert not torch.equal(a, model.generate(attrs[:2], seed=3, **{**{"steps": 2}, key: other})), key


def test_edit_variants_are_each_seeds_edit(net):
    from prodgen.catalog import denormalize

    images = torch.full((2, 3, 32, 32), 235, dtype=torch.uint8)
    images[0, :, 8:24, 10:22] = torch.tensor([200, 30, 30])[:, None, None]
    images[1, :, 6:26, 6:26] = torch.tensor([20, 40, 160])[:, None, None]
    labels = torch.tensor([[1, 2, 0, 1, 3], [0, 0, 0, 0, 0]])
    model = fm.FlowImageModel(net, "tiny")
    assert model.can_edit and model.edit_draws and not fm.FlowTextModel(net).can_edit
    variants = model.edit_variants(images, labels, {"color": "teal"}, [3, 4, 5], steps=2)
    assert len(variants) == 3 and not torch.equal(variants[0], variants[1])
    for seed, edited in zip([3, 4, 5], variants):
        assert _close(denormalize(edited), denormalize(model.edit(images, labels, {"color": "teal"}, seed=seed,
                                                                   steps=2)))
    with pytest.raises(ValueError, match="cannot edit"):
        fm.FlowTextModel(net).edit(images, labels, {"color": "teal"})


# ----------------------------------------------------------------------------- the registry
def test_flow_is_registered_but_not_shipped(monkeypatch, capsys, tmp_path):
    """``flow`` / ``flow-text`` are registered generators that every listing names (kinds, editors); in a course
    where no flow checkpoint is shipped, loading one says how to get it, in one line."""
    from prodgen.apps.edit import editors
    from prodgen.models import registry

    from cli_helpers import in_this_process, shipped_subset

    assert registry.spec("flow").model is fm.FlowImageModel and registry.spec("flow-text").model is fm.FlowTextModel
    assert registry.spec("flow").train is fm.train_checkpoint and registry.spec("flow").lesson == 13
    assert registry.generator_kinds()["flow"] == "attributes" and registry.generator_kinds()["flow-text"] == "text"
    assert "flow" in editors() and "flow-text" not in editors()
    shipped_subset(tmp_path / "checkpoints", ("judge", "text-votes"), monkeypatch)  # the course before flow shipped
    assert "flow" not in registry.generators(shipped=True) and "flow" in registry.generators()
    with pytest.raises(ValueError, match="'flow' is registered but no checkpoint of it is shipped; train one"):
        registry.load_generator("flow")
    run = in_this_process(monkeypatch, capsys)
    code, _, err = run(["generate", "--model", "flow-text", "--text", "a red mug", "--out", tmp_path / "out"])
    assert code == 2 and "prodgen train flow-text" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- training
@pytest.mark.slow(seconds=15)
def test_train_flow_learns_and_resumes(squares_catalog, tmp_path):
    from prodgen.engine.train import train_flow

    torch.manual_seed(0)
    model = fm.FlowUNet(width=8)
    ema = copy.deepcopy(model)
    start = copy.deepcopy(model)
    ckpt = tmp_path / "state.pt"
    history = train_flow(model, squares_catalog, epochs=3, batch_size=32, lr=2e-3, ema=ema, progress=False,
                         n_samples=4, sample_steps=2, checkpoint=ckpt, device="cpu")
    losses = history.steps["loss"]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-4:]) < sum(losses[:4])  # it learns (zero-initialised head: the first loss is E|v|^2 ~ 1.3)
    assert len(history.samples) == 3 and history.samples[-1][1].shape == (4, 3, 32, 32)
    # the EMA is warmed up: after 12 steps it has moved most of the way to the model (0.999^12 would not)
    p0, p_ema, p = (next(m.parameters()).detach() for m in (start, ema, model))
    assert float((p_ema - p).norm()) < 0.5 * float((p0 - p).norm())
    more = train_flow(model, squares_catalog, epochs=4, batch_size=32, lr=2e-3, ema=ema, progress=False,
                      n_samples=0, checkpoint=ckpt, resume=True, device="cpu")
    assert len(more.steps["loss"]) == 16  # one more epoch after the saved three
    assert more.steps["loss"][:12] == losses
    for bad, match in (({"drop_p": 1.0}, "drop_p must be"), ({"lr": 0}, "lr must be"),
                       ({"time_sampling": "cosine"}, "unknown time_sampling"),
                       ({"ema": fm.FlowUNet(width=16)}, "ema must be a copy")):
        with pytest.raises(ValueError, match=match):
            train_flow(model, squares_catalog, epochs=1, batch_size=32, progress=False, **bad)
    from prodgen.engine.train import train_diffusion

    with pytest.raises(ValueError, match="noise schedule"):  # a flow U-Net has no abar: diffusion's loop refuses it
        train_diffusion(fm.FlowUNet(width=8), squares_catalog, epochs=1, batch_size=32, progress=False)


@pytest.mark.slow(seconds=60)
def test_prodgen_train_flow_saves_a_loadable_generator(tmp_path, monkeypatch, capsys):
    """`prodgen train flow --fast --out F`: one epoch on 1,024 products, measured, saved with its recipe; the
    file loads as a protocol generator (the shipped checkpoint and manifest untouched)."""
    from prodgen.models import registry

    from cli_helpers import shipped_subset

    keep = ("judge", "text-votes")
    folder = shipped_subset(tmp_path / "checkpoints", keep, monkeypatch)
    out = tmp_path / "flow.pt"
    metrics = registry.train("flow", fast=True, log=None, out=out)
    assert {"control", "control_unseen_pairs", "fid", "fid_floor"} <= set(metrics)
    model = registry.load_generator_file(out)
    assert isinstance(model, fm.FlowImageModel) and model.info["training"]["time_sampling"] == "logit-normal"
    assert model.info["training"]["epochs_done"] == 1 and model.info["training"]["fast"] is True
    assert model.generate([{"color": "red"}], seed=0, steps=2).shape == (1, 3, 32, 32)
    assert registry.state_path("flow", out).is_file()  # the per-epoch training state, for --resume
    assert set(json.loads((folder / "manifest.json").read_text())) == set(keep)
    with pytest.raises(ValueError, match="unknown training setting"):
        fm.train_checkpoint("flow", fast=True, log=None, learning_rate=1e-3)
    from cli_helpers import in_this_process

    run = in_this_process(monkeypatch, capsys)
    code, _, err = run(["generate", "--model", out, "--attrs", "color=red", "--n", "2", "--sampler", "ab2",
                        "--steps", "3", "--out", tmp_path / "images"])
    assert code == 0 and len(list((tmp_path / "images").glob("*.png"))) == 2, err
    code, _, err = run(["generate", "--model", out, "--attrs", "color=red", "--sampler", "rk4",
                        "--out", tmp_path / "bad"])
    assert code == 2 and "sampler must be one of euler, heun, ab2" in err, err


def test_generate_sampler_flag_bad_input(monkeypatch, capsys, tmp_path):
    from cli_helpers import in_this_process

    run = in_this_process(monkeypatch, capsys)
    out = tmp_path / "out"
    code, _, err = run(["generate", "--model", "cgan-projection", "--attrs", "category=mug", "--sampler", "heun",
                        "--out", out])
    assert code == 2 and "has no knob sampler" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_init_starts_from_a_flow_file_and_records_it(net, tmp_path):
    """The recipe's ``init`` (a run continued in a later sitting): the weights are the file's, the training record
    names the file, its sha256 and its own budget; a file of another model or width is refused."""
    from prodgen import checkpoints
    from prodgen.models import registry

    path = registry.save("flow", net, {"width": 8}, training={"epochs_done": 3, "images_seen": 192, "seconds": 9.5},
                         out=tmp_path / "earlier.pt")
    fresh = fm.FlowUNet(width=8)
    record = fm._start_from(fresh, path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), net.state_dict().values()))
    assert record == {"continued_from": {"file": "earlier.pt", "sha256": checkpoints.sha256(path), "epochs_done": 3,
                                         "images_seen": 192, "seconds": 9.5}}
    with pytest.raises(ValueError, match="init needs a 'flow' checkpoint of width 16"):
        fm._start_from(fm.FlowUNet(width=16), path)
    other = registry.save("flow-text", net, {"width": 8, "reader": "text-votes"}, out=tmp_path / "text.pt")
    with pytest.raises(ValueError, match="holds 'flow-text'"):
        fm._start_from(fm.FlowUNet(width=8), other)


def test_guided_field_is_what_the_sampler_integrates(net):
    """``guided_field`` (lesson 13's trajectories): integrating it gives ``sample``'s images (fp32, no clamp)."""
    labels = torch.tensor([[0, 1, 2, 3, 0], [5, -1, 0, -1, 2]])
    x_1 = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    by_field = fm.integrate(fm.guided_field(net, labels, 3.0), x_1, 3, "euler")
    sampled = fm.sample(net, labels, steps=3, guidance=3.0, sampler="euler", x_1=x_1, precision="fp32")
    assert torch.allclose(by_field.clamp(-1, 1), sampled, atol=1e-5)
