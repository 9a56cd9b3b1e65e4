"""Lesson 10's exercise checks on right, wrong and unfinished answers: one line, never an exception, and the
message names the mistake."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from prodgen import checks
from prodgen.engine import augment, losses

from check_helpers import run_check as _run
from check_helpers import verdict_tests


# ------------------------------------------------------------------ gradient penalty answers
def _gp(critic, real, fake, *, per="image", where="between", detach=True, create_graph=True, form="gp",
        reduce="sum", weight=1.0):
    n = real.shape[0]
    if per == "image":
        e = torch.rand(n, 1, 1, 1)
    elif per == "pixel":
        e = torch.rand_like(real)
    else:  # one e for the whole batch
        e = torch.rand(1).expand(n, 1, 1, 1)
    mixed = {"between": e * real + (1 - e) * fake, "real": real, "fake": fake}[where]
    x_hat = mixed.detach().requires_grad_(True) if detach else mixed
    if not x_hat.requires_grad:
        x_hat.requires_grad_(True)
    scores = critic(x_hat)
    (g,) = torch.autograd.grad(scores.sum() if reduce == "sum" else scores.mean(), x_hat, create_graph=create_graph)
    norms = g.flatten(1).norm(dim=1)
    value = {"gp": (norms - 1).pow(2).mean(), "squared": (norms.pow(2) - 1).pow(2).mean(),
             "one-sided": F.relu(norms - 1).pow(2).mean(), "no -1": norms.pow(2).mean(),
             "batch norm": (g.norm() - 1).pow(2), "sum": (norms - 1).pow(2).sum()}[form]
    return weight * value


def _gp_reference(critic, real, fake):  # the package's own, for a one-argument critic
    return losses.gradient_penalty(critic, real, fake)


# ------------------------------------------------------------------ R1 answers
def _r1(discriminator, real, *, form="r1", create_graph=True, reduce="sum", weight=1.0):
    x = real.detach().requires_grad_(True)
    scores = discriminator(x)
    (g,) = torch.autograd.grad(scores.sum() if reduce == "sum" else scores.mean(), x, create_graph=create_graph)
    norms = g.flatten(1).norm(dim=1)
    value = {"r1": norms.pow(2).mean(), "norm": norms.mean(), "centred at 1": (norms - 1).pow(2).mean(),
             "pixel mean": g.pow(2).mean(), "sum": norms.pow(2).sum()}[form]
    return weight * value


def _r1_reference(discriminator, real):
    x = real.detach().requires_grad_(True)
    return losses.r1_penalty(discriminator(x), x)


# ------------------------------------------------------------------ EMA answers
def _ema_right(ema, model, decay):
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.mul_(decay).add_(p, alpha=1 - decay)
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b)


def _ema_lerp_and_average_buffers(ema, model, decay):
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.lerp_(p, 1 - decay)
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            if b.is_floating_point():
                b_ema.lerp_(b, 1 - decay)
            else:
                b_ema.copy_(b)


def _ema_reference(ema, model, decay):
    from prodgen.engine.train import _update_ema

    _update_ema(ema, model, decay)


def _ema_rebinds(ema, model, decay):
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema = decay * p_ema + (1 - decay) * p  # rebinds the loop variable: changes nothing


def _ema_swapped(ema, model, decay):
    _ema_right(ema, model, 1 - decay)


def _ema_copies(ema, model, decay):
    ema.load_state_dict(model.state_dict())


def _ema_no_buffers(ema, model, decay):
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.mul_(decay).add_(p, alpha=1 - decay)


def _ema_no_grad_missing(ema, model, decay):
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.mul_(decay).add_(p, alpha=1 - decay)  # in-place on a leaf that requires grad: raises


def _ema_moves_model(ema, model, decay):
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p.mul_(decay).add_(p_ema, alpha=1 - decay)


# ------------------------------------------------------------------ translation answers
def _translate_right(x, ratio=0.125):
    n, _, h, w = x.shape
    s = int(h * ratio + 0.5)
    dy, dx = torch.randint(-s, s + 1, (n,)), torch.randint(-s, s + 1, (n,))
    padded = F.pad(x, (s, s, s, s))
    return torch.stack([padded[i, :, s + dy[i]:s + dy[i] + h, s + dx[i]:s + dx[i] + w] for i in range(n)])


def _translate_roll(x, ratio=0.125):
    s = int(x.shape[2] * ratio + 0.5)
    shifts = torch.randint(-s, s + 1, (len(x), 2))
    return torch.stack([torch.roll(x[i], shifts=tuple(shifts[i].tolist()), dims=(1, 2)) for i in range(len(x))])


def _translate_one_shift(x, ratio=0.125):
    _, _, h, w = x.shape
    s = int(h * ratio + 0.5)
    dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,)))
    return F.pad(x, (s, s, s, s))[:, :, s + dy:s + dy + h, s + dx:s + dx + w]


def _translate_detached(x, ratio=0.125):
    return _translate_right(x.detach(), ratio)


def _translate_too_far(x, ratio=0.125):
    return _translate_right(x, 2 * ratio)


def _translate_in_place(x, ratio=0.125):
    out = _translate_right(x, ratio)
    with torch.no_grad():
        x.mul_(1.0)
        x.add_(0.0)
        x[0, 0, 0, 0] = -1.0
    return out


def _translate_half_range(x, ratio=0.125):
    n, _, h, w = x.shape
    s = int(h * ratio + 0.5)
    dy, dx = torch.randint(0, s + 1, (n,)), torch.randint(0, s + 1, (n,))  # only one direction
    padded = F.pad(x, (s, s, s, s))
    return torch.stack([padded[i, :, s + dy[i]:s + dy[i] + h, s + dx[i]:s + dx[i] + w] for i in range(n)])


def _translate_and_brighten(x, ratio=0.125):
    return _translate_right(x, ratio) * 1.1


CASES = {
    "gradient_penalty": (
        checks.check_gradient_penalty,
        [_gp, _gp_reference],
        [
            ("on real", lambda c, r, f: _gp(c, r, f, where="real")),
            ("on fake", lambda c, r, f: _gp(c, r, f, where="fake")),
            ("e per pixel", lambda c, r, f: _gp(c, r, f, per="pixel")),
            ("one e", lambda c, r, f: _gp(c, r, f, per="batch")),
            ("no create_graph", lambda c, r, f: _gp(c, r, f, create_graph=False)),
            ("not detached", lambda c, r, f: _gp(c, r, f, detach=False)),
            ("squared norm", lambda c, r, f: _gp(c, r, f, form="squared")),
            ("one-sided", lambda c, r, f: _gp(c, r, f, form="one-sided")),
            ("no -1", lambda c, r, f: _gp(c, r, f, form="no -1")),
            ("batch norm", lambda c, r, f: _gp(c, r, f, form="batch norm")),
            ("sum", lambda c, r, f: _gp(c, r, f, form="sum")),
            ("mean of scores", lambda c, r, f: _gp(c, r, f, reduce="mean")),
            ("weighted", lambda c, r, f: _gp(c, r, f, weight=10.0)),
            ("a float", lambda c, r, f: _gp(c, r, f).item()),
            ("never calls D", lambda c, r, f: (r - f).pow(2).mean()),
        ],
    ),
    "r1_penalty": (
        checks.check_r1_penalty,
        [_r1, _r1_reference],
        [
            ("norm", lambda d, r: _r1(d, r, form="norm")),
            ("centred at 1", lambda d, r: _r1(d, r, form="centred at 1")),
            ("pixel mean", lambda d, r: _r1(d, r, form="pixel mean")),
            ("sum", lambda d, r: _r1(d, r, form="sum")),
            ("mean of scores", lambda d, r: _r1(d, r, reduce="mean")),
            ("gamma/2", lambda d, r: _r1(d, r, weight=5.0)),
            ("no create_graph", lambda d, r: _r1(d, r, create_graph=False)),
            ("on noise", lambda d, r: _r1(d, torch.randn_like(r))),
            ("crashes", lambda d, r: d(r) @ r),
        ],
    ),
    "ema_update": (
        checks.check_ema_update,
        [_ema_right, _ema_lerp_and_average_buffers, _ema_reference],
        [
            ("rebinds", _ema_rebinds),
            ("swapped", _ema_swapped),
            ("copies", _ema_copies),
            ("no buffers", _ema_no_buffers),
            ("no torch.no_grad", _ema_no_grad_missing),
            ("moves the model", _ema_moves_model),
        ],
    ),
    "translate": (
        checks.check_translate,
        [_translate_right, augment.translate],
        [
            ("roll", _translate_roll),
            ("one shift", _translate_one_shift),
            ("detached", _translate_detached),
            ("too far", _translate_too_far),
            ("in place", _translate_in_place),
            ("half range", _translate_half_range),
            ("brightens", _translate_and_brighten),
            ("cutout", lambda x, ratio=0.125: augment.cutout(x)),
            ("wrong shape", lambda x, ratio=0.125: x[:, :, 1:, 1:]),
        ],
    ),
}


test_right_answers_pass, test_wrong_answers_fail_with_a_hint, test_unfinished_answer_says_not_done = \
    verdict_tests(CASES)  # tests/check_helpers.py


@pytest.mark.parametrize("name, label, words", [
    ("gradient_penalty", "on real", "sits on the real images"),
    ("gradient_penalty", "on fake", "sits on the generated images"),
    ("gradient_penalty", "e per pixel", "one e per image"),
    ("gradient_penalty", "one e", "every image got the same e"),
    ("gradient_penalty", "no create_graph", "create_graph=True"),
    ("gradient_penalty", "not detached", "into the generator"),
    ("gradient_penalty", "squared norm", "not the squared norm"),
    ("gradient_penalty", "one-sided", "two-sided"),
    ("gradient_penalty", "no -1", "subtract the target norm 1"),
    ("gradient_penalty", "batch norm", "one gradient norm per image"),
    ("gradient_penalty", "sum", "not the sum"),
    ("gradient_penalty", "mean of scores", "SUM of the scores"),
    ("gradient_penalty", "weighted", "without its weight"),
    ("gradient_penalty", "a float", "should return a tensor"),
    ("gradient_penalty", "never calls D", "never called"),
    ("r1_penalty", "norm", "SQUARED gradient norm"),
    ("r1_penalty", "centred at 1", "zero-centred"),
    ("r1_penalty", "pixel mean", "number of pixels"),
    ("r1_penalty", "sum", "not the sum"),
    ("r1_penalty", "mean of scores", "SUM of the scores"),
    ("r1_penalty", "gamma/2", "5 times too large"),
    ("r1_penalty", "no create_graph", "create_graph=True"),
    ("r1_penalty", "on noise", "never called on the real images"),
    ("ema_update", "rebinds", "did not change"),
    ("ema_update", "swapped", "swapped"),
    ("ema_update", "copies", "copy of the model"),
    ("ema_update", "no buffers", "batch-norm statistics"),
    ("ema_update", "no torch.no_grad", "torch.no_grad()"),
    ("ema_update", "moves the model", "changed the training model"),
    ("translate", "roll", "wraps"),
    ("translate", "one shift", "same"),
    ("translate", "detached", "differentiable"),
    ("translate", "too far", "further than s = 2"),
    ("translate", "in place", "in place"),
    ("translate", "half range", "every whole value from -2 to 2"),
    ("translate", "brightens", "colour"),
    ("translate", "wrong shape", "input's shape"),
])
def test_the_messages_name_the_mistake(name, label, words, capsys):
    check, _, wrongs = CASES[name]
    _, out = _run(check, dict(wrongs)[label], capsys)
    assert words in out, out


@pytest.mark.parametrize("name", CASES)
def test_a_check_leaves_the_global_random_state_alone(name, capsys):
    check, rights, _ = CASES[name]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check(rights[0])
    capsys.readouterr()
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", CASES)
def test_a_check_gives_back_the_thread_count_it_found(name, capsys):
    threads = torch.get_num_threads()
    CASES[name][0](CASES[name][1][0])
    capsys.readouterr()
    assert torch.get_num_threads() == threads
