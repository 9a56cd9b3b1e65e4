"""Few-step flow (lesson 13; prodgen.models.flow_fast): the teacher's pairs follow its guided ODE and are
deterministic, reflow's and progressive distillation's losses, the student learns, the distilled model takes as many
network passes as its steps knob says (one a step, no guidance doubling), groups batched together, and
`prodgen train flow-fast` without a shipped flow."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from prodgen.engine.losses import reflow_loss
from prodgen.models import flow as fm
from prodgen.models import flow_fast as ff

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


class LinearField(nn.Module):
    """A teacher whose ODE is known: ``v(x, t, labels) = x - m(labels)`` with ``m = 0.2 (label_0 + 1)`` (0 for the
    empty request), so the guided field is ``x - m_w`` with ``m_w = w m_c`` and ``dx/dt = x - m_w`` from t = 1 to 0
    ends at ``x(0) = m_w + (x(1) - m_w) / e``."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # the samplers read the device from the parameters

    @staticmethod
    def m(labels):
        return (0.2 * (labels[:, 0].float() + 1))[:, None, None, None]

    def forward(self, x, t, labels):
        return x - self.m(labels) + 0 * self.dummy


class Counting(nn.Module):
    """A network wrapper that records the batch size of every pass."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls, self.schema = net, [], net.schema

    def forward(self, x, t, labels):
        self.calls.append(len(x))
        return self.net(x, t, labels)


@pytest.fixture(scope="module")
def net():
    """A small randomly initialised flow U-Net (width 8), its weights perturbed so the output depends on the input."""
    torch.manual_seed(0)
    model = fm.FlowUNet(width=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


# ----------------------------------------------------------------------------- the teacher's pairs
def test_teacher_pairs_follow_the_guided_ode_and_are_deterministic():
    teacher = LinearField()
    labels = torch.tensor([[0, 1, 0, 0, 0], [2, -1, 1, 0, 0], [-1, -1, -1, -1, -1]])
    for w in (1.0, 2.0):
        eps, x = ff.teacher_pairs(teacher, labels, guidance=w, steps=32, sampler="heun", seed=3)
        m_w = w * LinearField.m(labels)  # the unconditional m is 0
        exact = (m_w + (eps - m_w) / math.e).clamp(-1, 1)
        err = float((x - exact).abs().max())
        assert err < 1e-3  # Heun's error is O(h^2): 4 times smaller with twice the steps
        assert float((ff.teacher_pairs(teacher, labels, w, 64, "heun", seed=3)[1] - exact).abs().max()) < err / 3
    eps2, x2 = ff.teacher_pairs(teacher, labels, guidance=2.0, steps=32, sampler="heun", seed=3)
    assert torch.equal(eps, eps2) and torch.equal(x, x2)  # same seed, same pairs
    assert torch.equal(eps, torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(eps, ff.teacher_pairs(teacher, labels, guidance=2.0, steps=4, seed=4)[0])


def test_teacher_pairs_of_a_network_are_its_sampler(net):
    labels = torch.tensor([[0, 1, 2, 0, 1], [3, -1, 0, 1, 2]])
    eps, x = ff.teacher_pairs(net, labels, guidance=2.0, steps=3, sampler="ab2", seed=0)
    assert torch.equal(x, fm.sample(net, labels, steps=3, guidance=2.0, sampler="ab2", x_1=eps))
    assert torch.equal(ff.teacher_pairs(net, labels, guidance=2.0, steps=3, sampler="ab2", seed=0)[1], x)


def test_teacher_pairs_say_how_far_they_got_and_give_the_same_bytes(net):
    labels = torch.randint(0, 3, (40, 5), generator=torch.Generator().manual_seed(1))
    lines = []
    eps, x = ff.teacher_pairs(net, labels, guidance=2.0, steps=2, sampler="euler", seed=0, batch_size=4,
                              log=lines.append)  # in ten parts of one batch each
    assert torch.equal(x, fm.sample(net, labels, steps=2, guidance=2.0, sampler="euler", x_1=eps, batch_size=4))
    assert len(lines) == 9 and lines[0].startswith("teacher pairs: 4 of 40 (") and "min left)" in lines[0]


def test_pair_requests_come_from_the_catalog_with_some_hidden():
    labels = torch.randint(0, 3, (50, 5), generator=torch.Generator().manual_seed(0))
    req = ff.pair_requests(labels, 400, hide_p=0.25, seed=1)
    assert req.shape == (400, 5) and torch.equal(req, ff.pair_requests(labels, 400, hide_p=0.25, seed=1))
    hidden = req == -1
    assert float(hidden.float().mean()) == pytest.approx(0.25, abs=0.04)
    assert bool(((req >= 0) & (req <= 2) | hidden).all())
    assert torch.equal(ff.pair_requests(labels, 50, hide_p=0.0, seed=1).sort(0).values, labels.sort(0).values)


def test_reflow_loss_is_the_straight_path_regression(net):
    gen = torch.Generator().manual_seed(0)
    x, eps = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1, torch.randn(4, 3, 32, 32, generator=gen)
    labels = torch.zeros(4, 5, dtype=torch.long)
    pairs = ff.Pairs(x, eps, labels)
    (batch, y), = list(pairs.batches(4, shuffle=False))
    assert batch.shape == (4, 6, 32, 32) and batch.dtype == torch.float32 and torch.equal(y, labels)
    with torch.no_grad():
        loss = reflow_loss(net, batch, labels, generator=torch.Generator().manual_seed(5))
        t = torch.rand(4, generator=torch.Generator().manual_seed(5))[:, None, None, None]  # uniform times
        x16, e16 = batch[:, :3], batch[:, 3:]
        by_hand = (net((1 - t) * x16 + t * e16, t.flatten(), labels) - (e16 - x16)).pow(2).mean()
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)
    assert float((x16 - x).abs().max()) < 1e-3  # float16 storage
    with pytest.raises(ValueError, match="as many images"):
        ff.Pairs(x, eps[:3], labels)


def test_progressive_target_is_two_teacher_half_steps():
    teacher = LinearField()
    labels = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    x_t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    t, h, w = torch.tensor([1.0, 0.5]), 0.5, 3.0
    m = w * LinearField.m(labels)
    x = x_t
    for _ in range(2):  # Euler half-steps of dx/dt = x - m_w, backwards in time
        x = x - (h / 2) * (x - m)
    target = ff.progressive_target(teacher, x_t, t, labels, h, w)
    assert torch.allclose(target, (x_t - x) / h, atol=1e-5)
    assert torch.allclose(x_t - h * target, x, atol=1e-5)  # one student step lands where two teacher steps land


# ----------------------------------------------------------------------------- training the student
def test_reflow_student_loss_falls(net):
    labels = ff.pair_requests(torch.randint(0, 3, (64, 5), generator=torch.Generator().manual_seed(0)), 96, seed=0)
    eps, x = ff.teacher_pairs(net, labels, guidance=2.0, steps=2, sampler="euler", seed=0)
    student, ema = copy.deepcopy(net).train(), copy.deepcopy(net)
    history = ff.reflow(student, ff.Pairs(x, eps, labels), ema, epochs=6, batch_size=32, lr=2e-3, seed=0,
                        device="cpu", progress=False)
    losses = history.steps["loss"]
    assert len(losses) == 18 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), losses
    batch = ff.Pairs(x, eps, labels).images.float()
    with torch.no_grad():  # on all the pairs, the same draws: the student's EMA fits them better than the teacher
        before, after = (float(reflow_loss(m.eval(), batch, labels, generator=torch.Generator().manual_seed(1)))
                         for m in (net, ema))
    assert after < 0.8 * before, (before, after)


def test_progressive_round_learns(net, squares_catalog):
    student, histories = ff.progressive(net, squares_catalog, start_steps=4, final_steps=2, guidance=2.0, epochs=3,
                                        batch_size=32, lr=2e-3, seed=0, device="cpu", progress=False)
    assert len(histories) == 1 and isinstance(student, fm.FlowUNet)
    losses = histories[0].steps["loss"]
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3]), losses


# ----------------------------------------------------------------------------- the protocol
def test_the_step_knob_is_the_number_of_network_passes(net):
    counting = Counting(net)
    model = ff.FlowFastImageModel(counting, "tiny-fast", {"config": {"steps": 2, "guidance": 2.0}})
    requests = [{"category": "mug", "color": "red"}, {"color": "blue"}, {}]
    assert set(model.knobs) == {"steps", "sampler", "unspecified"}  # no guidance: it is baked in
    assert model.check_knobs({})["steps"] == 2 and model.check_knobs({})["sampler"] == "euler"
    for steps in (1, 2, 3, 4):
        for sampler, per_step in (("euler", 1), ("ab2", 1), ("heun", 2)):
            counting.calls.clear()
            model.generate(requests, seed=0, steps=steps, sampler=sampler)
            assert counting.calls == [3] * (per_step * steps), (steps, sampler)  # one pass of the 3 rows a step
    counting.calls.clear()
    model.generate(requests, seed=0)
    assert len(counting.calls) == 2
    for bad, match in (({"steps": 5}, "steps must be in"), ({"steps": 0}, "steps must be in"),
                       ({"guidance": 2.0}, "has no knob guidance")):
        with pytest.raises(ValueError, match=match):
            model.generate(requests, **bad)


def test_same_seed_same_bytes_and_groups_batched_together(net):
    model = ff.FlowFastImageModel(net, "tiny-fast")
    raw = [{"category": "mug"}, {}, {"color": "red", "size": "large"}, {"category": "cap", "pattern": "dotted"}]
    a = model.generate(raw, seed=3, steps=2)
    assert a.dtype == torch.uint8 and torch.equal(a, model.generate(raw, seed=3, steps=2))
    assert not torch.equal(a, model.generate(raw, seed=4, steps=2))
    groups = [(raw[i % 4:i % 4 + 1] * (1 + i % 3), 100 + i) for i in range(9)]
    first = model.generate_groups(groups, steps=3)
    assert all(torch.equal(x, y) for x, y in zip(first, model.generate_groups(groups, steps=3)))
    for (requests, seed), images in zip(groups, first):
        alone = model.generate(requests, seed=seed, steps=3)
        assert images.shape == alone.shape and int((images.int() - alone.int()).abs().max()) <= 1


def test_edit_keeps_the_photo_outside_the_mask(net):
    from prodgen.catalog import denormalize

    images = torch.full((2, 3, 32, 32), 235, dtype=torch.uint8)
    images[0, :, 8:24, 10:22] = torch.tensor([200, 30, 30])[:, None, None]
    images[1, :, 6:26, 6:26] = torch.tensor([20, 40, 160])[:, None, None]
    labels = torch.tensor([[1, 2, 0, 1, 3], [0, 0, 0, 0, 0]])
    counting = Counting(net)
    model = ff.FlowFastImageModel(counting, "tiny-fast")
    assert model.can_edit
    edited = denormalize(model.edit(images, labels, {"color": "teal"}, seed=0, steps=2))
    assert counting.calls == [2, 2]  # two steps, one unguided pass each
    from prodgen.models.diffusion import product_mask

    keep = (1 - product_mask(images, 1)).bool().expand_as(edited)
    assert torch.equal(edited[keep], images[keep])


# ----------------------------------------------------------------------------- the registry and the trainer
def _checkpoints_without_flow(tmp_path, monkeypatch):
    """A checkpoint folder with the judge and the text reader only (no flow), as PRODGEN_CHECKPOINTS."""
    from cli_helpers import shipped_subset

    return shipped_subset(tmp_path / "checkpoints", ("judge", "text-votes"), monkeypatch)


def test_train_flow_fast_without_a_shipped_flow_says_so(monkeypatch, capsys, tmp_path):
    from prodgen.models import registry

    from cli_helpers import in_this_process

    assert registry.spec("flow-fast").model is ff.FlowFastImageModel and registry.spec("flow-fast").lesson == 13
    _checkpoints_without_flow(tmp_path, monkeypatch)
    run = in_this_process(monkeypatch, capsys)
    code, _, err = run(["train", "flow-fast", "--fast", "--out", tmp_path / "ff.pt"])
    assert code == 2 and "train flow first" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "ff.pt").exists()
    for bad, match in (({"method": "consistency"}, "unknown method"), ({"steps": 5}, "steps must be 1-4"),
                       ({"method": "progressive", "teacher_steps": 12, "steps": 4}, "power of 2"),
                       ({"teacher": str(tmp_path / "none.pt")}, "no such file")):
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            ff.train_checkpoint("flow-fast", fast=True, log=None, **bad)


@pytest.mark.slow(seconds=30)
def test_train_flow_fast_from_a_teacher_file(net, monkeypatch, tmp_path):
    """The recipe end to end on a tiny teacher file: 256 pairs, one epoch, measured, saved; the file loads as a
    flow-fast generator whose default step count is the distilled one."""
    from prodgen.models import registry

    _checkpoints_without_flow(tmp_path, monkeypatch)
    teacher = tmp_path / "teacher.pt"
    registry.save("flow", net, {"width": 8}, out=teacher)
    out = tmp_path / "ff.pt"
    metrics = ff.train_checkpoint("flow-fast", fast=True, log=None, out=out, teacher=str(teacher), steps=2)
    assert {"control", "fid", "knobs"} <= set(metrics) and metrics["knobs"]["steps"] == 2
    model = registry.load_generator_file(out)
    assert isinstance(model, ff.FlowFastImageModel) and model.check_knobs({})["steps"] == 2
    assert model.info["training"]["pairs"] == 256 and model.info["training"]["rounds"][0]["pairs"] == 256
    assert model.generate([{"color": "red"}], seed=0).shape == (1, 3, 32, 32)
