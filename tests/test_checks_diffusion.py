"""Lesson 11's exercise checks on right, wrong and unfinished answers: one line, never an exception, and the
message names the mistake."""
from __future__ import annotations

import math

import pytest
import torch

from prodgen import checks
from prodgen.engine import losses
from prodgen.models import diffusion

from check_helpers import run_check as _run
from check_helpers import verdict_tests


# ------------------------------------------------------------------ q_sample answers
def _q(x0, t, noise, abar, *, form="right", shift=0):
    a = abar[(t + shift).clamp(0, len(abar) - 1)].view(-1, 1, 1, 1)
    if form == "variances":
        return a * x0 + (1 - a) * noise
    if form == "swapped":
        return (1 - a).sqrt() * x0 + a.sqrt() * noise
    if form == "no noise":
        return a.sqrt() * x0
    if form == "plain noise":
        return a.sqrt() * x0 + noise
    if form == "one level":
        a = abar[t[0]]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _q_in_place(x0, t, noise, abar):
    a = abar[t].view(-1, 1, 1, 1)
    return x0.mul_(a.sqrt()).add_((1 - a).sqrt() * noise)


def _q_unbroadcast(x0, t, noise, abar):
    return abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * noise  # N against the last dimension: raises


# ------------------------------------------------------------------ DDIM step answers
def _ddim(x_t, v, a_t, a_s, *, form="right"):
    if form == "swapped levels":
        a_t, a_s = a_s, a_t
    x0 = math.sqrt(a_t) * x_t - math.sqrt(1 - a_t) * v
    eps = math.sqrt(1 - a_t) * x_t + math.sqrt(a_t) * v
    if form == "v as noise":
        x0 = (x_t - math.sqrt(1 - a_t) * v) / math.sqrt(a_t)
        eps = v
    elif form == "x0 only":
        return x0
    elif form == "signs":
        x0 = math.sqrt(a_t) * x_t + math.sqrt(1 - a_t) * v
        eps = math.sqrt(1 - a_t) * x_t - math.sqrt(a_t) * v
    elif form == "variances":
        return a_s * x0 + (1 - a_s) * eps
    elif form == "v instead of eps":
        eps = v
    elif form == "fresh noise":
        return math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * torch.randn_like(eps)
    return math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps


def _ddim_tensor_levels(x_t, v, a_t, a_s):  # torch.sqrt on the numbers: works when they are tensors too
    a_t, a_s = torch.as_tensor(a_t), torch.as_tensor(a_s)
    x0, eps = diffusion.split_v(x_t, v, a_t)
    return a_s.sqrt() * x0 + (1 - a_s).sqrt() * eps


def _ddim_package(x_t, v, a_t, a_s):
    x0, eps = diffusion.split_v(x_t, v, a_t)
    return diffusion.ddim_step(x0, eps, a_s)


# ------------------------------------------------------------------ guidance answers
def _guided(c, u, w, *, form="right"):
    return {"right": u + w * (c - u), "papers": (1 + w) * c - w * u, "sign": u + w * (u - c),
            "no base": w * (c - u), "sum": w * c + u, "mix": w * c + (1 - w) * u,
            "always c": c + 0 * w}[form]


def _guided_in_place(c, u, w):
    return c.sub_(u).mul_(w).add_(u)


CASES = {
    "q_sample": (checks.check_q_sample, [_q, losses.q_sample],
                 [("variances", lambda *a: _q(*a, form="variances")), ("swapped", lambda *a: _q(*a, form="swapped")),
                  ("no noise", lambda *a: _q(*a, form="no noise")),
                  ("plain noise", lambda *a: _q(*a, form="plain noise")),
                  ("t - 1", lambda *a: _q(*a, shift=-1)), ("t + 1", lambda *a: _q(*a, shift=1)),
                  ("one level", lambda *a: _q(*a, form="one level")), ("in place", _q_in_place),
                  ("unbroadcast", _q_unbroadcast), ("returns a list", lambda *a: _q(*a).tolist()),
                  ("nan", lambda *a: _q(*a) * float("nan"))]),
    "ddim_step": (checks.check_ddim_step, [_ddim, _ddim_tensor_levels, _ddim_package],
                  [(form, lambda *a, form=form: _ddim(*a, form=form))
                   for form in ("swapped levels", "v as noise", "x0 only", "signs", "variances", "v instead of eps",
                                "fresh noise")]
                  + [("scaled", lambda *a: 1.01 * _ddim(*a))]),
    "guided": (checks.check_guided, [_guided, diffusion.guided, lambda c, u, w: _guided(c, u, w, form="mix")],
               [(form, lambda *a, form=form: _guided(*a, form=form))
                for form in ("papers", "sign", "no base", "sum", "always c")]
               + [("in place", _guided_in_place)]),
}

(test_right_answers_pass, test_wrong_answers_fail_with_a_hint,
 test_unfinished_answer_says_not_done) = verdict_tests(CASES)


# ------------------------------------------------------------------ the hints name the mistake
@pytest.mark.parametrize("check, answer, words", [
    (checks.check_q_sample, lambda *a: _q(*a, form="variances"), "square roots"),
    (checks.check_q_sample, lambda *a: _q(*a, shift=-1), "not t - 1"),
    (checks.check_q_sample, lambda *a: _q(*a, form="one level"), "its own step"),
    (checks.check_q_sample, _q_in_place, "in place"),
    (checks.check_ddim_step, lambda *a: _ddim(*a, form="v as noise"), "predicts v, not the noise"),
    (checks.check_ddim_step, lambda *a: _ddim(*a, form="x0 only"), "you returned the predicted photo"),
    (checks.check_ddim_step, lambda *a: _ddim(*a, form="swapped levels"), "you swapped them"),
    (checks.check_ddim_step, lambda *a: _ddim(*a, form="fresh noise"), "adds no new noise"),
    (checks.check_guided, lambda *a: _guided(*a, form="papers"), "papers' convention"),
    (checks.check_guided, lambda *a: _guided(*a, form="sign"), "TOWARDS"),
    (checks.check_guided, lambda *a: _guided(*a, form="always c"), "you returned pred_c unchanged"),
])
def test_hint_names_the_mistake(check, answer, words, capsys):
    ok, out = _run(check, answer, capsys)
    assert ok is False and words in out, out


def test_checks_leave_the_global_generator_alone(capsys):
    state = torch.random.get_rng_state()
    assert checks.check_q_sample(_q) and checks.check_ddim_step(_ddim) and checks.check_guided(_guided)
    assert torch.equal(torch.random.get_rng_state(), state)
    capsys.readouterr()
